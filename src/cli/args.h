// A small, strict command-line parser: every command declares its options,
// anything else is a usage error that names the offending word.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace memtap::cli {

struct OptionSpec {
    std::string name;      // "--frames"
    std::string valueName; // "N"; empty for a flag
    std::string help;
};

struct ParsedArgs {
    std::vector<std::string> positional;
    std::map<std::string, std::string> values; // options with a value
    std::vector<std::string> flags;            // options without one

    bool has(const std::string& name) const;
    std::optional<std::string> value(const std::string& name) const;
};

struct CommandSpec {
    std::string name;
    std::string positionalUsage; // "PID [NAME]"
    std::string summary;
    std::string details; // extra paragraphs for --help
    size_t minPositional = 0;
    size_t maxPositional = 0;
    std::vector<OptionSpec> options;
    std::function<int(const ParsedArgs&)> run;
};

// Error(Usage) on unknown options, missing values or wrong positional counts.
ParsedArgs parseOrThrow(const CommandSpec& spec, const std::vector<std::string>& words);
std::string commandHelp(const CommandSpec& spec);

// Strict numbers: the whole word must parse. Error(Usage) names the option.
pid_t parsePidOrThrow(const std::string& word);
uint64_t parseUnsignedOrThrow(const std::string& word, const std::string& what, uint64_t min,
                              uint64_t max);
double parseSecondsOrThrow(const std::string& word, const std::string& what);
// "512K", "1M", "65536": sizes for --sample-bytes, from 1 byte to
// kMaxByteSize (1T); a larger value, or one whose digits or product would
// overflow 64 bits, is Error(Usage) naming the option, before anything runs.
inline constexpr uint64_t kMaxByteSize = 1ull << 40;
uint64_t parseByteSizeOrThrow(const std::string& word, const std::string& what);

} // namespace memtap::cli
