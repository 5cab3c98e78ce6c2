// Grouping by thread and by the first frame in the user's own code, on fixed
// data: the per-thread figures, the thread labels, the filter, and which
// files count as the standard library or installed packages.
#include <catch2/catch.hpp>

#include "report/diff.h"
#include "report/json.h"
#include "report/text_report.h"

using namespace memtap::report;

namespace {

const Frame kAppView{"/srv/app/views.py", 12, "render"};
const Frame kAppMain{"/srv/app/main.py", 40, "handle"};
const Frame kJsonEncoder{"/root/.pyenv/versions/3.11.7/lib/python3.11/json/encoder.py", 258,
                         "iterencode"};
const Frame kJsonDumps{"/root/.pyenv/versions/3.11.7/lib/python3.11/json/__init__.py", 231, "dumps"};
const Frame kFlask{"/srv/venv/lib/python3.11/site-packages/flask/app.py", 1820, "dispatch"};
const Frame kThreading{"/usr/lib/python3.11/threading.py", 975, "run"};
const Frame kFrozen{"<frozen importlib._bootstrap>", 241, "_call_with_frames_removed"};

// Two workers and a thread with no id; the same frames on two threads.
Snapshot
threadsOlder() {
    Snapshot s;
    s.traces = {
        Trace{{kAppView}, 1000, 10, 10, 101},
        Trace{{kAppView}, 500, 5, 5, 102},
    };
    s.threads = {{101, ThreadInfo{"worker-1", "running"}}, {102, ThreadInfo{"worker-2", "running"}}};
    return s;
}

Snapshot
threadsNewer() {
    Snapshot s;
    s.traces = {
        Trace{{kAppView}, 4000, 40, 40, 101},
        Trace{{kAppMain}, 2000, 20, 20, 101},
        Trace{{kAppView}, 9000, 90, 90, 102},
        Trace{{kAppView}, 100, 1, 1, 0},
    };
    // worker-2 ended between the snapshots and was named in an earlier one.
    s.threads = {{101, ThreadInfo{"worker-1b", "running"}}, {102, ThreadInfo{"worker-2", "exited"}}};
    return s;
}

const StatDiff&
statOfThread(const std::vector<StatDiff>& stats, int64_t tid) {
    for (const StatDiff& stat : stats) {
        if (stat.thread && stat.thread->tid == tid) {
            return stat;
        }
    }
    FAIL("no stat for thread " << tid);
    return stats.front();
}

} // namespace

TEST_CASE("thread and user are group-by names too", "[threads]") {
    CHECK(parseGroupBy("thread") == GroupBy::Thread);
    CHECK(parseGroupBy("user") == GroupBy::User);
    CHECK(name(GroupBy::Thread) == "thread");
    CHECK(name(GroupBy::User) == "user");
}

TEST_CASE("by thread: one group per allocating thread, largest growth first", "[threads]") {
    auto stats = compareSnapshots(threadsOlder(), threadsNewer(), GroupBy::Thread);
    REQUIRE(stats.size() == 3);
    CHECK(stats[0].thread->tid == 102);
    CHECK(stats[0].sizeDiff == 8500);
    CHECK(stats[1].thread->tid == 101);
    CHECK(stats[1].size == 6000);
    CHECK(stats[1].sizeDiff == 5000);
    CHECK(stats[1].countDiff == 50);
    CHECK(stats[1].samples == 60);
    CHECK(stats[2].thread->tid == 0);
    // The newer snapshot names it, even when the thread renamed itself.
    CHECK(statOfThread(stats, 101).thread->name == "worker-1b");
    CHECK(threadText(*statOfThread(stats, 101).thread) == "thread 101 (worker-1b)");
    CHECK(threadText(*statOfThread(stats, 102).thread) == "thread 102 (worker-2, exited)");
    CHECK(threadText(*statOfThread(stats, 0).thread) == "no thread id");
    CHECK(threadText(ThreadLabel{7, "", "exited"}) == "thread 7 (exited)");
    CHECK(threadText(ThreadLabel{7, "", ""}) == "thread 7");
}

TEST_CASE("the default grouping sums over threads, as before", "[threads]") {
    auto stats = compareSnapshots(threadsOlder(), threadsNewer(), GroupBy::Lineno);
    REQUIRE(stats.size() == 2);
    CHECK(stats[0].key.front() == kAppView);
    CHECK(stats[0].size == 13100);
    CHECK(stats[0].sizeDiff == 11600);
    CHECK_FALSE(stats[0].thread.has_value());
}

TEST_CASE("a thread filter counts only that thread, in any grouping", "[threads]") {
    auto stats = compareSnapshots(threadsOlder(), threadsNewer(), GroupBy::Lineno, 101);
    REQUIRE(stats.size() == 2);
    CHECK(stats[0].key.front() == kAppView);
    CHECK(stats[0].sizeDiff == 3000);
    CHECK(stats[1].key.front() == kAppMain);
    CHECK(stats[1].sizeDiff == 2000);
    CHECK(compareSnapshots(threadsOlder(), threadsNewer(), GroupBy::Lineno, 999).empty());
}

TEST_CASE("by thread in the text and JSON reports", "[threads]") {
    Snapshot older = threadsOlder();
    Snapshot newer = threadsNewer();
    auto stats = compareSnapshots(older, newer, GroupBy::Thread);
    TextReportOptions options;
    std::string text = renderDiffText(stats, older, newer, GroupBy::Thread, options);
    CHECK_THAT(text, Catch::Contains("grouped by thread\n"));
    CHECK_THAT(text, Catch::Contains("\nthread 102 (worker-2, exited): size=9000 B (+8500 B), count=90 "
                                     "(+85), average=100 B\n"));
    CHECK_THAT(text, Catch::Contains("\nthread 101 (worker-1b): size=6000 B (+5000 B)"));
    std::string json = renderDiffJson(stats, 1, "a", "b", GroupBy::Thread, "exact", 0);
    CHECK_THAT(json, Catch::Contains(R"("tid":102,"thread_name":"worker-2","thread_state":"exited")"));
    CHECK_THAT(json, Catch::Contains(R"("tid":0,"thread_name":"","thread_state":"unknown")"));
    options.scope = ", thread 101 (worker-1b) only";
    CHECK_THAT(
        renderDiffText(compareSnapshots(older, newer, GroupBy::Lineno, 101), older, newer,
                       GroupBy::Lineno, options),
        Catch::StartsWith("memtap diff: old -> new, grouped by lineno, thread 101 (worker-1b) only\n"));
}

TEST_CASE("library files: the standard library, frozen modules, installed packages", "[threads]") {
    CHECK(isLibraryFile(kJsonEncoder.file));
    CHECK(isLibraryFile(kFlask.file));
    CHECK(isLibraryFile(kThreading.file));
    CHECK(isLibraryFile(kFrozen.file));
    CHECK(isLibraryFile("/usr/lib/python3/dist-packages/requests/models.py"));
    CHECK(isLibraryFile("/usr/lib64/python3.12/asyncio/events.py"));
    CHECK(isLibraryFile("/usr/lib/python311.zip/json/decoder.py"));
    CHECK(isLibraryFile("/home/u/.local/lib/python3.11/site-packages/x.py"));
    CHECK_FALSE(isLibraryFile(kAppView.file));
    CHECK_FALSE(isLibraryFile("/srv/lib/pythonic/app.py"));    // not pythonX.Y
    CHECK_FALSE(isLibraryFile("/home/u/lib/python_tools.py")); // a file, not a directory
    CHECK_FALSE(isLibraryFile("<string>"));
    CHECK_FALSE(isLibraryFile("main.py"));
}

TEST_CASE("by user: framework allocations join the application line that caused them", "[threads]") {
    Snapshot older;
    Snapshot newer;
    newer.traces = {
        // json.dumps called by the view: charged to the view's line.
        Trace{{kJsonEncoder, kJsonDumps, kAppView, kFlask, kAppMain}, 7000, 7, 7, 1},
        // The view's own allocation, same line.
        Trace{{kAppView, kFlask, kAppMain}, 1000, 1, 1, 1},
        // Inside Flask, called from the app's main: charged to main.
        Trace{{kFlask, kAppMain}, 300, 3, 3, 1},
        // No frame of the app at all: under its innermost frame, marked.
        Trace{{kThreading, kFrozen}, 50, 1, 1, 1},
        Trace{{}, 5, 1, 1, 1},
    };
    auto stats = compareSnapshots(older, newer, GroupBy::User);
    REQUIRE(stats.size() == 4);
    CHECK(stats[0].key.front() == kAppView);
    CHECK(stats[0].sizeDiff == 8000);
    CHECK(stats[0].userFrame);
    CHECK(stats[1].key.front() == kAppMain);
    CHECK(stats[1].sizeDiff == 300);
    CHECK(stats[2].key.front() == kThreading);
    CHECK_FALSE(stats[2].userFrame);
    CHECK(stats[3].key.front().file == "<unknown>");
    CHECK(stats[3].userFrame);
    CHECK(userFrameOf(newer.traces[0]) == kAppView);
    CHECK(userFrameOf(newer.traces[3]) == kThreading);

    TextReportOptions options;
    options.sourceLine = [](const std::string& file, int line) -> std::optional<std::string> {
        if (file == kAppView.file && line == kAppView.line) {
            return "    return json.dumps(payload)\n";
        }
        return std::nullopt;
    };
    std::string text = renderDiffText(stats, older, newer, GroupBy::User, options);
    CHECK_THAT(text, Catch::Contains("\n/srv/app/views.py:12: size=8000 B (+8000 B), count=8 (+8), "
                                     "average=1000 B\n    return json.dumps(payload)\n"));
    CHECK_THAT(text, Catch::Contains("\n/usr/lib/python3.11/threading.py:975 [no frame in your code]: "
                                     "size=50 B"));
    std::string json = renderDiffJson(stats, 1, "a", "b", GroupBy::User, "exact", 0);
    CHECK_THAT(json,
               Catch::Contains(
                   R"("file":"/srv/app/views.py","line":12,"function":"render","user_frame":true)"));
    CHECK_THAT(json, Catch::Contains(R"("line":975,"function":"run","user_frame":false)"));
}
