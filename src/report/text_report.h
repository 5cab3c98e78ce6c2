// The plain-text diff report: tracemalloc's StatisticDiff lines, so people who
// know `python -X tracemalloc` read memtap's output without a legend.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "report/diff.h"
#include "report/snapshot.h"

namespace memtap::report {

// tracemalloc's _format_size: "512 B", "+12.3 KiB", "4096 MiB" — below 100 of
// a unit (other than B) one decimal, else none; units up to TiB.
std::string formatSize(double size, bool sign);

struct TextReportOptions {
    size_t top = 10; // 0: all
    bool showSource = true;
    // Returns the text of FILE:LINE in the target's sources, if available.
    std::function<std::optional<std::string>(const std::string& file, int line)> sourceLine;
    // Names of the snapshots in the header (e.g. "s1", "baseline").
    std::string oldName = "old";
    std::string newName = "new";
    // Appended to the header's "grouped by ..." (e.g. ", thread 4242 only").
    std::string scope;
};

// A header (snapshots, grouping, traced totals, sampling caveat), then one
// StatDiff line per stat in the given order, each followed by its stripped
// source line. Plain text only: names are sanitized of control characters.
std::string renderDiffText(const std::vector<StatDiff>& stats, const Snapshot& older,
                           const Snapshot& newer, GroupBy by, const TextReportOptions& options);

} // namespace memtap::report
