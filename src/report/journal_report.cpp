#include "report/journal_report.h"

#include <time.h>

#include <algorithm>
#include <iterator>
#include <set>

#include <fmt/format.h>

#include "report/json.h"
#include "report/text_report.h"
#include "report/text_width.h"

namespace memtap::report {
namespace {

std::string
modeText(const JournalHeader& header) {
    if (header.mode == "sampled") {
        return fmt::format("sampled mode (mean {}, estimates)",
                           formatSize(static_cast<double>(header.sampleBytes), false));
    }
    return sanitizeText(header.mode) + " mode";
}

std::string
recorderText(const JournalHeader& header) {
    if (header.recorder == "watch") {
        return "`memtap watch`";
    }
    if (header.recorder == "record") {
        return "`memtap record`";
    }
    return header.recorder.empty() ? "memtap" : sanitizeText(header.recorder);
}

std::string
seconds(uint64_t ms) {
    return ms % 1000 == 0 ? fmt::format("{}", ms / 1000)
                          : fmt::format("{:.1f}", static_cast<double>(ms) / 1000);
}

std::string
clockOf(const JournalReportOptions& options, uint64_t unixMs, bool withDate) {
    return options.clock ? options.clock(unixMs, withDate) : localClock(unixMs, withDate);
}

std::string
diffText(const Snapshot& older, const Snapshot& newer, const std::string& oldName,
         const std::string& newName, const JournalReportOptions& options) {
    TextReportOptions text;
    text.top = options.top;
    text.oldName = oldName;
    text.newName = newName;
    text.sourceLine = options.sourceLine;
    return renderDiffText(compareSnapshots(older, newer, options.by), older, newer, options.by, text);
}

} // namespace

std::string
localClock(uint64_t unixMs, bool withDate) {
    time_t seconds = static_cast<time_t>(unixMs / 1000);
    struct tm local {};
    localtime_r(&seconds, &local);
    char text[32];
    strftime(text, sizeof text, withDate ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &local);
    return fmt::format("{}.{}", text, (unixMs % 1000) / 100);
}

std::optional<size_t>
highestPeakSample(const Journal& journal) {
    std::optional<size_t> best;
    for (size_t i = 0; i < journal.samples.size(); ++i) {
        const JournalSample& sample = journal.samples[i];
        if (sample.peak && (!best || sample.peakTracedBytes > journal.samples[*best].peakTracedBytes)) {
            best = i;
        }
    }
    return best;
}

size_t
sessionFirstSample(const Journal& journal, size_t index) {
    size_t first = 0;
    for (size_t start : journal.sessionStarts) {
        if (start <= index && start < journal.samples.size()) {
            first = start;
        }
    }
    return first;
}

std::vector<size_t>
timelineRows(const Journal& journal, size_t maxRows) {
    size_t n = journal.samples.size();
    std::set<size_t> rows;
    if (n <= maxRows) {
        for (size_t i = 0; i < n; ++i) {
            rows.insert(i);
        }
    } else {
        // The records that must show, then evenly spaced ones in the room left.
        rows.insert(0);
        rows.insert(n - 1);
        if (auto peak = highestPeakSample(journal)) {
            rows.insert(*peak);
        }
        size_t spaced = maxRows > rows.size() ? maxRows - rows.size() : 0;
        for (size_t k = 1; k <= spaced; ++k) {
            rows.insert(k * (n - 1) / (spaced + 1));
        }
    }
    return {rows.begin(), rows.end()};
}

std::string
renderJournalText(const Journal& journal, const JournalReportOptions& options) {
    const JournalHeader& h = journal.headers.front();
    std::string out;
    auto it = std::back_inserter(out);
    fmt::format_to(it, "memtap report: {}\n", sanitizeText(options.path));
    fmt::format_to(it, "process {} (CPython {}), {}, recorded by {} every {} s\n", h.pid,
                   sanitizeText(h.python), modeText(h), recorderText(h), seconds(h.intervalMs));
    if (journal.samples.empty()) {
        fmt::format_to(it, "no records: the recording ended before its first interval\n");
    } else {
        uint64_t from = journal.samples.front().unixMs;
        uint64_t to = journal.samples.back().unixMs;
        fmt::format_to(it, "recorded {} to {} ({} s), {} record{}\n", clockOf(options, from, true),
                       clockOf(options, to, false), seconds(to - from), journal.samples.size(),
                       journal.samples.size() == 1 ? "" : "s");
    }
    if (journal.headers.size() > 1) {
        fmt::format_to(it, "{} recording sessions appended to one journal\n", journal.headers.size());
    }
    if (journal.end && journal.end->reason == "died") {
        fmt::format_to(it, "the process died at {}: {}\n", clockOf(options, journal.end->unixMs, false),
                       sanitizeText(journal.end->detail));
    } else if (journal.end && journal.end->reason == "failed") {
        fmt::format_to(it, "recording failed at {}: {}\n", clockOf(options, journal.end->unixMs, false),
                       sanitizeText(journal.end->detail));
    } else if (journal.end) {
        fmt::format_to(it, "recording stopped at {} ({}); the process was running then\n",
                       clockOf(options, journal.end->unixMs, false), sanitizeText(journal.end->detail));
    } else {
        fmt::format_to(
            it, "no end record: the recording is still running, or memtap was killed (the process "
                "may have ended after the last record)\n");
    }
    for (const auto& note : journal.notes) {
        fmt::format_to(it, "note: {}\n", sanitizeText(note));
    }
    if (journal.samples.empty()) {
        return out;
    }

    auto peakIndex = highestPeakSample(journal);
    bool withPeak = std::any_of(journal.samples.begin(), journal.samples.end(),
                                [](const JournalSample& s) { return s.peakTracedBytes >= 0; });
    auto rows = timelineRows(journal);
    fmt::format_to(it, "\ntimeline{}:\n",
                   rows.size() < journal.samples.size()
                       ? fmt::format(" ({} of {} records)", rows.size(), journal.samples.size())
                       : "");
    fmt::format_to(it, "  {}  {}  {}{}\n", padRight("TIME", 10), padLeft("RSS", 10),
                   padLeft("TRACED", 10), withPeak ? "  " + padLeft("PEAK", 10) : "");
    for (size_t i : rows) {
        const JournalSample& s = journal.samples[i];
        std::string line =
            fmt::format("  {}  {}  {}", padRight(clockOf(options, s.unixMs, false), 10),
                        padLeft(formatSize(static_cast<double>(s.rssBytes), false), 10),
                        padLeft(formatSize(static_cast<double>(s.tracedBytes), false), 10));
        if (withPeak) {
            line += "  " + padLeft(s.peakTracedBytes >= 0
                                       ? formatSize(static_cast<double>(s.peakTracedBytes), false)
                                       : "-",
                                   10);
        }
        if (peakIndex && i == *peakIndex) {
            line += "  <- highest peak";
        }
        out += line + "\n";
    }

    const JournalSample& last = journal.samples.back();
    const JournalSample& first =
        journal.samples[sessionFirstSample(journal, journal.samples.size() - 1)];
    fmt::format_to(it, "\ngrowth from the first record to the last{}:\n",
                   journal.headers.size() > 1 ? " of the last session" : "");
    out += diffText(first.now, last.now, "first record (" + clockOf(options, first.unixMs, false) + ")",
                    "last record (" + clockOf(options, last.unixMs, false) + ")", options);

    if (!peakIndex) {
        fmt::format_to(it, "\nno peak breakdown in this journal (the agent kept no peak)\n");
        return out;
    }
    const JournalSample& atPeak = journal.samples[*peakIndex];
    fmt::format_to(it,
                   "\nbreakdown at the highest peak recorded: {} traced at {} (growth from the first "
                   "record):\n",
                   formatSize(static_cast<double>(atPeak.peakTracedBytes), false),
                   clockOf(options, atPeak.peakUnixMs, false));
    out += diffText(first.now, *atPeak.peak,
                    "first record (" + clockOf(options, first.unixMs, false) + ")", "peak", options);
    return out;
}

std::string
renderJournalJson(const Journal& journal, const JournalReportOptions& options) {
    const JournalHeader& h = journal.headers.front();
    JsonWriter json;
    json.beginObject();
    json.key("journal");
    json.value(options.path);
    json.key("pid");
    json.value(h.pid);
    json.key("start_time");
    json.value(h.startTime);
    json.key("python");
    json.value(h.python);
    json.key("mode");
    json.value(h.mode);
    json.key("sample_bytes");
    json.value(h.sampleBytes);
    json.key("recorder");
    json.value(h.recorder);
    json.key("interval_ms");
    json.value(h.intervalMs);
    json.key("sessions");
    json.value(journal.headers.size());
    json.key("records");
    json.value(journal.samples.size());
    if (!journal.samples.empty()) {
        json.key("from_unix_ms");
        json.value(journal.samples.front().unixMs);
        json.key("to_unix_ms");
        json.value(journal.samples.back().unixMs);
    }
    json.key("end");
    if (journal.end) {
        json.beginObject();
        json.key("unix_ms");
        json.value(journal.end->unixMs);
        json.key("reason");
        json.value(journal.end->reason);
        json.key("detail");
        json.value(journal.end->detail);
        json.endObject();
    } else {
        json.null();
    }
    json.key("notes");
    json.beginArray();
    for (const auto& note : journal.notes) {
        json.value(note);
    }
    json.endArray();
    json.key("timeline");
    json.beginArray();
    for (const auto& s : journal.samples) {
        json.beginObject();
        json.key("unix_ms");
        json.value(s.unixMs);
        json.key("rss_bytes");
        json.value(s.rssBytes);
        json.key("traced_bytes");
        json.value(s.tracedBytes);
        json.key("traced_count");
        json.value(s.tracedCount);
        if (s.peakTracedBytes >= 0) {
            json.key("peak_traced_bytes");
            json.value(s.peakTracedBytes);
        }
        json.endObject();
    }
    json.endArray();
    json.key("growth");
    if (journal.samples.empty()) {
        json.null();
    } else {
        const Snapshot& older =
            journal.samples[sessionFirstSample(journal, journal.samples.size() - 1)].now;
        const Snapshot& newer = journal.samples.back().now;
        json.beginObject();
        json.key("by");
        json.value(name(options.by));
        json.key("stats");
        writeStatsJson(json, compareSnapshots(older, newer, options.by), options.by, newer.mode,
                       options.top);
        json.endObject();
    }
    json.key("peak");
    auto peakIndex = highestPeakSample(journal);
    if (!peakIndex) {
        json.null();
    } else {
        const JournalSample& atPeak = journal.samples[*peakIndex];
        json.beginObject();
        json.key("unix_ms");
        json.value(atPeak.peakUnixMs);
        json.key("peak_traced_bytes");
        json.value(atPeak.peakTracedBytes);
        json.key("record_unix_ms");
        json.value(atPeak.unixMs);
        json.key("by");
        json.value(name(options.by));
        json.key("stats");
        const Snapshot& base = journal.samples[sessionFirstSample(journal, *peakIndex)].now;
        writeStatsJson(json, compareSnapshots(base, *atPeak.peak, options.by), options.by,
                       atPeak.peak->mode, options.top);
        json.endObject();
    }
    json.endObject();
    return json.str() + "\n";
}

} // namespace memtap::report
