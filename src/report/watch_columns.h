// Pieces of the watch screen that are plain functions of the rows: the
// sparklines, the sort orders, and the SITE texts (a common directory
// prefix taken off, rows that share a top frame told apart by a caller).
// Kept apart from the layout in watch_screen.cpp so each is tested alone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "report/watch_screen.h"

namespace memtap::report {

// `cells` block characters for the last `cells` values, scaled from the
// smallest to the largest of them ("where is it heading"); a flat series
// sits on the bottom level unless it is above zero. Blank cells pad a short
// history on the left.
std::string levelSparkline(const std::vector<int64_t>& values, int cells);

// Growth per interval, scaled to the largest growth: any growth shows at
// least the second level, so "a little" differs from "none".
std::string growthSparkline(const std::vector<int64_t>& history, int cells);

// The site's size (its growth since the baseline) at the end of each held
// interval, oldest first, rebuilt from the interval growth and the total.
std::vector<int64_t> sizeTrendOf(const WatchRow& row);

// Reorders rows for `key` (stable: equal rows keep the model's order).
void sortWatchRows(std::vector<WatchRow>& rows, WatchSort key);
std::string_view name(WatchSort key);
// growth -> last -> count -> peak (when the agent keeps one) -> growth.
WatchSort nextWatchSort(WatchSort key, bool peakKnown);

// The directory every row's top frame lies under ("/srv/app/"), or "" when
// the rows share none or fewer than two rows have a file.
std::string commonDirectoryOf(const std::vector<WatchRow>& rows);

// SITE texts aligned with rows, before fitting: the label, "<unknown>", or
// "file:line" with `prefix` taken off; where several rows have the same
// top frame (grouped by traceback), " ← file:line" of the first caller
// frame where their tracebacks part.
std::vector<std::string> siteTextsOf(const std::vector<WatchRow>& rows, std::string_view prefix);

} // namespace memtap::report
