// The agent's "KEY VALUE" reply lines (protocol.h: status, pymalloc,
// malloc-trim) as typed values. The agent is a different build of memtap
// in the worst case, so a value that is missing or not a number is an
// answer to handle, never an exception from the standard library.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace memtap::inject {

using AgentValues = std::map<std::string, std::string>;

// One entry per "KEY VALUE" line (VALUE may hold spaces); other lines are
// ignored, as protocol.h asks of readers.
AgentValues parseKeyValueLines(std::string_view payload);

// Decimal digits only, that fit: nullopt otherwise (empty, a sign, "12x", too large).
std::optional<uint64_t> tryParseUnsigned(std::string_view text);
// The same with an optional '-' (trim_result is -1 without malloc_trim), within int64_t.
std::optional<int64_t> tryParseSigned(std::string_view text);

// The value under key as a number, nullopt when it is missing or not one.
std::optional<int64_t> tryNumber(const AgentValues& values, std::string_view key);
int64_t numberOr(const AgentValues& values, std::string_view key, int64_t fallback);
// Error(Failure) naming the reply and the key when the value is not a number.
int64_t numberOrThrow(const AgentValues& values, std::string_view key, std::string_view reply);

} // namespace memtap::inject
