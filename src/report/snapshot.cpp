#include "report/snapshot.h"

#include <charconv>
#include <limits>

#include <fmt/format.h>

#include "agent/protocol.h"
#include "base/error.h"

namespace memtap::report {

namespace {

constexpr std::string_view kMagic = MEMTAP_SNAPSHOT_MAGIC;
constexpr int kVersion = MEMTAP_SNAPSHOT_VERSION;
constexpr int kOldestVersion = 1; // no attached_at_unix_ms, no SAMPLES field
// Version 2 has no thread lines and no TID field.

// Walks the text line by line and keeps the 1-based number of the line it
// handed out last, so every error can point at it.
class LineReader {
public:
    explicit LineReader(std::string_view text) : rest_(text) {}

    bool atEnd() const { return rest_.empty(); }
    int lineNumber() const { return lineNumber_; }

    // The next line without its '\n'; fails if the text has no more lines or
    // the last line is not terminated (a truncated reply).
    std::string_view next() {
        ++lineNumber_;
        if (rest_.empty()) {
            fail("unexpected end of snapshot");
        }
        size_t newline = rest_.find('\n');
        if (newline == std::string_view::npos) {
            fail("line is not terminated by a newline (truncated snapshot?)");
        }
        std::string_view line = rest_.substr(0, newline);
        rest_.remove_prefix(newline + 1);
        return line;
    }

    [[noreturn]] void fail(std::string_view what) const {
        throw Error(ExitCode::Failure,
                    fmt::format("malformed snapshot at line {}: {}", lineNumber_, what));
    }

private:
    std::string_view rest_;
    int lineNumber_ = 0;
};

// Splits off the first space-separated field.
std::string_view
takeField(std::string_view& rest) {
    size_t space = rest.find(' ');
    std::string_view field = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    return field;
}

template <typename T>
T
parseNumber(const LineReader& reader, std::string_view field, std::string_view what) {
    T value{};
    const char* end = field.data() + field.size();
    auto [ptr, ec] = std::from_chars(field.data(), end, value);
    if (field.empty() || ec != std::errc{} || ptr != end) {
        reader.fail(fmt::format("{} is not a valid number: '{}'", what, field));
    }
    return value;
}

int64_t
parseNonNegative(const LineReader& reader, std::string_view field, std::string_view what) {
    int64_t value = parseNumber<int64_t>(reader, field, what);
    if (value < 0) {
        reader.fail(fmt::format("{} is negative: {}", what, value));
    }
    return value;
}

// Reads "KEY VALUE" and returns VALUE, failing if KEY is not the expected one.
std::string_view
expectKey(LineReader& reader, std::string_view key) {
    std::string_view rest = reader.next();
    std::string_view found = takeField(rest);
    if (found != key) {
        reader.fail(fmt::format("expected '{} ...', got '{}'", key, found));
    }
    return rest;
}

std::string
unescapeName(const LineReader& reader, std::string_view escaped) {
    std::string out;
    out.reserve(escaped.size());
    for (size_t i = 0; i < escaped.size(); ++i) {
        char c = escaped[i];
        if (c != '\\') {
            out += c;
            continue;
        }
        if (++i == escaped.size()) {
            reader.fail("name ends with a lone backslash");
        }
        switch (escaped[i]) {
        case '\\':
            out += '\\';
            break;
        case 'n':
            out += '\n';
            break;
        case 't':
            out += '\t';
            break;
        default:
            reader.fail(fmt::format("unknown escape '\\{}' in name", escaped[i]));
        }
    }
    return out;
}

void
appendEscapedName(std::string& out, std::string_view name) {
    for (char c : name) {
        switch (c) {
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            out += c;
        }
    }
}

Frame
parseFrameLine(LineReader& reader) {
    std::string_view rest = reader.next();
    if (takeField(rest) != "F") {
        reader.fail("expected a frame line 'F LINE FILE\\tFUNCTION'");
    }
    std::string_view lineField = takeField(rest);
    // A negative line is real data, not damage: PyCode_Addr2Line returns -1
    // for an instruction that has no line (CPython 3.10+, PEP 626).
    // tracemalloc clamps it to 0 (Python/tracemalloc.c, tracemalloc_get_frame:
    // "if (lineno < 0) { lineno = 0; }"), and so do we, so sites group alike.
    int64_t wideLine = parseNumber<int64_t>(reader, lineField, "frame line number");
    if (wideLine > std::numeric_limits<int>::max()) {
        reader.fail(fmt::format("frame line number is too large: {}", wideLine));
    }
    int line = wideLine < 0 ? 0 : static_cast<int>(wideLine);
    // Names never contain a raw tab (it is escaped), so the first one separates them.
    size_t tab = rest.find('\t');
    if (tab == std::string_view::npos) {
        reader.fail("frame has no tab between file and function");
    }
    return Frame{unescapeName(reader, rest.substr(0, tab)), line,
                 unescapeName(reader, rest.substr(tab + 1))};
}

} // namespace

Snapshot
parseSnapshotOrThrow(std::string_view text) {
    LineReader reader(text);
    Snapshot snapshot;

    std::string_view versionField = expectKey(reader, kMagic);
    int version = parseNumber<int>(reader, versionField, "snapshot version");
    if (version < kOldestVersion || version > kVersion) {
        reader.fail(fmt::format("unsupported snapshot version {} (this memtap reads {} to {})",
                                versionField, kOldestVersion, kVersion));
    }
    std::string_view mode = expectKey(reader, "mode");
    if (mode != "exact" && mode != "sampled") {
        reader.fail(fmt::format("mode must be 'exact' or 'sampled', got '{}'", mode));
    }
    snapshot.mode = std::string(mode);
    snapshot.sampleBytes =
        parseNumber<uint64_t>(reader, expectKey(reader, "sample_bytes"), "sample_bytes");
    if (version >= 2) {
        snapshot.attachedAtUnixMs = parseNumber<uint64_t>(
            reader, expectKey(reader, "attached_at_unix_ms"), "attached_at_unix_ms");
    }
    snapshot.tracedBytes = parseNonNegative(reader, expectKey(reader, "traced_bytes"), "traced_bytes");
    snapshot.tracedCount = parseNonNegative(reader, expectKey(reader, "traced_count"), "traced_count");

    while (true) {
        std::string_view rest = reader.next();
        std::string_view tag = takeField(rest);
        if (tag == "end" && rest.empty()) {
            break;
        }
        if (tag == "thread" && version >= 3) {
            int64_t tid = parseNonNegative(reader, takeField(rest), "thread id");
            std::string_view state = takeField(rest);
            if (state != "running" && state != "exited" && state != "unknown") {
                reader.fail(
                    fmt::format("thread state must be running, exited or unknown, got '{}'", state));
            }
            snapshot.threads[tid] = ThreadInfo{unescapeName(reader, rest), std::string(state)};
            continue;
        }
        if (tag == "domain" && version >= 4) {
            auto domain = parseNumber<uint32_t>(reader, takeField(rest), "domain");
            snapshot.domains[domain] = unescapeName(reader, rest);
            continue;
        }
        if (tag != "T") {
            reader.fail(fmt::format("expected 'T SIZE COUNT NFRAMES' or 'end', got '{}'", tag));
        }
        Trace trace;
        trace.size = parseNonNegative(reader, takeField(rest), "trace size");
        trace.count = parseNonNegative(reader, takeField(rest), "trace count");
        // The frame count is not used to reserve memory: it comes from another
        // process and only bounds the loop, which fails at the end of the text.
        int64_t nframes = parseNonNegative(reader, takeField(rest), "trace frame count");
        if (version >= 2) {
            trace.samples = parseNonNegative(reader, takeField(rest), "trace sample count");
        }
        if (version >= 3) {
            trace.tid = parseNonNegative(reader, takeField(rest), "trace thread id");
        }
        if (version >= 4) {
            trace.domain = parseNumber<uint32_t>(reader, takeField(rest), "trace domain");
        }
        if (!rest.empty()) {
            reader.fail(version >= 4 ? "trailing fields after 'T SIZE COUNT NFRAMES SAMPLES TID DOMAIN'"
                        : version == 3 ? "trailing fields after 'T SIZE COUNT NFRAMES SAMPLES TID'"
                        : version == 2 ? "trailing fields after 'T SIZE COUNT NFRAMES SAMPLES'"
                                       : "trailing fields after 'T SIZE COUNT NFRAMES'");
        }
        for (int64_t i = 0; i < nframes; ++i) {
            trace.frames.push_back(parseFrameLine(reader));
        }
        snapshot.traces.push_back(std::move(trace));
    }
    if (!reader.atEnd()) {
        reader.next();
        reader.fail("data after 'end'");
    }
    return snapshot;
}

std::string
domainName(uint32_t domain) {
    if (domain == 0) {
        return "";
    }
    return domain == kNumpyDomain ? "numpy" : fmt::format("domain {}", domain);
}

std::string
domainLabel(uint32_t domain, const Snapshot& older, const Snapshot& newer) {
    for (const Snapshot* s : {&newer, &older}) {
        if (auto it = s->domains.find(domain); it != s->domains.end()) {
            return it->second;
        }
    }
    return domainName(domain);
}

std::string
serializeSnapshot(const Snapshot& snapshot) {
    std::string out = fmt::format(
        "{} {}\nmode {}\nsample_bytes {}\nattached_at_unix_ms {}\ntraced_bytes {}\ntraced_count {}\n",
        kMagic, kVersion, snapshot.mode, snapshot.sampleBytes, snapshot.attachedAtUnixMs,
        snapshot.tracedBytes, snapshot.tracedCount);
    for (const auto& [tid, thread] : snapshot.threads) {
        fmt::format_to(std::back_inserter(out), "thread {} {} ", tid, thread.state);
        appendEscapedName(out, thread.name);
        out += '\n';
    }
    for (const auto& [domain, label] : snapshot.domains) {
        fmt::format_to(std::back_inserter(out), "domain {} ", domain);
        appendEscapedName(out, label);
        out += '\n';
    }
    for (const Trace& trace : snapshot.traces) {
        // An unknown count (read from version 1) is written as the count of
        // records: in exact mode they are the same.
        int64_t samples = trace.samples >= 0 ? trace.samples : trace.count;
        fmt::format_to(std::back_inserter(out), "T {} {} {} {} {} {}\n", trace.size, trace.count,
                       trace.frames.size(), samples, trace.tid, trace.domain);
        for (const Frame& frame : trace.frames) {
            fmt::format_to(std::back_inserter(out), "F {} ", frame.line);
            appendEscapedName(out, frame.file);
            out += '\t';
            appendEscapedName(out, frame.function);
            out += '\n';
        }
    }
    out += "end\n";
    return out;
}

} // namespace memtap::report
