#include "cli/args.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string_view>

#include "base/error.h"

namespace memtap::cli {

bool
ParsedArgs::has(const std::string& name) const {
    return values.count(name) != 0 || std::find(flags.begin(), flags.end(), name) != flags.end();
}

std::optional<std::string>
ParsedArgs::value(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
}

ParsedArgs
parseOrThrow(const CommandSpec& spec, const std::vector<std::string>& words) {
    ParsedArgs parsed;
    auto hint = fmt::format("see `memtap {} --help`", spec.name);
    for (size_t i = 0; i < words.size(); ++i) {
        const std::string& word = words[i];
        if (word.size() > 1 && word[0] == '-' && word != "-") {
            std::string name = word;
            std::optional<std::string> inlineValue;
            if (auto eq = word.find('='); eq != std::string::npos) {
                name = word.substr(0, eq);
                inlineValue = word.substr(eq + 1);
            }
            auto spec_it = std::find_if(spec.options.begin(), spec.options.end(),
                                        [&](const OptionSpec& o) { return o.name == name; });
            if (spec_it == spec.options.end()) {
                throw Error(ExitCode::Usage,
                            fmt::format("unknown option '{}' for 'memtap {}'", name, spec.name), hint);
            }
            if (spec_it->valueName.empty()) {
                if (inlineValue) {
                    throw Error(ExitCode::Usage, fmt::format("option {} takes no value", name), hint);
                }
                parsed.flags.push_back(name);
            } else if (inlineValue) {
                parsed.values[name] = *inlineValue;
            } else if (i + 1 < words.size()) {
                parsed.values[name] = words[++i];
            } else {
                throw Error(ExitCode::Usage,
                            fmt::format("option {} needs a value ({})", name, spec_it->valueName), hint);
            }
        } else {
            parsed.positional.push_back(word);
        }
    }
    if (parsed.positional.size() < spec.minPositional || parsed.positional.size() > spec.maxPositional) {
        throw Error(ExitCode::Usage,
                    fmt::format("'memtap {}' takes {}; got {} argument{}", spec.name,
                                spec.positionalUsage, parsed.positional.size(),
                                parsed.positional.size() == 1 ? "" : "s"),
                    hint);
    }
    return parsed;
}

std::string
commandHelp(const CommandSpec& spec) {
    std::string text = fmt::format("usage: memtap {} {}{}\n\n{}\n", spec.name, spec.positionalUsage,
                                   spec.options.empty() ? "" : " [options]", spec.summary);
    if (!spec.details.empty()) {
        text += "\n" + spec.details + "\n";
    }
    if (!spec.options.empty()) {
        text += "\noptions:\n";
        for (const auto& option : spec.options) {
            auto left = option.valueName.empty() ? option.name : option.name + " " + option.valueName;
            text += fmt::format("  {:<22} {}\n", left, option.help);
        }
    }
    text += fmt::format("  {:<22} {}\n", "--help", "show this help");
    return text;
}

pid_t
parsePidOrThrow(const std::string& word) {
    long value = 0;
    auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
    if (ec != std::errc() || ptr != word.data() + word.size() || value <= 0 || value > 4194304) {
        throw Error(ExitCode::Usage, fmt::format("'{}' is not a PID", word),
                    "give the numeric process id, e.g. from `pgrep -f myapp`");
    }
    return static_cast<pid_t>(value);
}

uint64_t
parseUnsignedOrThrow(const std::string& word, const std::string& what, uint64_t min, uint64_t max) {
    uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
    if (ec != std::errc() || ptr != word.data() + word.size() || value < min || value > max) {
        throw Error(ExitCode::Usage, fmt::format("{} must be a whole number from {} to {}, not '{}'",
                                                 what, min, max, word));
    }
    return value;
}

double
parseSecondsOrThrow(const std::string& word, const std::string& what) {
    double value = 0;
    auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
    if (ec != std::errc() || ptr != word.data() + word.size() || !(value > 0) || value > 86400 ||
        !std::isfinite(value)) {
        throw Error(ExitCode::Usage,
                    fmt::format("{} must be a number of seconds > 0, not '{}'", what, word));
    }
    return value;
}

uint64_t
parseByteSizeOrThrow(const std::string& word, const std::string& what) {
    auto refuse = [&]() {
        return Error(
            ExitCode::Usage,
            fmt::format("{} must be a size from 1 to 1T ({} bytes), like 4096, 512K, 16M or 2G; "
                        "not '{}'",
                        what, kMaxByteSize, word));
    };
    std::string_view digits = word;
    uint64_t multiplier = 1;
    if (!digits.empty()) {
        switch (std::toupper(static_cast<unsigned char>(digits.back()))) {
        case 'K':
            multiplier = 1ull << 10;
            break;
        case 'M':
            multiplier = 1ull << 20;
            break;
        case 'G':
            multiplier = 1ull << 30;
            break;
        case 'T':
            multiplier = 1ull << 40;
            break;
        default:
            break;
        }
        if (multiplier != 1) {
            digits.remove_suffix(1);
        }
    }
    // from_chars reports a number too large for uint64_t as out of range, and
    // the product is bounded by division first, so neither step can wrap.
    uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size() || value == 0 ||
        value > kMaxByteSize / multiplier) {
        throw refuse();
    }
    return value * multiplier;
}

} // namespace memtap::cli
