// The text diff report: golden files for each grouping and for sampled mode,
// and the exact StatisticDiff line format.
#include <catch2/catch.hpp>

#include "fixtures.h"
#include "golden.h"
#include "report/diff.h"
#include "report/text_report.h"

using namespace memtap::report;
using memtap::report::test::checkGolden;

namespace {

TextReportOptions
fixtureOptions() {
    TextReportOptions options;
    options.sourceLine = test::fixtureSource;
    options.oldName = "s1";
    options.newName = "s2";
    return options;
}

std::string
render(GroupBy by, const TextReportOptions& options) {
    Snapshot older = test::olderSnapshot();
    Snapshot newer = test::newerSnapshot();
    return renderDiffText(compareSnapshots(older, newer, by), older, newer, by, options);
}

} // namespace

TEST_CASE("a stat line is tracemalloc's StatisticDiff.__str__", "[text_report]") {
    // The example line of tracemalloc's documentation, built from its numbers.
    StatDiff stat{{Frame{"<frozen importlib._bootstrap>", 716, ""}}, 3405824, 2678784, 60631, 30380};
    Snapshot empty;
    TextReportOptions options;
    options.showSource = false;
    std::string text = renderDiffText({stat}, empty, empty, GroupBy::Lineno, options);
    CHECK_THAT(text, Catch::Contains("\n<frozen importlib._bootstrap>:716: size=3326 KiB (+2616 KiB), "
                                     "count=60631 (+30380), average=56 B\n"));

    // count 0 (freed site): no average, as in tracemalloc.
    StatDiff freed{{Frame{"a.py", 1, "f"}}, 0, -20000, 0, -100};
    CHECK_THAT(renderDiffText({freed}, empty, empty, GroupBy::Lineno, options),
               Catch::EndsWith("\na.py:1: size=0 B (-19.5 KiB), count=0 (-100)\n"));
}

TEST_CASE("text report golden files", "[text_report][golden]") {
    SECTION("lineno") {
        checkGolden("text_lineno.txt", render(GroupBy::Lineno, fixtureOptions()));
    }
    SECTION("filename") {
        checkGolden("text_filename.txt", render(GroupBy::Filename, fixtureOptions()));
    }
    SECTION("traceback") {
        checkGolden("text_traceback.txt", render(GroupBy::Traceback, fixtureOptions()));
    }
    SECTION("top 2 without source") {
        TextReportOptions options = fixtureOptions();
        options.top = 2;
        options.showSource = false;
        checkGolden("text_top2_nosource.txt", render(GroupBy::Lineno, options));
    }
    SECTION("sampled mode says the numbers are estimates") {
        Snapshot older = test::olderSnapshot();
        Snapshot newer = test::newerSnapshot();
        older.mode = newer.mode = "sampled";
        older.sampleBytes = newer.sampleBytes = 524288;
        std::string text = renderDiffText(compareSnapshots(older, newer, GroupBy::Lineno), older, newer,
                                          GroupBy::Lineno, fixtureOptions());
        CHECK_THAT(text, Catch::Contains(
                             "sampled mode (mean interval 512 KiB): sizes and counts are estimates\n"));
        checkGolden("text_sampled.txt", text);
    }
}

TEST_CASE("text report is plain text", "[text_report]") {
    TextReportOptions options = fixtureOptions();
    options.sourceLine = [](const std::string&, int) {
        return std::optional<std::string>("x = '\x1b[31mred'");
    };
    for (GroupBy by : {GroupBy::Lineno, GroupBy::Filename, GroupBy::Traceback}) {
        std::string text = render(by, options);
        CHECK(text.find('\x1b') == std::string::npos);
        // The fixture's file name holds a tab and a newline: each stat stays one line.
        CHECK(text.find('\t') == std::string::npos);
    }
}

TEST_CASE("text report without differences", "[text_report]") {
    Snapshot empty;
    CHECK(renderDiffText({}, empty, empty, GroupBy::Lineno, {}) ==
          "memtap diff: old -> new, grouped by lineno\n"
          "traced: 0 B in 0 blocks -> 0 B in 0 blocks (+0 B, +0 blocks)\n"
          "no differences\n");
}

namespace {

Snapshot
sampledWith(uint64_t session, std::vector<Trace> traces) {
    Snapshot s;
    s.mode = "sampled";
    s.sampleBytes = 524288;
    s.attachedAtUnixMs = session;
    s.traces = std::move(traces);
    return s;
}

} // namespace

TEST_CASE("a sampled site resting on fewer than 5 samples is marked rough", "[text_report]") {
    Frame one{"app.py", 3, "f"};
    Frame many{"app.py", 9, "g"};
    Snapshot older = sampledWith(1000, {Trace{{many}, 524288 * 10, 10, 10}});
    Snapshot newer =
        sampledWith(1000, {Trace{{one}, 4194304, 1, 1}, Trace{{many}, 524288 * 20, 20, 20}});
    auto stats = compareSnapshots(older, newer, GroupBy::Lineno);
    REQUIRE(stats.size() == 2);
    std::string text = renderDiffText(stats, older, newer, GroupBy::Lineno, TextReportOptions{});
    CHECK_THAT(text,
               Catch::Contains("app.py:3: size=4096 KiB (+4096 KiB), count=1 (+1), average=4096 KiB "
                               "(1 sample: rough; use --exact or a smaller --sample-bytes)\n"));
    CHECK_THAT(
        text, Catch::Contains("app.py:9: size=10.0 MiB (+5120 KiB), count=20 (+10), average=512 KiB\n"));
    CHECK_THAT(text, !Catch::Contains("warning:"));
    // Exact mode: every record is an allocation, nothing is rough.
    Snapshot exactOld = older, exactNew = newer;
    exactOld.mode = exactNew.mode = "exact";
    auto exactStats = compareSnapshots(exactOld, exactNew, GroupBy::Lineno);
    CHECK_THAT(renderDiffText(exactStats, exactOld, exactNew, GroupBy::Lineno, TextReportOptions{}),
               !Catch::Contains("rough"));
    // A version-1 snapshot does not count samples: no mark, no guess.
    Snapshot v1 = newer;
    for (Trace& t : v1.traces) {
        t.samples = -1;
    }
    auto v1Stats = compareSnapshots(older, v1, GroupBy::Lineno);
    CHECK(v1Stats[0].samples == -1);
    CHECK_THAT(renderDiffText(v1Stats, older, v1, GroupBy::Lineno, TextReportOptions{}),
               !Catch::Contains("rough"));
    // Four on one side, three on the other: still rough (4); five: not.
    StatDiff s;
    s.samples = 4;
    s.oldSamples = 3;
    CHECK(fewSamples(s, true) == 4);
    s.samples = 5;
    CHECK(!fewSamples(s, true));
    CHECK(!fewSamples(s, false));
}

TEST_CASE("a diff across attach sessions or modes warns", "[text_report]") {
    Frame f{"app.py", 3, "f"};
    Snapshot a = sampledWith(1764687731000, {Trace{{f}, 10, 1, 1}});
    Snapshot b = sampledWith(1764687999000, {Trace{{f}, 10, 1, 1}});
    auto mismatch = sessionMismatch(a, b);
    REQUIRE(mismatch);
    CHECK_THAT(*mismatch,
               Catch::StartsWith("OLD and NEW come from different attach sessions (attached "));
    CHECK_THAT(renderDiffText(compareSnapshots(a, b, GroupBy::Lineno), a, b, GroupBy::Lineno, {}),
               Catch::Contains("\nwarning: OLD and NEW come from different attach sessions"));
    CHECK(!sessionMismatch(a, a));
    Snapshot exact = a;
    exact.mode = "exact";
    CHECK(
        sessionMismatch(a, exact) ==
        std::string("OLD and NEW were taken in different modes (sampled every 524288 bytes and exact)"));
    Snapshot otherRate = a;
    otherRate.sampleBytes = 65536;
    CHECK(sessionMismatch(a, otherRate));
    // Version 1 does not name its session: no warning from what is unknown.
    Snapshot unknown = b;
    unknown.attachedAtUnixMs = 0;
    CHECK(!sessionMismatch(a, unknown));
}
