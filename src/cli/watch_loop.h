// What `memtap watch` knows between two redraws, kept apart from the terminal
// and the agent so its arithmetic is plain: a baseline, the last few
// snapshots, and the growth of every site per interval for the sparkline.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "report/diff.h"
#include "report/snapshot.h"
#include "report/watch_screen.h"

namespace memtap::cli {

class SourceLines;

// One target's snapshots. The last kHistory + 1 are held, so changing --by
// recomputes the sparkline from them instead of starting it over.
class WatchModel {
public:
    // The sparkline shows this many intervals (report/watch_screen.cpp).
    static constexpr size_t kHistory = 8;

    WatchModel(report::Snapshot baseline, report::GroupBy by);

    void addSnapshot(report::Snapshot current);
    // The latest snapshot becomes the baseline: growth restarts from zero,
    // the interval history (which does not depend on the baseline) stays.
    void resetBaseline();
    // The agent's breakdown at its traced peak ("snapshot peak"): each row's
    // PEAK is its growth from the baseline to it, and a site that rose and
    // fell again ranks by that height.
    void setPeak(report::Snapshot peak);
    void setGroupBy(report::GroupBy by);
    report::GroupBy groupBy() const { return by_; }
    // Every row counts only that thread's allocations (nullopt: all threads);
    // the history is recomputed from the held snapshots, as setGroupBy does.
    void setThreadFilter(std::optional<int64_t> tid);
    std::optional<int64_t> threadFilter() const { return onlyThread_; }
    const report::Snapshot& latest() const { return recent_.back(); }

    // Growth since the baseline, largest first (compareSnapshots order).
    const std::vector<report::StatDiff>& sinceBaseline() const { return sinceBaseline_; }
    // The site's growth in each held interval, oldest first.
    std::vector<int64_t> historyOf(const std::vector<report::Frame>& key) const;
    // Rows for the screen: at most `top` (0: all), each with its source line.
    std::vector<report::WatchRow> rows(size_t top, SourceLines& sources) const;
    // A full traceback for a row's key: the key itself when grouped by
    // traceback, else the largest trace of the latest snapshot in that group
    // (grouped by thread: of thread tid).
    std::vector<report::Frame> fullTracebackOf(const std::vector<report::Frame>& key,
                                               int64_t tid = 0) const;

private:
    void recompute();

    void recomputeIntervals();

    report::GroupBy by_;
    std::optional<int64_t> onlyThread_;
    report::Snapshot baseline_;
    std::deque<report::Snapshot> recent_; // newest last, at most kHistory + 1
    // Per interval (oldest first): site key -> growth in that interval.
    std::deque<std::map<std::string, int64_t>> intervals_;
    std::vector<report::StatDiff> sinceBaseline_;
    std::optional<report::Snapshot> peak_;
    std::vector<report::StatDiff> peakSinceBaseline_; // empty without a peak
};

// Identifies a group across snapshots: (file, line) of each key frame, as
// compareSnapshots pairs them.
std::string siteKeyOf(const std::vector<report::Frame>& key);

// The SITE text of a row: "thread 4242 (worker-3)" for a thread's group,
// "FILE:LINE [no frame in your code]" for a user grouping's fallback, else
// empty (the key's top frame is the site).
std::string rowLabelOf(const report::StatDiff& stat);

// --all-workers: one row per site, its growth summed over the workers (the
// sum ranks the sites) and kept per worker (WatchRow::perWorker, aligned
// with models), its interval history summed cell by cell from the newest.
std::vector<report::WatchRow> combineWorkers(const std::vector<const WatchModel*>& models, size_t top,
                                             SourceLines& sources);

} // namespace memtap::cli
