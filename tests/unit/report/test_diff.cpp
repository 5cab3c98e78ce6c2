// compareSnapshots: tracemalloc's compare_to(cumulative=False) pairing, with
// memtap's growth-first order.
#include <catch2/catch.hpp>

#include "fixtures.h"
#include "report/diff.h"

using namespace memtap::report;

namespace {

const StatDiff*
find(const std::vector<StatDiff>& stats, const std::string& file, int line) {
    for (const StatDiff& stat : stats) {
        if (stat.key.front().file == file && stat.key.front().line == line) {
            return &stat;
        }
    }
    return nullptr;
}

} // namespace

TEST_CASE("group-by names are tracemalloc's key types", "[diff]") {
    CHECK(parseGroupBy("lineno") == GroupBy::Lineno);
    CHECK(parseGroupBy("filename") == GroupBy::Filename);
    CHECK(parseGroupBy("traceback") == GroupBy::Traceback);
    CHECK_FALSE(parseGroupBy("line").has_value());
    CHECK_FALSE(parseGroupBy("").has_value());
    for (GroupBy by : {GroupBy::Lineno, GroupBy::Filename, GroupBy::Traceback}) {
        CHECK(parseGroupBy(name(by)) == by);
    }
}

TEST_CASE("lineno grouping pairs sites across snapshots", "[diff]") {
    auto stats = compareSnapshots(test::olderSnapshot(), test::newerSnapshot(), GroupBy::Lineno);
    REQUIRE(stats.size() == 6);

    SECTION("traces with the same top frame merge") {
        const StatDiff* cache = find(stats, "app/cache.py", 42);
        REQUIRE(cache);
        CHECK(cache->key == std::vector<Frame>{Frame{"app/cache.py", 42, "store"}});
        CHECK(cache->size == 3600000);
        CHECK(cache->sizeDiff == 2100000);
        CHECK(cache->count == 3600);
        CHECK(cache->countDiff == 2100);
    }
    SECTION("a site only in the newer snapshot grows by all of it") {
        const StatDiff* fresh = find(stats, "app/parse.py", 88);
        REQUIRE(fresh);
        CHECK(fresh->size == 64000);
        CHECK(fresh->sizeDiff == 64000);
        CHECK(fresh->count == 1000);
        CHECK(fresh->countDiff == 1000);
    }
    SECTION("a site only in the older snapshot was freed: size 0, negative growth") {
        const StatDiff* freed = find(stats, "app/parse.py", 17);
        REQUIRE(freed);
        CHECK(freed->size == 0);
        CHECK(freed->sizeDiff == -20000);
        CHECK(freed->count == 0);
        CHECK(freed->countDiff == -100);
    }
    SECTION("an unchanged site stays, with zero change") {
        const StatDiff* same = find(stats, "app/util.py", 3);
        REQUIRE(same);
        CHECK(same->size == 4096);
        CHECK(same->sizeDiff == 0);
        CHECK(same->countDiff == 0);
    }
    SECTION("a trace without frames groups under <unknown>:0") {
        const StatDiff* unknown = find(stats, "<unknown>", 0);
        REQUIRE(unknown);
        CHECK(unknown->size == 512);
        CHECK(unknown->key.size() == 1);
    }
    SECTION("order: growth first, shrinking last") {
        CHECK(stats.front().key.front().file == "app/cache.py");
        CHECK(stats[1].key.front().line == 88);
        CHECK(stats.back().sizeDiff == -20000);
        for (size_t i = 1; i < stats.size(); ++i) {
            CHECK(stats[i - 1].sizeDiff >= stats[i].sizeDiff);
        }
    }
}

TEST_CASE("filename grouping keys on the top frame's file with line 0", "[diff]") {
    auto stats = compareSnapshots(test::olderSnapshot(), test::newerSnapshot(), GroupBy::Filename);
    const StatDiff* parse = find(stats, "app/parse.py", 0);
    REQUIRE(parse);
    CHECK(parse->key == std::vector<Frame>{Frame{"app/parse.py", 0, ""}});
    // tokenize (new, 64000) and parse (freed, 20000) are one file.
    CHECK(parse->size == 64000);
    CHECK(parse->sizeDiff == 44000);
    CHECK(parse->countDiff == 900);
    CHECK(find(stats, "app/cache.py", 0)->sizeDiff == 2100000);
    CHECK(stats.size() == 5);
}

TEST_CASE("traceback grouping keeps whole call stacks apart", "[diff]") {
    auto stats = compareSnapshots(test::olderSnapshot(), test::newerSnapshot(), GroupBy::Traceback);
    REQUIRE(stats.size() == 7);
    CHECK(stats[0].key.size() == 3);
    CHECK(stats[0].key[1] == Frame{"app/server.py", 10, "handle"});
    CHECK(stats[0].sizeDiff == 2000000);
    CHECK(stats[1].key[1] == Frame{"app/worker.py", 7, "run"});
    CHECK(stats[1].sizeDiff == 100000);
}

TEST_CASE("ties are broken deterministically", "[diff]") {
    Snapshot older;
    Snapshot newer;
    // Same growth and size: countDiff decides, then (file, line).
    newer.traces = {Trace{{Frame{"b.py", 2, "f"}}, 100, 1}, Trace{{Frame{"a.py", 9, "f"}}, 100, 1},
                    Trace{{Frame{"a.py", 3, "f"}}, 100, 1}, Trace{{Frame{"z.py", 1, "f"}}, 100, 5}};
    auto stats = compareSnapshots(older, newer, GroupBy::Lineno);
    REQUIRE(stats.size() == 4);
    CHECK(stats[0].key.front().file == "z.py");
    CHECK(stats[1].key.front() == Frame{"a.py", 3, "f"});
    CHECK(stats[2].key.front() == Frame{"a.py", 9, "f"});
    CHECK(stats[3].key.front() == Frame{"b.py", 2, "f"});

    // One (file, line) seen under two function names is one group, labeled
    // with the smaller name whatever the trace order.
    Snapshot mixed;
    mixed.traces = {Trace{{Frame{"c.py", 4, "outer"}}, 10, 1},
                    Trace{{Frame{"c.py", 4, "<listcomp>"}}, 20, 1}};
    auto merged = compareSnapshots(older, mixed, GroupBy::Lineno);
    REQUIRE(merged.size() == 1);
    CHECK(merged[0].size == 30);
    CHECK(merged[0].key.front().function == "<listcomp>");
}

TEST_CASE("comparing a snapshot with itself shows no change", "[diff]") {
    Snapshot s = test::newerSnapshot();
    for (GroupBy by : {GroupBy::Lineno, GroupBy::Filename, GroupBy::Traceback}) {
        for (const StatDiff& stat : compareSnapshots(s, s, by)) {
            CHECK(stat.sizeDiff == 0);
            CHECK(stat.countDiff == 0);
        }
    }
}
