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
