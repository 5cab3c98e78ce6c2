#include "report/journal.h"

#include <array>
#include <charconv>
#include <map>

#include <fmt/format.h>

#include "base/error.h"
#include "report/crc32.h"

namespace memtap::report {
namespace {

// "mtj " + SEQ + TYPE + LENGTH (20 digits each at most) + two CRCs: well
// under this. A longer run of bytes without a newline is not a frame line.
constexpr size_t kMaxFrameLine = 128;
constexpr size_t kMaxTypeLength = 16;

// Values are single lines: a newline in one (a python version string, a
// death's wording) must not start a key of its own.
std::string
oneLine(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c == '\n' || c == '\r') {
            c = ' ';
        }
    }
    return out;
}

template <typename T>
std::optional<T>
parseNumber(std::string_view text) {
    T value{};
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end) {
        return std::nullopt;
    }
    return value;
}

std::optional<uint32_t>
parseHex32(std::string_view text) {
    uint32_t value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value, 16);
    if (text.size() != 8 || ec != std::errc{} || ptr != end) {
        return std::nullopt;
    }
    return value;
}

std::vector<std::string_view>
splitSpaces(std::string_view line) {
    std::vector<std::string_view> fields;
    while (!line.empty()) {
        size_t space = line.find(' ');
        fields.push_back(line.substr(0, space));
        if (space == std::string_view::npos) {
            break;
        }
        line.remove_prefix(space + 1);
    }
    return fields;
}

// One record's payload: its KEY VALUE lines and its embedded snapshots.
struct Payload {
    std::map<std::string, std::string, std::less<>> values;
    std::map<std::string, std::string_view, std::less<>> snapshots;
};

// Names the record in every error, so a damaged journal is reported, not guessed at.
class RecordContext {
public:
    RecordContext(uint64_t index, size_t offset) : index_(index), offset_(offset) {}

    [[noreturn]] void fail(std::string_view what) const {
        throw Error(ExitCode::Failure,
                    fmt::format("damaged journal: record {} (at byte {}): {}", index_, offset_, what),
                    "the records before it are intact; nothing after it is read");
    }

    Payload parsePayload(std::string_view payload) const {
        Payload result;
        while (!payload.empty()) {
            size_t newline = payload.find('\n');
            if (newline == std::string_view::npos) {
                fail("a payload line is not terminated by a newline");
            }
            std::string_view line = payload.substr(0, newline);
            payload.remove_prefix(newline + 1);
            if (line.substr(0, 9) == "snapshot ") {
                auto fields = splitSpaces(line);
                auto bytes = fields.size() == 3 ? parseNumber<size_t>(fields[2]) : std::nullopt;
                if (!bytes || *bytes > payload.size()) {
                    fail(fmt::format("bad snapshot line '{}'", line));
                }
                result.snapshots[std::string(fields[1])] = payload.substr(0, *bytes);
                payload.remove_prefix(*bytes);
                continue;
            }
            size_t space = line.find(' ');
            std::string key(line.substr(0, space));
            result.values[key] =
                space == std::string_view::npos ? "" : std::string(line.substr(space + 1));
        }
        return result;
    }

    template <typename T>
    T number(const Payload& payload, std::string_view key, std::optional<T> fallback = {}) const {
        auto it = payload.values.find(key);
        if (it == payload.values.end()) {
            if (fallback) {
                return *fallback;
            }
            fail(fmt::format("no '{}'", key));
        }
        auto value = parseNumber<T>(it->second);
        if (!value) {
            fail(fmt::format("'{}' is not a valid number: '{}'", key, it->second));
        }
        return *value;
    }

    std::string text(const Payload& payload, std::string_view key) const {
        auto it = payload.values.find(key);
        return it == payload.values.end() ? std::string() : it->second;
    }

    Snapshot snapshot(std::string_view text) const {
        try {
            return parseSnapshotOrThrow(text);
        } catch (const Error& e) {
            fail(e.what());
        }
    }

private:
    uint64_t index_;
    size_t offset_;
};

JournalHeader
decodeHeader(const RecordContext& context, const Payload& payload) {
    JournalHeader header;
    header.pid = context.number<int64_t>(payload, "pid");
    header.startTime = context.text(payload, "start_time");
    if (header.startTime.empty()) {
        context.fail("no 'start_time'");
    }
    header.python = context.text(payload, "python");
    header.mode = context.text(payload, "mode");
    header.sampleBytes = context.number<uint64_t>(payload, "sample_bytes", 0);
    header.attachedAtUnixMs = context.number<uint64_t>(payload, "attached_at_unix_ms", 0);
    header.intervalMs = context.number<uint64_t>(payload, "interval_ms", 0);
    header.startedUnixMs = context.number<uint64_t>(payload, "started_unix_ms", 0);
    header.recorder = context.text(payload, "recorder");
    return header;
}

JournalSample
decodeSample(const RecordContext& context, const Payload& payload) {
    JournalSample sample;
    sample.unixMs = context.number<uint64_t>(payload, "unix_ms");
    sample.rssBytes = context.number<int64_t>(payload, "rss_bytes", 0);
    sample.tracedBytes = context.number<int64_t>(payload, "traced_bytes", 0);
    sample.tracedCount = context.number<int64_t>(payload, "traced_count", 0);
    sample.peakTracedBytes = context.number<int64_t>(payload, "peak_traced_bytes", -1);
    sample.peakUnixMs = context.number<uint64_t>(payload, "peak_unix_ms", 0);
    auto now = payload.snapshots.find("now");
    if (now == payload.snapshots.end()) {
        context.fail("a sample without its 'snapshot now'");
    }
    sample.now = context.snapshot(now->second);
    if (auto peak = payload.snapshots.find("peak"); peak != payload.snapshots.end()) {
        sample.peak = context.snapshot(peak->second);
    }
    return sample;
}

JournalEnd
decodeEnd(const RecordContext& context, const Payload& payload) {
    JournalEnd end;
    end.unixMs = context.number<uint64_t>(payload, "unix_ms");
    end.reason = context.text(payload, "reason");
    end.detail = context.text(payload, "detail");
    return end;
}

void
appendSnapshot(std::string& out, std::string_view name, const Snapshot& snapshot) {
    std::string text = serializeSnapshot(snapshot);
    fmt::format_to(std::back_inserter(out), "snapshot {} {}\n", name, text.size());
    out += text;
}

} // namespace

bool
looksLikeJournal(std::string_view bytes) {
    size_t n = std::min(bytes.size(), kJournalMagic.size());
    return !bytes.empty() && bytes.substr(0, n) == kJournalMagic.substr(0, n);
}

Journal
parseJournalOrThrow(std::string_view bytes) {
    if (bytes.substr(0, kJournalMagic.size()) != kJournalMagic) {
        if (looksLikeJournal(bytes)) {
            throw Error(ExitCode::Failure, "the journal holds no complete header",
                        "the writer was stopped while it started; there is nothing to read");
        }
        if (bytes.substr(0, 15) == "memtap-journal ") {
            size_t newline = bytes.find('\n');
            throw Error(ExitCode::Failure,
                        fmt::format("unsupported journal format '{}' (this memtap reads version 1)",
                                    bytes.substr(0, std::min<size_t>(newline, 40))),
                        "read it with the memtap that wrote it");
        }
        throw Error(ExitCode::Failure,
                    "not a memtap journal (it does not start with 'memtap-journal 1')");
    }
    Journal journal;
    size_t pos = kJournalMagic.size();
    journal.completeBytes = pos;
    uint64_t index = 1;
    const std::string torn = "last record incomplete: ignored";
    while (pos < bytes.size()) {
        RecordContext context(index, pos);
        std::string_view rest = bytes.substr(pos);
        size_t newline = rest.substr(0, kMaxFrameLine).find('\n');
        if (newline == std::string_view::npos) {
            if (rest.size() < kMaxFrameLine) {
                journal.notes.push_back(torn); // a frame line cut short
                break;
            }
            context.fail("no frame line ('mtj SEQ TYPE LENGTH CRC CRC')");
        }
        std::string_view line = rest.substr(0, newline);
        auto fields = splitSpaces(line);
        if (fields.size() != 6 || fields[0] != "mtj") {
            context.fail(fmt::format("not a frame line: '{}'", line.substr(0, 60)));
        }
        auto frameCrc = parseHex32(fields[5]);
        if (!frameCrc || *frameCrc != crc32(line.substr(0, line.size() - fields[5].size()))) {
            context.fail("the frame line's checksum does not match");
        }
        auto seq = parseNumber<uint64_t>(fields[1]);
        auto length = parseNumber<size_t>(fields[3]);
        auto payloadCrc = parseHex32(fields[4]);
        std::string_view type = fields[2];
        if (!seq || !length || !payloadCrc || type.empty() || type.size() > kMaxTypeLength) {
            context.fail(fmt::format("malformed frame line: '{}'", line));
        }
        if (*seq != journal.nextSequence) {
            context.fail(fmt::format("sequence {} where {} was due (a record is missing or repeated)",
                                     *seq, journal.nextSequence));
        }
        if (rest.size() - newline - 1 < *length) {
            journal.notes.push_back(torn); // a payload cut short
            break;
        }
        std::string_view payload = rest.substr(newline + 1, *length);
        size_t end = pos + newline + 1 + *length;
        if (crc32(payload) != *payloadCrc) {
            if (end == bytes.size()) {
                // What a machine crash leaves: the file's length written, its
                // last blocks not.
                journal.notes.push_back("last record incomplete (its checksum does not match): ignored");
                break;
            }
            context.fail("the payload's checksum does not match");
        }
        Payload parsed = context.parsePayload(payload);
        if (type == "header") {
            journal.headers.push_back(decodeHeader(context, parsed));
            journal.sessionStarts.push_back(journal.samples.size());
            journal.end.reset(); // an end before it belonged to the session before
        } else if (journal.headers.empty()) {
            context.fail(fmt::format("a '{}' record before the header", type));
        } else if (type == "sample") {
            journal.samples.push_back(decodeSample(context, parsed));
        } else if (type == "end") {
            journal.end = decodeEnd(context, parsed);
        } // another type: from a newer memtap, skipped whole
        pos = end;
        journal.completeBytes = end;
        journal.nextSequence = *seq + 1;
        ++index;
    }
    if (journal.headers.empty()) {
        throw Error(ExitCode::Failure, "the journal holds no complete header",
                    "the writer was stopped while it started; there is nothing to read");
    }
    return journal;
}

std::string
JournalEncoder::frame(std::string_view type, std::string_view payload) {
    std::string line =
        fmt::format("mtj {} {} {} {:08x} ", next_++, type, payload.size(), crc32(payload));
    std::string out = fmt::format("{}{:08x}\n", line, crc32(line));
    out += payload;
    return out;
}

std::string
JournalEncoder::header(const JournalHeader& header, bool withMagic) {
    std::string payload = fmt::format(
        "pid {}\nstart_time {}\npython {}\nmode {}\nsample_bytes {}\nattached_at_unix_ms {}\n"
        "interval_ms {}\nstarted_unix_ms {}\nrecorder {}\n",
        header.pid, oneLine(header.startTime), oneLine(header.python), oneLine(header.mode),
        header.sampleBytes, header.attachedAtUnixMs, header.intervalMs, header.startedUnixMs,
        oneLine(header.recorder));
    std::string out = withMagic ? std::string(kJournalMagic) : std::string();
    out += frame("header", payload);
    // A new session's first sample carries its peak whatever the last one was.
    carriedPeak_ = false;
    return out;
}

bool
JournalEncoder::wantsPeak(int64_t peakTracedBytes, uint64_t peakUnixMs) const {
    return peakTracedBytes >= 0 &&
           (!carriedPeak_ || peakTracedBytes != lastPeakBytes_ || peakUnixMs != lastPeakUnixMs_);
}

std::string
JournalEncoder::sample(const JournalSample& sample) {
    std::string payload =
        fmt::format("unix_ms {}\nrss_bytes {}\ntraced_bytes {}\ntraced_count {}\n", sample.unixMs,
                    sample.rssBytes, sample.tracedBytes, sample.tracedCount);
    if (sample.peakTracedBytes >= 0) {
        fmt::format_to(std::back_inserter(payload), "peak_traced_bytes {}\npeak_unix_ms {}\n",
                       sample.peakTracedBytes, sample.peakUnixMs);
    }
    appendSnapshot(payload, "now", sample.now);
    if (sample.peak && wantsPeak(sample.peakTracedBytes, sample.peakUnixMs)) {
        appendSnapshot(payload, "peak", *sample.peak);
        carriedPeak_ = true;
        lastPeakBytes_ = sample.peakTracedBytes;
        lastPeakUnixMs_ = sample.peakUnixMs;
    }
    return frame("sample", payload);
}

std::string
JournalEncoder::end(const JournalEnd& end) {
    return frame("end", fmt::format("unix_ms {}\nreason {}\ndetail {}\n", end.unixMs,
                                    oneLine(end.reason), oneLine(end.detail)));
}

} // namespace memtap::report
