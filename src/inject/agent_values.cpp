#include "inject/agent_values.h"

#include <charconv>
#include <limits>

#include <fmt/format.h>

#include "base/error.h"

namespace memtap::inject {

AgentValues
parseKeyValueLines(std::string_view payload) {
    AgentValues values;
    while (!payload.empty()) {
        size_t end = payload.find('\n');
        std::string_view line = payload.substr(0, end);
        payload.remove_prefix(end == std::string_view::npos ? payload.size() : end + 1);
        size_t space = line.find(' ');
        if (space != std::string_view::npos) {
            values[std::string(line.substr(0, space))] = std::string(line.substr(space + 1));
        }
    }
    return values;
}

std::optional<uint64_t>
tryParseUnsigned(std::string_view text) {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) {
        return std::nullopt;
    }
    uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size()) {
        return std::nullopt; // out of range
    }
    return value;
}

std::optional<int64_t>
tryParseSigned(std::string_view text) {
    bool negative = text.starts_with('-');
    auto magnitude = tryParseUnsigned(negative ? text.substr(1) : text);
    constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (!magnitude || *magnitude > kMax) {
        return std::nullopt; // INT64_MIN itself is no figure the agent sends
    }
    auto value = static_cast<int64_t>(*magnitude);
    return negative ? -value : value;
}

std::optional<int64_t>
tryNumber(const AgentValues& values, std::string_view key) {
    auto it = values.find(std::string(key));
    return it == values.end() ? std::nullopt : tryParseSigned(it->second);
}

int64_t
numberOr(const AgentValues& values, std::string_view key, int64_t fallback) {
    return tryNumber(values, key).value_or(fallback);
}

int64_t
numberOrThrow(const AgentValues& values, std::string_view key, std::string_view reply) {
    if (auto value = tryNumber(values, key)) {
        return *value;
    }
    auto it = values.find(std::string(key));
    std::string got = it == values.end() ? "no such key" : fmt::format("'{}'", it->second);
    throw Error(ExitCode::Failure,
                fmt::format("the agent's {} reply has no number under {} ({})", reply, key, got),
                "the agent may be from another memtap build: `memtap detach PID`, then attach again");
}

} // namespace memtap::inject
