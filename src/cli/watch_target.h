// One process under `watch`: its agent lease, its snapshots and model, its
// figures at the baseline, the journal kept for it, pymalloc's latest read.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "cli/agent_lease.h"
#include "cli/journal_file.h"
#include "cli/memory_figures.h"
#include "cli/watch_loop.h"
#include "report/diff.h"
#include "report/snapshot.h"

namespace memtap::cli {

struct WatchTarget {
    explicit WatchTarget(AgentLease agentLease) : lease(std::move(agentLease)) {}
    AgentLease lease;
    std::optional<WatchModel> model;
    inject::AgentStatus status; // values empty until read
    int64_t rssAtBaseline = 0;
    int64_t lastRss = 0; // at the latest snapshot: what the last report shows once the target died
    // The journal kept in the store (unless --no-journal): one record per
    // interval from the figures watch takes anyway. Its failure is news for
    // the status line, never a reason to end the watch.
    std::optional<JournalFile> journal;
    std::optional<report::Snapshot> lastPeak;
    std::string journalProblem;
    // pymalloc's latest figures: each update arms a read and takes the last
    // completed one without waiting (the interpreter runs it when it can).
    report::PymallocFigures pymalloc;

    pid_t pid() const { return lease.pid(); }
    // The first snapshot (the baseline), the peak, a journal record.
    void startOrThrow(report::GroupBy by, std::optional<int64_t> thread);
    // One more snapshot and the figures with it.
    void updateOrThrow();
    // An agent that keeps a peak says so in its status.
    void updatePeakOrThrow();
    // Failure is a note on stderr: the watch goes on without a journal.
    void openJournalOrContinue(std::chrono::milliseconds interval);
    void journalOrContinue();
    // The end record, and where the journal is; nullopt without one.
    std::optional<std::string> endJournal(const std::string& reason, const std::string& detail);
};

} // namespace memtap::cli
