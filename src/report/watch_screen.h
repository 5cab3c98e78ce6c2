// The live `memtap watch` screen, rendered to a string from plain data. The
// CLI owns the terminal (raw mode, keys, clearing, resize); this file only
// decides what fits on a screen of a given size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "report/snapshot.h"

namespace memtap::report {

struct WatchHeader {
    int pid = 0;
    std::string python; // e.g. "3.11.7"
    std::string mode;   // "exact" | "sampled"
    uint64_t sampleBytes = 0;
    double attachedSeconds = 0;
    int64_t rssBytes = 0;
    int64_t rssChange = 0; // since the baseline
    int64_t tracedBytes = 0;
    int64_t mallocFreeBytes = 0;
    std::string byName;     // "lineno" | "filename" | "traceback" | "thread" | "user", and
                            // a filter ("lineno, thread 4242 (worker-3) only")
    std::string statusLine; // e.g. "snapshot s2 taken"; may be empty
    // The traced high-water mark since attach or the last baseline (the
    // agent's peak_traced_bytes); 0 when the agent keeps none: then the
    // screen has no peak figure and no PEAK column.
    int64_t peakTracedBytes = 0;
    // RSS explained in short (memory_breakdown.h renderBreakdownShort); may be empty.
    std::string breakdown = {};
    // One figure per report so far, oldest first, for the header's
    // sparklines; fewer than two points draw none.
    std::vector<int64_t> rssHistory = {};
    std::vector<int64_t> tracedHistory = {};
    // --all-workers: the workers' pids (pid is the master's), aligned with
    // every row's perWorker; empty for one process.
    std::vector<int> workers = {};
};

struct WatchRow {
    std::vector<Frame> key; // most recent call first, as StatDiff::key
    int64_t sizeGrowth = 0; // since the baseline
    int64_t lastIntervalGrowth = 0;
    int64_t countDiff = 0;
    std::vector<int64_t> history; // growth per interval, oldest first
    std::string sourceLine;       // of the top frame; may be empty
    int64_t peakGrowth = 0;       // since the baseline, at the traced peak (PEAK column)
    // Shown as the SITE instead of the top frame when not empty (a thread's
    // row, "thread 4242 (worker-3)"; a user grouping's fallback row).
    std::string label{};
    int64_t tid = 0;                  // the thread of a thread's row; 0 otherwise
    std::vector<int64_t> perWorker{}; // growth in each worker (WatchHeader::workers)
};

// The orders the rows can be shown in (key `o`); growth is the model's own.
enum class WatchSort { Growth, Last, Count, Peak };

// What the TREND column plots (key `g`): the site's size over the held
// intervals (a site that stopped growing reads flat at the top), or its
// growth in each interval.
enum class WatchTrend { Size, Growth };

struct WatchScreen {
    WatchHeader header;
    std::vector<WatchRow> rows; // in display order, largest growth first
};

struct ScreenOptions {
    int width = 100;
    int height = 30;
    bool color = false;
    int selected = -1;          // highlighted row, -1 for none
    bool showTraceback = false; // the selected row's traceback in place of the table
    std::string panel;          // not empty: these lines in place of the table (watch's `r`)
    WatchTrend trend = WatchTrend::Size;
    WatchSort sort = WatchSort::Growth; // named in the header; the rows come sorted
};

// At most `height` lines of at most `width` display columns each, separated
// by '\n' with none after the last (so a full screen does not scroll). Lines
// are not padded: the CLI erases to the end of each line. ANSI SGR colors
// only when options.color; the table scrolls to keep the selected row shown.
std::string renderWatchScreen(const WatchScreen& screen, const ScreenOptions& options);

// The form for logs and CI (stdout is not a terminal): the header and the top
// rows as plain lines, ending with a blank line so reports written one after
// another stay apart. No timestamps, so the output is reproducible.
std::string renderWatchPlain(const WatchScreen& screen, size_t top);

} // namespace memtap::report
