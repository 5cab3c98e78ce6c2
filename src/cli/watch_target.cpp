#include "cli/watch_target.h"

#include <fmt/format.h>

#include "base/error.h"
#include "cli/commands.h"
#include "cli/snapshot_store.h"
#include "cli/target_status.h"
#include "report/text_report.h"

namespace memtap::cli {

void
WatchTarget::startOrThrow(report::GroupBy by, std::optional<int64_t> thread) {
    status = agentStatusOrThrow(pid());
    rssAtBaseline = readRssBytes(pid());
    model.emplace(report::parseSnapshotOrThrow(takeSnapshotTextOrThrow(pid())), by);
    model->setThreadFilter(thread);
    updatePeakOrThrow();
    lastRss = readRssBytes(pid());
    journalOrContinue();
    pymalloc = pollPymalloc(pid(), PymallocWait{std::chrono::milliseconds(0), {}}); // arms a read
}

void
WatchTarget::updateOrThrow() {
    status = agentStatusOrThrow(pid());
    model->addSnapshot(report::parseSnapshotOrThrow(takeSnapshotTextOrThrow(pid())));
    lastRss = readRssBytes(pid());
    updatePeakOrThrow();
    journalOrContinue();
    pymalloc = pollPymalloc(pid(), PymallocWait{std::chrono::milliseconds(0), {}});
}

void
WatchTarget::updatePeakOrThrow() {
    if (status.peakTracedBytes) {
        lastPeak = report::parseSnapshotOrThrow(takePeakSnapshotTextOrThrow(pid()));
        model->setPeak(*lastPeak);
    }
}

void
WatchTarget::openJournalOrContinue(std::chrono::milliseconds interval) {
    try {
        auto instance = ProcessInstance::ofPidOrThrow(pid());
        JournalFile file = JournalFile::createInStoreOrThrow(instance);
        file.setLimit(kWatchJournalLimit);
        file.startOrThrow(journalHeaderFrom(instance, agentStatusOrThrow(pid()), lease.python(),
                                            static_cast<uint64_t>(interval.count()), "watch"));
        journal.emplace(std::move(file));
    } catch (const Error& e) {
        noteToStderr(fmt::format("no journal for {}: {}", pid(), e.what()));
    }
}

void
WatchTarget::journalOrContinue() {
    if (!journal || journal->full()) {
        return;
    }
    try {
        auto sample = journalSampleFrom(status, lastRss, unixNowMs(), model->latest(), std::nullopt);
        if (lastPeak && journal->wantsPeak(sample.peakTracedBytes, sample.peakUnixMs)) {
            sample.peak = *lastPeak;
        }
        if (!journal->appendSampleOrThrow(sample)) {
            journalProblem = fmt::format(
                "journal full ({}): no more records in {}",
                report::formatSize(static_cast<double>(journal->limit()), false), journal->path());
        }
    } catch (const Error& e) {
        journalProblem = fmt::format("journal stopped: {}", e.what());
        journal.reset();
    }
}

std::optional<std::string>
WatchTarget::endJournal(const std::string& reason, const std::string& detail) {
    if (!journal) {
        return std::nullopt;
    }
    try {
        journal->endOrThrow(report::JournalEnd{unixNowMs(), reason, detail});
    } catch (const Error& e) {
        noteToStderr(fmt::format("journal {}: {}", journal->path(), e.what()));
    }
    return journal->path();
}

} // namespace memtap::cli
