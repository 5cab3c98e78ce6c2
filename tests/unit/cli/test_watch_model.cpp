// The pure parts of `memtap watch`: key decoding and the snapshot model.
#include <catch2/catch.hpp>

#include "cli/source_lines.h"
#include "cli/terminal.h"
#include "cli/watch_loop.h"

using namespace memtap;
using cli::KeyKind;

namespace {

report::Snapshot
snapshotWith(std::initializer_list<std::pair<int, int64_t>> lineSizes) {
    report::Snapshot s;
    s.mode = "exact";
    for (auto [line, size] : lineSizes) {
        report::Trace t;
        t.frames = {report::Frame{"/app/leak.py", line, "f"}};
        t.size = size;
        t.count = size / 100;
        s.traces.push_back(t);
        s.tracedBytes += size;
        s.tracedCount += t.count;
    }
    return s;
}

} // namespace

TEST_CASE("keys: letters, arrows in both encodings, Enter and a lone Escape", "[watch]") {
    auto keys = cli::decodeKeys("q\x1b[A\x1bOB\r\n\x1b");
    REQUIRE(keys.size() == 6);
    CHECK((keys[0].kind == KeyKind::Char && keys[0].ch == 'q'));
    CHECK(keys[1].kind == KeyKind::Up);
    CHECK(keys[2].kind == KeyKind::Down);
    CHECK(keys[3].kind == KeyKind::Enter);
    CHECK(keys[4].kind == KeyKind::Enter);
    CHECK(keys[5].kind == KeyKind::Escape);
}

TEST_CASE("keys: an unknown escape sequence is dropped whole", "[watch]") {
    // F5 is ESC [ 1 5 ~ : its tail must not become the commands '1', '5', '~'.
    auto keys = cli::decodeKeys("\x1b[15~s");
    REQUIRE(keys.size() == 1);
    CHECK(keys[0].ch == 's');
}

TEST_CASE("the model tracks growth since the baseline and per interval", "[watch]") {
    cli::WatchModel model(snapshotWith({{10, 1000}, {20, 5000}}), report::GroupBy::Lineno);
    model.addSnapshot(snapshotWith({{10, 4000}, {20, 5000}}));
    model.addSnapshot(snapshotWith({{10, 9000}, {20, 4000}}));

    const auto& since = model.sinceBaseline();
    REQUIRE(!since.empty());
    CHECK(since[0].key[0].line == 10);
    CHECK(since[0].sizeDiff == 8000);
    CHECK(model.historyOf(since[0].key) == std::vector<int64_t>{3000, 5000});

    model.resetBaseline();
    CHECK((model.sinceBaseline().empty() || model.sinceBaseline()[0].sizeDiff == 0));
    CHECK(model.historyOf(since[0].key) == std::vector<int64_t>{3000, 5000}); // history survives

    model.setGroupBy(report::GroupBy::Filename);
    CHECK(model.groupBy() == report::GroupBy::Filename);
}

TEST_CASE("with a peak, a site that rose and fell keeps its row at its height", "[watch][peak]") {
    cli::SourceLines sources(0);
    // Line 30 grew by 100 kB and was freed again before the next look; line
    // 10 grows slowly; line 20 shrank.
    cli::WatchModel model(snapshotWith({{10, 1000}, {20, 5000}}), report::GroupBy::Lineno);
    model.addSnapshot(snapshotWith({{10, 3000}, {20, 4000}}));
    auto before = model.rows(0, sources);
    for (const auto& row : before) {
        CHECK(row.key[0].line != 30);
        CHECK(row.peakGrowth == 0);
    }
    model.setPeak(snapshotWith({{10, 2000}, {20, 5000}, {30, 100000}}));
    auto rows = model.rows(2, sources);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].key[0].line == 30);
    CHECK(rows[0].sizeGrowth == 0);
    CHECK(rows[0].peakGrowth == 100000);
    CHECK(rows[1].key[0].line == 10);
    CHECK(rows[1].sizeGrowth == 2000);
    CHECK(rows[1].peakGrowth == 1000);
    // The peak restarts with the baseline.
    model.resetBaseline();
    model.setPeak(snapshotWith({{10, 3000}, {20, 4000}}));
    for (const auto& row : model.rows(0, sources)) {
        CHECK(row.peakGrowth == 0);
    }
}

namespace {

// Line 10 on thread 7 ("a") and thread 8 ("b"), each with its own size.
report::Snapshot
twoThreads(int64_t sizeOn7, int64_t sizeOn8) {
    report::Snapshot s;
    s.mode = "exact";
    for (auto [tid, size] : {std::pair<int64_t, int64_t>{7, sizeOn7}, {8, sizeOn8}}) {
        report::Trace t;
        t.frames = {report::Frame{"/app/leak.py", 10, "f"}, report::Frame{"/app/main.py", 3, "main"}};
        t.size = size;
        t.count = size / 100;
        t.tid = tid;
        s.traces.push_back(t);
    }
    s.threads = {{7, report::ThreadInfo{"a", "running"}}, {8, report::ThreadInfo{"b", "running"}}};
    return s;
}

} // namespace

TEST_CASE("by thread, rows are labelled threads; a thread filter narrows every row",
          "[watch][threads]") {
    cli::SourceLines sources(0);
    cli::WatchModel model(twoThreads(1000, 1000), report::GroupBy::Thread);
    model.addSnapshot(twoThreads(3000, 9000));
    auto rows = model.rows(0, sources);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].label == "thread 8 (b)");
    CHECK(rows[0].tid == 8);
    CHECK(rows[0].sizeGrowth == 8000);
    CHECK(rows[0].history == std::vector<int64_t>{8000});
    CHECK(rows[1].label == "thread 7 (a)");
    // A thread's traceback view: its largest trace.
    CHECK(model.fullTracebackOf(rows[1].key, 7).size() == 2);

    model.setGroupBy(report::GroupBy::Lineno);
    CHECK(model.rows(0, sources).at(0).sizeGrowth == 10000);
    CHECK(model.rows(0, sources).at(0).label.empty());
    model.setThreadFilter(7);
    rows = model.rows(0, sources);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].sizeGrowth == 2000);
    CHECK(rows[0].history == std::vector<int64_t>{2000});
    model.setThreadFilter(std::nullopt);
    CHECK(model.rows(0, sources).at(0).sizeGrowth == 10000);
}
