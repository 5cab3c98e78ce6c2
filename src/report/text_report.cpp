#include "report/text_report.h"

#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "report/text_width.h"

namespace memtap::report {

namespace {

// Python's str.strip() for the whitespace a source line can hold.
std::string_view
strip(std::string_view text) {
    constexpr std::string_view kSpace = " \t\n\r\f\v";
    size_t begin = text.find_first_not_of(kSpace);
    if (begin == std::string_view::npos) {
        return {};
    }
    size_t end = text.find_last_not_of(kSpace);
    return text.substr(begin, end + 1 - begin);
}

std::optional<std::string>
sourceFor(const TextReportOptions& options, const Frame& frame) {
    if (!options.showSource || !options.sourceLine || frame.line <= 0) {
        return std::nullopt;
    }
    std::optional<std::string> line = options.sourceLine(frame.file, frame.line);
    if (!line) {
        return std::nullopt;
    }
    std::string stripped = sanitizeText(strip(*line));
    if (stripped.empty()) {
        return std::nullopt;
    }
    return stripped;
}

// The part before ": size=..." — tracemalloc prints the Traceback, whose str()
// is one frame; memtap always shows the top (allocating) frame.
std::string
statLabel(const StatDiff& stat, GroupBy by) {
    if (stat.thread) {
        return sanitizeText(threadText(*stat.thread));
    }
    const Frame& top = stat.key.front();
    // Memory an extension reported (numpy's array data) says whose it is.
    std::string domain = stat.domain != 0 ? fmt::format(" [{}]", sanitizeText(stat.domainLabel)) : "";
    if (by == GroupBy::Filename) {
        return sanitizeText(top.file) + domain;
    }
    if (!stat.userFrame) {
        return fmt::format("{}:{}{} [no frame in your code]", sanitizeText(top.file), top.line, domain);
    }
    return fmt::format("{}:{}{}", sanitizeText(top.file), top.line, domain);
}

void
appendStat(std::string& out, const StatDiff& stat, GroupBy by, bool sampled,
           const TextReportOptions& options) {
    auto it = std::back_inserter(out);
    fmt::format_to(it, "{}: size={} ({}), count={} ({:+d})", statLabel(stat, by),
                   formatSize(stat.size, false), formatSize(stat.sizeDiff, true), stat.count,
                   stat.countDiff);
    if (stat.count != 0) {
        fmt::format_to(
            it, ", average={}",
            formatSize(static_cast<double>(stat.size) / static_cast<double>(stat.count), false));
    }
    if (auto few = fewSamples(stat, sampled)) {
        fmt::format_to(it, " ({} sample{}: rough; use --exact or a smaller --sample-bytes)", *few,
                       *few == 1 ? "" : "s");
    }
    out += '\n';

    if (by != GroupBy::Traceback) {
        if (by == GroupBy::Lineno || by == GroupBy::User) {
            if (auto source = sourceFor(options, stat.key.front())) {
                fmt::format_to(it, "    {}\n", *source);
            }
        }
        return;
    }
    // Like tracemalloc's Traceback.format(): oldest call first, so the list
    // reads as a Python traceback and ends at the allocating line.
    for (auto frame = stat.key.rbegin(); frame != stat.key.rend(); ++frame) {
        fmt::format_to(it, "  File \"{}\", line {}", sanitizeText(frame->file), frame->line);
        if (!frame->function.empty()) {
            fmt::format_to(it, ", in {}", sanitizeText(frame->function));
        }
        out += '\n';
        if (auto source = sourceFor(options, *frame)) {
            fmt::format_to(it, "    {}\n", *source);
        }
    }
}

} // namespace

std::string
formatSize(double size, bool sign) {
    constexpr std::string_view kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    for (std::string_view unit : kUnits) {
        bool last = unit == kUnits[std::size(kUnits) - 1];
        if (std::fabs(size) < 100 && unit != "B") {
            return sign ? fmt::format("{:+.1f} {}", size, unit) : fmt::format("{:.1f} {}", size, unit);
        }
        if (std::fabs(size) < 10 * 1024 || last) {
            return sign ? fmt::format("{:+.0f} {}", size, unit) : fmt::format("{:.0f} {}", size, unit);
        }
        size /= 1024;
    }
    return {}; // not reached: the last unit always returns
}

std::string
renderDiffText(const std::vector<StatDiff>& stats, const Snapshot& older, const Snapshot& newer,
               GroupBy by, const TextReportOptions& options) {
    std::string out;
    auto it = std::back_inserter(out);
    fmt::format_to(it, "memtap diff: {} -> {}, grouped by {}{}\n", sanitizeText(options.oldName),
                   sanitizeText(options.newName), name(by), sanitizeText(options.scope));
    fmt::format_to(it, "traced: {} in {} blocks -> {} in {} blocks ({}, {:+d} blocks)\n",
                   formatSize(older.tracedBytes, false), older.tracedCount,
                   formatSize(newer.tracedBytes, false), newer.tracedCount,
                   formatSize(newer.tracedBytes - older.tracedBytes, true),
                   newer.tracedCount - older.tracedCount);
    if (newer.mode == "sampled" || older.mode == "sampled") {
        const Snapshot& sampled = newer.mode == "sampled" ? newer : older;
        fmt::format_to(it, "sampled mode (mean interval {}): sizes and counts are estimates\n",
                       formatSize(static_cast<double>(sampled.sampleBytes), false));
    }
    if (auto mismatch = sessionMismatch(older, newer)) {
        fmt::format_to(it, "warning: {}\n", *mismatch);
    }
    if (stats.empty()) {
        out += "no differences\n";
        return out;
    }
    size_t shown = options.top == 0 ? stats.size() : std::min(options.top, stats.size());
    fmt::format_to(it, "top {} of {} differences:\n\n", shown, stats.size());
    for (size_t i = 0; i < shown; ++i) {
        appendStat(out, stats[i], by, newer.mode == "sampled", options);
    }
    return out;
}

} // namespace memtap::report
