// `memtap report`: what a journal (src/report/journal.h) shows, in text and
// JSON, from the journal alone, so it works after the process is gone: the
// process and how the recording ended, a compact timeline, the sites that
// grew from the first record to the last, and the breakdown at the highest
// peak recorded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "report/diff.h"
#include "report/journal.h"

namespace memtap::report {

struct JournalReportOptions {
    std::string path; // shown in the header
    size_t top = 10;  // sites per table; 0: all
    GroupBy by = GroupBy::Lineno;
    // Source text of FILE:LINE, when it can still be read.
    std::function<std::optional<std::string>(const std::string& file, int line)> sourceLine;
    // Formats unix ms as wall-clock text ("18:40:01.2"); tests pass a fixed one.
    std::function<std::string(uint64_t unixMs, bool withDate)> clock;
};

// At most this many timeline rows; longer journals show evenly spaced
// records, always with the first, the last and the one of the highest peak.
inline constexpr size_t kTimelineRows = 24;

// Indices of the samples the timeline shows, in order.
std::vector<size_t> timelineRows(const Journal& journal, size_t maxRows = kTimelineRows);
// The sample whose peak breakdown is the highest recorded, if any carries one.
std::optional<size_t> highestPeakSample(const Journal& journal);
// The first sample of the session (attach or appended recording) that
// sample `index` belongs to: growth is measured within one session, since
// the traces restart with each attach.
size_t sessionFirstSample(const Journal& journal, size_t index);

std::string renderJournalText(const Journal& journal, const JournalReportOptions& options);
// {"journal", "pid", "start_time", "python", "mode", "sample_bytes",
//  "recorder", "interval_ms", "sessions", "records", "from_unix_ms",
//  "to_unix_ms", "end": {"unix_ms", "reason", "detail"} or null, "notes",
//  "timeline": [{"unix_ms", "rss_bytes", "traced_bytes", "traced_count",
//  "peak_traced_bytes"}] (every record), "growth": {"by", "stats"},
//  "peak": {"unix_ms", "peak_traced_bytes", "record_unix_ms", "stats"} or null}
// with stats as in `memtap diff --json`.
std::string renderJournalJson(const Journal& journal, const JournalReportOptions& options);

// Local wall-clock time: "18:40:01.2", with the date ("2026-12-02 18:40:01.2").
std::string localClock(uint64_t unixMs, bool withDate);

} // namespace memtap::report
