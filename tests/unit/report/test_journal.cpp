// The journal format (src/report/journal.h): round trips, a torn last record
// at every byte offset (what a writer killed mid-write leaves), and damage
// before the last record reported as an error naming the record.
#include <algorithm>
#include <string>

#include <catch2/catch.hpp>

#include "base/error.h"
#include "fixtures.h"
#include "report/crc32.h"
#include "report/journal.h"
#include "report/journal_report.h"

using namespace memtap::report;
using namespace memtap::report::test;

namespace {

JournalHeader
fixtureHeader() {
    JournalHeader h;
    h.pid = 4242;
    h.startTime = "123456";
    h.python = "3.11.7";
    h.mode = "exact";
    h.sampleBytes = 0;
    h.attachedAtUnixMs = 1764687731123;
    h.intervalMs = 500;
    h.startedUnixMs = 1764687731200;
    h.recorder = "record";
    return h;
}

JournalSample
fixtureSample(uint64_t unixMs, const Snapshot& now, int64_t peakBytes, uint64_t peakMs,
              std::optional<Snapshot> peak) {
    JournalSample s;
    s.unixMs = unixMs;
    s.rssBytes = 40 << 20;
    s.tracedBytes = now.tracedBytes;
    s.tracedCount = now.tracedCount;
    s.peakTracedBytes = peakBytes;
    s.peakUnixMs = peakMs;
    s.now = now;
    s.peak = std::move(peak);
    return s;
}

// Three samples (the peak moves in the first two only) and an end record.
struct Written {
    std::string bytes;
    std::vector<size_t> recordStarts; // byte offset of each record, header first
};

Written
writeFixture(bool withEnd = true) {
    JournalEncoder encoder;
    Written w;
    auto add = [&](std::string record) {
        w.recordStarts.push_back(w.bytes.size());
        w.bytes += record;
    };
    w.bytes = std::string(kJournalMagic);
    std::string header = encoder.header(fixtureHeader(), false);
    add(header);
    add(encoder.sample(fixtureSample(1000, olderSnapshot(), 1524096, 900, olderSnapshot())));
    add(encoder.sample(fixtureSample(1500, newerSnapshot(), 3668708, 1400, newerSnapshot())));
    add(encoder.sample(fixtureSample(2000, olderSnapshot(), 3668708, 1400, newerSnapshot())));
    if (withEnd) {
        add(encoder.end(JournalEnd{2100, "died", "killed by signal 9 (SIGKILL)"}));
    }
    return w;
}

std::string
errorOf(std::string_view bytes) {
    try {
        parseJournalOrThrow(bytes);
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::Failure);
        return e.what();
    }
    return "no error";
}

void
checkSameSnapshot(const Snapshot& a, const Snapshot& b) {
    CHECK(serializeSnapshot(a) == serializeSnapshot(b));
}

} // namespace

TEST_CASE("crc32 is the IEEE 802.3 one", "[journal]") {
    CHECK(crc32("123456789") == 0xCBF43926u);
    CHECK(crc32("") == 0u);
}

TEST_CASE("a journal reads back what was written", "[journal]") {
    Written w = writeFixture();
    CHECK(w.bytes.substr(0, kJournalMagic.size()) == kJournalMagic);
    Journal j = parseJournalOrThrow(w.bytes);
    REQUIRE(j.headers.size() == 1);
    const JournalHeader& h = j.headers[0];
    CHECK(h.pid == 4242);
    CHECK(h.startTime == "123456");
    CHECK(h.python == "3.11.7");
    CHECK(h.mode == "exact");
    CHECK(h.attachedAtUnixMs == 1764687731123);
    CHECK(h.intervalMs == 500);
    CHECK(h.startedUnixMs == 1764687731200);
    CHECK(h.recorder == "record");
    REQUIRE(j.samples.size() == 3);
    CHECK(j.samples[0].unixMs == 1000);
    CHECK(j.samples[0].rssBytes == (40 << 20));
    CHECK(j.samples[1].peakTracedBytes == 3668708);
    CHECK(j.samples[1].peakUnixMs == 1400);
    checkSameSnapshot(j.samples[0].now, olderSnapshot());
    checkSameSnapshot(j.samples[1].now, newerSnapshot());
    // The peak breakdown is carried where the peak moved, not where it stayed.
    REQUIRE(j.samples[0].peak);
    REQUIRE(j.samples[1].peak);
    checkSameSnapshot(*j.samples[1].peak, newerSnapshot());
    CHECK_FALSE(j.samples[2].peak);
    REQUIRE(j.end);
    CHECK(j.end->reason == "died");
    CHECK(j.end->detail == "killed by signal 9 (SIGKILL)");
    CHECK(j.notes.empty());
    CHECK(j.completeBytes == w.bytes.size());
    CHECK(j.nextSequence == 6);
}

TEST_CASE("records appended as a second session continue the sequence", "[journal]") {
    Written w = writeFixture();
    Journal first = parseJournalOrThrow(w.bytes);
    JournalEncoder more(first.nextSequence);
    std::string bytes = w.bytes + more.header(fixtureHeader(), false);
    bytes += more.sample(fixtureSample(3000, newerSnapshot(), 10, 2900, olderSnapshot()));
    Journal j = parseJournalOrThrow(bytes);
    CHECK(j.headers.size() == 2);
    CHECK(j.samples.size() == 4);
    CHECK(j.samples[3].peak); // a new session's first sample carries its peak
    CHECK_FALSE(j.end);       // the end belonged to the first session
    // Appending without the right sequence is damage, not a new session.
    JournalEncoder wrong(1);
    CHECK_THAT(errorOf(w.bytes + wrong.header(fixtureHeader(), false)),
               Catch::Contains("record 6") && Catch::Contains("sequence 1 where 6 was due"));
}

TEST_CASE("a torn last record is ignored with a note at every byte offset", "[journal]") {
    for (bool withEnd : {true, false}) {
        Written w = writeFixture(withEnd);
        size_t last = w.recordStarts.back();
        Journal whole = parseJournalOrThrow(w.bytes);
        for (size_t cut = last; cut < w.bytes.size(); ++cut) {
            INFO("cut at byte " << cut << " of " << w.bytes.size() << ", last record at " << last);
            Journal j = parseJournalOrThrow(std::string_view(w.bytes).substr(0, cut));
            CHECK(j.samples.size() == (withEnd ? 3u : 2u));
            CHECK_FALSE(j.end);
            CHECK(j.completeBytes == last);
            CHECK(j.nextSequence == whole.nextSequence - 1);
            if (cut == last) {
                CHECK(j.notes.empty()); // the file simply ends after a record
            } else {
                REQUIRE(j.notes.size() == 1);
                CHECK(j.notes[0] == "last record incomplete: ignored");
            }
        }
    }
}

TEST_CASE("a last record of full length with other bytes (a machine crash) is ignored", "[journal]") {
    Written w = writeFixture();
    std::string bytes = w.bytes;
    size_t payload = bytes.find('\n', w.recordStarts.back()) + 1;
    for (size_t i = payload; i < bytes.size(); ++i) {
        bytes[i] = '\0';
    }
    Journal j = parseJournalOrThrow(bytes);
    CHECK(j.samples.size() == 3);
    CHECK_FALSE(j.end);
    REQUIRE(j.notes.size() == 1);
    CHECK_THAT(j.notes[0], Catch::Contains("last record incomplete") && Catch::Contains("checksum"));
}

TEST_CASE("damage before the last record is an error naming the record", "[journal]") {
    Written w = writeFixture();
    // Record 3 is the second sample. Flip a byte of its payload, of its
    // length, of its frame checksum; drop a byte from it.
    size_t start = w.recordStarts[2];
    size_t payload = w.bytes.find('\n', start) + 1;
    auto flipped = [&](size_t at) {
        std::string bytes = w.bytes;
        bytes[at] = static_cast<char>(bytes[at] ^ 0x01);
        return bytes;
    };
    std::string where = "record 3 (at byte " + std::to_string(start) + ")";
    CHECK_THAT(errorOf(flipped(payload + 40)),
               Catch::Contains(where) && Catch::Contains("payload's checksum does not match"));
    CHECK_THAT(errorOf(flipped(payload - 1)), Catch::Contains(where));
    // The length: its first digit ("mtj 3 sample LENGTH ...").
    size_t length = start + std::string("mtj 3 sample ").size();
    CHECK_THAT(errorOf(flipped(length)),
               Catch::Contains(where) && Catch::Contains("frame line's checksum does not match"));
    std::string dropped = w.bytes;
    dropped.erase(payload + 10, 1);
    CHECK_THAT(errorOf(dropped), Catch::Contains("damaged journal: record"));
    // Every byte of record 3, one at a time: an error naming record 3 or 4
    // (a byte of the payload that ends up in the next frame), never a misread.
    for (size_t at = start; at < w.recordStarts[3]; ++at) {
        INFO("byte " << at);
        std::string error = errorOf(flipped(at));
        CHECK_THAT(error, Catch::Contains("damaged journal: record 3") ||
                              Catch::Contains("damaged journal: record 4"));
    }
}

TEST_CASE("what is not a journal is refused", "[journal]") {
    CHECK_THAT(errorOf(""), Catch::Contains("not a memtap journal"));
    CHECK_THAT(errorOf("memtap-snapshot 2\n"), Catch::Contains("not a memtap journal"));
    CHECK_THAT(errorOf("memtap-journal 9\n"), Catch::Contains("unsupported journal format"));
    CHECK_THAT(errorOf("memtap-jour"), Catch::Contains("no complete header"));
    CHECK(looksLikeJournal("memtap-jour"));
    CHECK_FALSE(looksLikeJournal("memtap-snapshot"));
    Written w = writeFixture();
    // A journal cut inside its header record has nothing to read.
    CHECK_THAT(errorOf(std::string_view(w.bytes).substr(0, w.recordStarts[1] - 3)),
               Catch::Contains("no complete header"));
    // A sample before any header is damage.
    JournalEncoder encoder;
    std::string bytes = std::string(kJournalMagic) +
                        encoder.sample(fixtureSample(1, olderSnapshot(), -1, 0, std::nullopt));
    CHECK_THAT(errorOf(bytes), Catch::Contains("record 1") && Catch::Contains("before the header"));
}

TEST_CASE("records of a type this memtap does not know are skipped", "[journal]") {
    JournalEncoder encoder;
    std::string bytes = std::string(kJournalMagic) + encoder.header(fixtureHeader(), false);
    // Hand-made: a well-framed record of a future type, then a sample.
    std::string payload = "whatever 1\n";
    std::string line =
        "mtj 2 future " + std::to_string(payload.size()) + " " + fmt::format("{:08x} ", crc32(payload));
    bytes += line + fmt::format("{:08x}\n", crc32(line)) + payload;
    JournalEncoder rest(3);
    bytes += rest.sample(fixtureSample(5, olderSnapshot(), -1, 0, std::nullopt));
    Journal j = parseJournalOrThrow(bytes);
    CHECK(j.samples.size() == 1);
    CHECK(j.samples[0].peakTracedBytes == -1);
    CHECK(j.notes.empty());
}

TEST_CASE("the journal report names how it ended, what grew and the peak", "[journal]") {
    Journal j = parseJournalOrThrow(writeFixture().bytes);
    JournalReportOptions options;
    options.path = "/store/journal-1.mtj";
    options.sourceLine = fixtureSource;
    options.clock = [](uint64_t ms, bool withDate) {
        return fmt::format("{}t{}", withDate ? "day " : "", ms);
    };
    std::string text = renderJournalText(j, options);
    INFO(text);
    CHECK_THAT(text, Catch::Contains("memtap report: /store/journal-1.mtj\n"));
    CHECK_THAT(text,
               Catch::Contains("process 4242 (CPython 3.11.7), exact mode, recorded by `memtap record` "
                               "every 0.5 s\n"));
    CHECK_THAT(text, Catch::Contains("recorded day t1000 to t2000 (1 s), 3 records\n"));
    CHECK_THAT(text, Catch::Contains("the process died at t2100: killed by signal 9 (SIGKILL)\n"));
    // The second sample holds the highest peak; the first to last shows no growth.
    CHECK_THAT(text, Catch::Contains("t1500") && Catch::Contains("<- highest peak"));
    CHECK_THAT(text, Catch::Contains("memtap diff: first record (t1000) -> last record (t2000)"));
    CHECK_THAT(text,
               Catch::Contains("breakdown at the highest peak recorded: 3583 KiB traced at t1400"));
    CHECK_THAT(text, Catch::Contains("memtap diff: first record (t1000) -> peak") &&
                         Catch::Contains("app/cache.py:42: size=3516 KiB (+2051 KiB)"));

    // A torn tail: the note, and no end record.
    Written w = writeFixture();
    Journal torn = parseJournalOrThrow(std::string_view(w.bytes).substr(0, w.bytes.size() - 3));
    std::string tornText = renderJournalText(torn, options);
    CHECK_THAT(tornText, Catch::Contains("note: last record incomplete: ignored") &&
                             Catch::Contains("no end record"));

    std::string json = renderJournalJson(j, options);
    CHECK_THAT(json, Catch::Contains(R"("end":{"unix_ms":2100,"reason":"died")"));
    CHECK_THAT(json, Catch::Contains(R"("records":3)") && Catch::Contains(R"("peak":{"unix_ms":1400)"));
}

TEST_CASE("a long timeline keeps the first, the last and the highest peak", "[journal]") {
    Journal j;
    j.headers.push_back(fixtureHeader());
    j.sessionStarts.push_back(0);
    for (int i = 0; i < 1000; ++i) {
        j.samples.push_back(
            fixtureSample(static_cast<uint64_t>(i), olderSnapshot(), i == 517 ? 99 : 1, 0,
                          i == 517 || i == 3 ? std::optional<Snapshot>(olderSnapshot()) : std::nullopt));
    }
    auto rows = timelineRows(j);
    CHECK(rows.size() <= kTimelineRows);
    CHECK(rows.front() == 0);
    CHECK(rows.back() == 999);
    CHECK(std::find(rows.begin(), rows.end(), 517) != rows.end());
    CHECK(std::is_sorted(rows.begin(), rows.end()));
    CHECK(highestPeakSample(j) == std::optional<size_t>(517));
}
