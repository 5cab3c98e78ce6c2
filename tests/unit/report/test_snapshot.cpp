// The snapshot wire format of src/agent/protocol.h: exact output, round
// trips, and malformed input rejected with the line that is wrong.
#include <string>

#include <catch2/catch.hpp>

#include "base/error.h"
#include "fixtures.h"
#include "golden.h"
#include "report/snapshot.h"

using namespace memtap::report;
using memtap::report::test::checkGolden;

namespace {

void
requireSameSnapshot(const Snapshot& a, const Snapshot& b) {
    REQUIRE(a.mode == b.mode);
    REQUIRE(a.sampleBytes == b.sampleBytes);
    REQUIRE(a.tracedBytes == b.tracedBytes);
    REQUIRE(a.tracedCount == b.tracedCount);
    REQUIRE(a.traces.size() == b.traces.size());
    for (size_t i = 0; i < a.traces.size(); ++i) {
        CHECK(a.traces[i].size == b.traces[i].size);
        CHECK(a.traces[i].count == b.traces[i].count);
        CHECK(a.traces[i].frames == b.traces[i].frames);
    }
}

// Parses `text`, expecting failure, and returns the message.
std::string
parseError(const std::string& text) {
    try {
        parseSnapshotOrThrow(text);
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::Failure);
        return e.what();
    }
    FAIL("no error for:\n" << text);
    return {};
}

// Version 1 (no session line, no SAMPLES field): still read, so the cases
// below written for it also show that.
const std::string kHeader =
    "memtap-snapshot 1\nmode exact\nsample_bytes 0\ntraced_bytes 10\ntraced_count 1\n";
const std::string kHeader2 = "memtap-snapshot 2\nmode sampled\nsample_bytes 524288\n"
                             "attached_at_unix_ms 1764687731123\ntraced_bytes 10\ntraced_count 1\n";

} // namespace

TEST_CASE("serializeSnapshot writes the protocol.h text format", "[snapshot]") {
    Snapshot s;
    s.mode = "sampled";
    s.sampleBytes = 524288;
    s.tracedBytes = 1048576;
    s.tracedCount = 2;
    s.attachedAtUnixMs = 1764687731123;
    s.traces = {
        Trace{{Frame{"a.py", 3, "f"}, Frame{"b\\c\td\ne.py", 9, "<mod\tule>"}}, 1048576, 2, 1, 4242},
        Trace{{}, 0, 0}, Trace{{Frame{"a.py", 4, "f"}}, 8000, 1, 1, 4242, kNumpyDomain}};
    s.threads = {{4242, ThreadInfo{"worker 1\t", "running"}}, {4243, ThreadInfo{"", "exited"}}};
    CHECK(serializeSnapshot(s) == "memtap-snapshot 4\n"
                                  "mode sampled\n"
                                  "sample_bytes 524288\n"
                                  "attached_at_unix_ms 1764687731123\n"
                                  "traced_bytes 1048576\n"
                                  "traced_count 2\n"
                                  "thread 4242 running worker 1\\t\n"
                                  "thread 4243 exited \n"
                                  "T 1048576 2 2 1 4242 0\n"
                                  "F 3 a.py\tf\n"
                                  "F 9 b\\\\c\\td\\ne.py\t<mod\\tule>\n"
                                  "T 0 0 0 0 0 0\n"
                                  "T 8000 1 1 1 4242 389047\n"
                                  "F 4 a.py\tf\n"
                                  "end\n");
    Snapshot back = parseSnapshotOrThrow(serializeSnapshot(s));
    REQUIRE(back.traces.size() == 3);
    CHECK(back.traces[0].domain == 0);
    CHECK(back.traces[2].domain == kNumpyDomain);
    CHECK(domainName(kNumpyDomain) == "numpy");
    CHECK(domainName(7) == "domain 7");
}

TEST_CASE("snapshot text round-trips", "[snapshot]") {
    Snapshot newer = test::newerSnapshot();
    std::string text = serializeSnapshot(newer);
    checkGolden("snapshot_newer.txt", text);
    Snapshot parsed = parseSnapshotOrThrow(text);
    requireSameSnapshot(parsed, newer);
    CHECK(serializeSnapshot(parsed) == text);

    Snapshot empty;
    requireSameSnapshot(parseSnapshotOrThrow(serializeSnapshot(empty)), empty);
}

TEST_CASE("version 2 carries the session and each trace's sample count; version 1 has neither",
          "[snapshot]") {
    Snapshot s = parseSnapshotOrThrow(kHeader2 + "T 524288 1 1 1\nF 3 a.py\tf\nT 0 0 0 0\nend\n");
    CHECK(s.attachedAtUnixMs == 1764687731123u);
    REQUIRE(s.traces.size() == 2);
    CHECK(s.traces[0].samples == 1);
    CHECK(s.traces[1].samples == 0);
    Snapshot old = parseSnapshotOrThrow(kHeader + "T 10 1 0\nend\n");
    CHECK(old.attachedAtUnixMs == 0u);
    CHECK(old.traces[0].samples == -1);
    // Stored again, a version-1 snapshot is written as version 4 with the
    // count as its records (the same thing in exact mode), no thread, domain 0.
    CHECK_THAT(serializeSnapshot(old),
               Catch::StartsWith("memtap-snapshot 4\n") && Catch::Contains("\nT 10 1 0 1 0 0\n"));
    CHECK(s.traces[0].tid == 0);
    CHECK(s.threads.empty());
}

TEST_CASE("version 3 carries each trace's thread and the threads' names", "[snapshot]") {
    const std::string header = "memtap-snapshot 3\nmode exact\nsample_bytes 0\n"
                               "attached_at_unix_ms 1764687731123\ntraced_bytes 30\ntraced_count 3\n";
    Snapshot s =
        parseSnapshotOrThrow(header + "thread 101 running worker-1\nthread 102 exited \n"
                                      "thread 103 unknown \nthread 104 running my  name\\n\n"
                                      "T 10 1 1 1 101\nF 3 a.py\tf\nT 20 2 1 2 102\nF 3 a.py\tf\n"
                                      "T 0 0 0 0 0\nend\n");
    REQUIRE(s.traces.size() == 3);
    CHECK(s.traces[0].tid == 101);
    CHECK(s.traces[1].tid == 102);
    CHECK(s.traces[2].tid == 0);
    REQUIRE(s.threads.size() == 4);
    CHECK(s.threads.at(101) == ThreadInfo{"worker-1", "running"});
    CHECK(s.threads.at(102) == ThreadInfo{"", "exited"});
    CHECK(s.threads.at(103) == ThreadInfo{"", "unknown"});
    CHECK(s.threads.at(104) == ThreadInfo{"my  name\n", "running"});
    CHECK(parseSnapshotOrThrow(serializeSnapshot(s)).threads == s.threads);
    // Strict: a state it does not know, a TID field missing or extra, and
    // thread lines in a version that has none.
    CHECK_THAT(parseError(header + "thread 101 sleeping x\nend\n"),
               Catch::Contains("line 7") && Catch::Contains("thread state"));
    CHECK_THAT(parseError(header + "T 10 1 0 1\nend\n"), Catch::Contains("trace thread id"));
    CHECK_THAT(parseError(header + "T 10 1 0 1 5 6\nend\n"), Catch::Contains("trailing fields"));
    CHECK_THAT(parseError(kHeader2 + "thread 101 running x\nend\n"), Catch::Contains("expected 'T"));
}

TEST_CASE("names with escapes parse back to the raw bytes", "[snapshot]") {
    Snapshot s = parseSnapshotOrThrow(kHeader + "T 10 1 1\nF 7 dir\\\\x\\ty\\nz.py\tfn\\\\\nend\n");
    REQUIRE(s.traces.size() == 1);
    REQUIRE(s.traces[0].frames.size() == 1);
    CHECK(s.traces[0].frames[0].file == "dir\\x\ty\nz.py");
    CHECK(s.traces[0].frames[0].function == "fn\\");
    CHECK(s.traces[0].frames[0].line == 7);
    // Spaces belong to the name: the last field runs to the end of the line.
    Snapshot spaced = parseSnapshotOrThrow(kHeader + "T 10 1 1\nF 1 my dir/a b.py\tmy func\nend\n");
    CHECK(spaced.traces[0].frames[0].file == "my dir/a b.py");
    CHECK(spaced.traces[0].frames[0].function == "my func");
}

TEST_CASE("a negative line number is clamped to 0, as tracemalloc does", "[snapshot]") {
    // PyCode_Addr2Line gives -1 for an instruction with no line (3.10+); one
    // such frame used to make the whole snapshot unreadable.
    Snapshot s =
        parseSnapshotOrThrow(kHeader + "T 10 1 3\nF -1 a.py\tf\nF -2147483648 b.py\tg\nF 4 c.py\th\n"
                                       "T 20 2 1\nF 0 a.py\tf\nend\n");
    REQUIRE(s.traces.size() == 2);
    REQUIRE(s.traces[0].frames.size() == 3);
    CHECK(s.traces[0].frames[0] == Frame{"a.py", 0, "f"});
    CHECK(s.traces[0].frames[1] == Frame{"b.py", 0, "g"});
    CHECK(s.traces[0].frames[2] == Frame{"c.py", 4, "h"});
    // Clamped, the frame is the same site as a line-0 frame, so the two group together.
    CHECK(s.traces[0].frames[0] == s.traces[1].frames[0]);
    // Still strict about what is not a number or does not fit.
    CHECK_THAT(parseError(kHeader + "T 10 1 1\nF -x a.py\tf\nend\n"),
               Catch::Contains("frame line number"));
    CHECK_THAT(parseError(kHeader + "T 10 1 1\nF 2147483648 a.py\tf\nend\n"),
               Catch::Contains("line 7") && Catch::Contains("too large"));
}

TEST_CASE("malformed snapshots name the offending line", "[snapshot]") {
    struct Case {
        std::string text;
        std::string where;
        std::string what;
    };
    const Case cases[] = {
        {"", "line 1", "end of snapshot"},
        {"memtap-snapshot 5\n", "line 1", "unsupported snapshot version"},
        {"memtap-snapshot 0\n", "line 1", "unsupported snapshot version"},
        {"memtap-snapshot 2\nmode exact\nsample_bytes 0\ntraced_bytes 1\n", "line 4",
         "expected 'attached_at_unix_ms"},
        {kHeader2 + "T 10 1 0\n", "line 7", "trace sample count"},
        {kHeader2 + "T 10 1 0 -1\n", "line 7", "negative"},
        {kHeader2 + "T 10 1 0 1 1\n", "line 7", "trailing fields after 'T SIZE COUNT NFRAMES SAMPLES'"},
        {"memtap-snapshot one\n", "line 1", "not a valid number"},
        {"heap-snapshot 1\n", "line 1", "expected 'memtap-snapshot"},
        {"memtap-snapshot 1\nmode fast\n", "line 2", "mode must be"},
        {"memtap-snapshot 1\nmode exact\nsample_bytes -1\n", "line 3", "sample_bytes"},
        {"memtap-snapshot 1\nmode exact\ntraced_bytes 1\n", "line 3", "expected 'sample_bytes"},
        {"memtap-snapshot 1\nmode exact\nsample_bytes 0\ntraced_bytes 12x\n", "line 4", "traced_bytes"},
        {"memtap-snapshot 1\nmode exact\nsample_bytes 0\ntraced_bytes 1\ntraced_count -3\n", "line 5",
         "negative"},
        {kHeader + "X 1 2 3\n", "line 6", "expected 'T SIZE COUNT NFRAMES' or 'end'"},
        {kHeader + "T 10 1\n", "line 6", "trace frame count"},
        {kHeader + "T 10 1 1 9\n", "line 6", "trailing fields"},
        {kHeader + "T -10 1 0\n", "line 6", "negative"},
        {kHeader + "T 10 1 2\nF 1 a.py\tf\nend\n", "line 8", "expected a frame line"},
        {kHeader + "T 10 1 1\nF x a.py\tf\nend\n", "line 7", "frame line number"},
        {kHeader + "T 10 1 1\nF 1 a.py f\nend\n", "line 7", "no tab"},
        {kHeader + "T 10 1 1\nF 1 a\\q.py\tf\nend\n", "line 7", "unknown escape"},
        {kHeader + "T 10 1 1\nF 1 a.py\tf\\\nend\n", "line 7", "lone backslash"},
        {kHeader + "T 10 1 1\n", "line 7", "end of snapshot"},
        {kHeader + "T 10 1 0\n", "line 7", "end of snapshot"},
        {kHeader + "end", "line 6", "not terminated"},
        {kHeader + "end\nT 1 1 0\n", "line 7", "data after 'end'"},
        {kHeader + "end now\n", "line 6", "expected 'T SIZE COUNT NFRAMES' or 'end'"},
    };
    for (const Case& c : cases) {
        INFO("input:\n" << c.text);
        std::string message = parseError(c.text);
        CHECK_THAT(message, Catch::Contains(c.where) && Catch::Contains(c.what));
    }
}
