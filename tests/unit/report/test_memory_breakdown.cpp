// RSS explained: the model, its diagnoses and their text/JSON, from fixed figures.
#include <catch2/catch.hpp>

#include "golden.h"
#include "report/json.h"
#include "report/memory_breakdown.h"

using namespace memtap::report;

namespace {

constexpr int64_t KiB = 1024;
constexpr int64_t MiB = 1024 * KiB;

// The case: 5 million small dicts built, 1 in 500 kept, gc.collect();
// pymalloc as sys._debugmallocstats() showed it (3.11: 1 MiB arenas).
BreakdownInput
fragmented() {
    BreakdownInput in;
    in.pid = 4242;
    in.attached = true;
    ResidentFigures r;
    r.anonymousBytes = 1420 * MiB;
    r.fileBytes = 9 * MiB + 100 * KiB;
    r.agentCodeBytes = 96 * KiB;
    r.heapBytes = 4 * MiB + 512 * KiB;
    r.stackBytes = 264 * KiB;
    r.stacks = 2;
    r.otherAnonymousBytes = r.anonymousBytes - r.heapBytes - r.stackBytes;
    r.rssBytes = r.anonymousBytes + r.fileBytes + r.agentCodeBytes;
    in.resident = r;
    in.rssBytes = r.rssBytes;
    in.malloc = {4 * MiB + 512 * KiB, 1 * MiB, 3 * MiB, 268 * KiB, 130 * KiB};
    PymallocFigures py;
    py.state = PymallocState::Read;
    py.readUnixMs = 1764687731000;
    py.arenas = 1401;
    py.arenaBytes = 1401 * MiB;
    py.allocatedBytes = 4200000;
    py.availableBytes = 483000000;
    py.unusedPoolBytes = 960000000;
    py.overheadBytes = 21 * MiB;
    in.pymalloc = py;
    in.agentBytes = 2 * MiB;
    return in;
}

// Strings of ~650 bytes (over pymalloc's 512-byte limit, so from glibc's
// heap), 1 in 500 kept: glibc holds the rest as free chunks between them.
BreakdownInput
glibcSlack() {
    BreakdownInput in = fragmented();
    in.resident->heapBytes = 70 * MiB;
    in.resident->otherAnonymousBytes = 3 * MiB;
    in.resident->anonymousBytes = in.resident->heapBytes + in.resident->stackBytes + 3 * MiB;
    in.resident->rssBytes = in.resident->anonymousBytes + in.resident->fileBytes;
    in.resident->agentCodeBytes = 0;
    in.malloc = {72 * MiB, 0, 2 * MiB, 67 * MiB, 200 * KiB};
    in.pymalloc.arenas = 1;
    in.pymalloc.arenaBytes = 1 * MiB;
    in.pymalloc.allocatedBytes = 700 * KiB;
    in.pymalloc.availableBytes = 200 * KiB;
    in.pymalloc.unusedPoolBytes = 64 * KiB;
    in.pymalloc.overheadBytes = 60 * KiB;
    in.agentBytes = 0;
    return in;
}

std::string
json(const BreakdownInput& in) {
    JsonWriter w;
    w.beginObject();
    writeBreakdownJson(w, in, explainMemory(in));
    w.endObject();
    return w.str() + "\n";
}

} // namespace

TEST_CASE("few survivors in many pymalloc arenas: fragmentation, not a leak", "[breakdown]") {
    auto in = fragmented();
    auto b = explainMemory(in);
    CHECK(b.pymallocFreeBytes == 1443000000);
    // anonymous - stacks - agent tables - arenas - malloc in use; malloc's free fits in it.
    int64_t left = 1420 * MiB - 264 * KiB - 2 * MiB - 1401 * MiB - 3 * MiB;
    CHECK(b.mallocResidentFreeBytes == 268 * KiB);
    CHECK(b.unexplainedBytes == left - 268 * KiB);
    REQUIRE(b.diagnoses.size() == 1);
    CHECK(b.diagnoses[0] == "1376 MiB free inside pymalloc arenas held by few live objects (4102 KiB in "
                            "use in 1401 arenas): fragmentation, not a leak");
    test::checkGolden("breakdown_fragmented.txt", renderBreakdownText(in, b));
    test::checkGolden("breakdown_fragmented.json", json(in));
    CHECK(renderBreakdownShort(in, b) ==
          "anon 1420 MiB, file 9316 KiB; pymalloc 1401 MiB in 1401 arenas "
          "(1376 MiB free); malloc 3072 KiB in use, 268 KiB free; "
          "unexplained 13.5 MiB");
}

TEST_CASE("free chunks between survivors in glibc's heap: trim would return them", "[breakdown]") {
    auto in = glibcSlack();
    auto b = explainMemory(in);
    CHECK(b.mallocResidentFreeBytes == 67 * MiB);
    REQUIRE(b.diagnoses.size() == 1);
    CHECK(b.diagnoses[0] ==
          "67.0 MiB free inside glibc's heap: `memtap trim 4242` would return most of it");
    test::checkGolden("breakdown_glibc.txt", renderBreakdownText(in, b));

    SECTION("after a trim glibc still counts the bytes free, but they are no longer resident") {
        in.resident->heapBytes = 3 * MiB;
        in.resident->anonymousBytes = in.resident->heapBytes + in.resident->stackBytes + 3 * MiB;
        in.resident->rssBytes = in.resident->anonymousBytes + in.resident->fileBytes;
        auto after = explainMemory(in);
        CHECK(after.mallocResidentFreeBytes < 4 * MiB);
        CHECK(after.diagnoses.empty());
    }
}

TEST_CASE("after both kinds of burst both figures are named", "[breakdown]") {
    auto in = fragmented();
    in.resident->heapBytes += 250 * MiB;
    in.resident->anonymousBytes += 250 * MiB;
    in.resident->rssBytes += 250 * MiB;
    in.malloc.heapBytes = 260 * MiB;
    in.malloc.freeBytes = 250 * MiB; // 15% of RSS
    auto b = explainMemory(in);
    REQUIRE(b.diagnoses.size() == 2);
    CHECK_THAT(b.diagnoses[0], Catch::Contains("fragmentation, not a leak"));
    CHECK(b.diagnoses[1] ==
          "250 MiB free inside glibc's heap: `memtap trim 4242` would return most of it");
}

TEST_CASE("figures the breakdown could not read are said so, never guessed", "[breakdown]") {
    SECTION("pymalloc not read before the deadline: no unexplained figure, no pymalloc diagnosis") {
        auto in = fragmented();
        in.pymalloc.state = PymallocState::NotRead;
        in.pymalloc.notReadReason = "waiting for the interpreter; it runs when the worker gets its next "
                                    "request (no allocation by a thread holding the GIL within 1 s)";
        auto b = explainMemory(in);
        CHECK(b.unexplainedBytes == -1);
        CHECK(b.pymallocFreeBytes == -1);
        CHECK(b.diagnoses.empty());
        test::checkGolden("breakdown_not_read.txt", renderBreakdownText(in, b));
        CHECK_THAT(json(in), Catch::Contains("\"pymalloc\":{\"state\":\"not_read\",\"not_read_reason\":"
                                             "\"not read: waiting for the interpreter;"));
    }
    SECTION("an old agent: only malloc_free_bytes") {
        auto in = fragmented();
        in.pymalloc.state = PymallocState::OldAgent;
        in.malloc = MallocFigures{};
        in.malloc.freeBytes = 268 * KiB;
        auto b = explainMemory(in);
        CHECK(b.mallocResidentFreeBytes == -1);
        CHECK(b.unexplainedBytes == -1);
        auto text = renderBreakdownText(in, b);
        CHECK_THAT(text,
                   Catch::Contains("pymalloc:         not read (the agent in the process predates"));
        CHECK_THAT(text, !Catch::Contains("glibc malloc:"));
        CHECK_THAT(text, Catch::Contains("malloc free:      268 KiB"));
    }
    SECTION("pymalloc disabled: everything is malloc's, and the rest is unexplained") {
        auto in = glibcSlack();
        in.pymalloc.state = PymallocState::Disabled;
        auto b = explainMemory(in);
        CHECK(b.unexplainedBytes >= 0);
        CHECK_THAT(renderBreakdownText(in, b), Catch::Contains("pymalloc:         not used by this"));
    }
    SECTION("not attached: where RSS lives, nothing about allocators") {
        auto in = fragmented();
        in.attached = false;
        in.pymalloc.state = PymallocState::NotAttached;
        auto text = renderBreakdownText(in, explainMemory(in));
        CHECK_THAT(text, Catch::StartsWith("rss:              1429 MiB = 1420 MiB anonymous"));
        CHECK_THAT(text, !Catch::Contains("pymalloc:"));
        CHECK_THAT(text, !Catch::Contains("glibc malloc:"));
    }
    SECTION("native memory outside both allocators is named when it decides the size") {
        auto in = glibcSlack();
        in.resident->otherAnonymousBytes += 500 * MiB;
        in.resident->anonymousBytes += 500 * MiB;
        in.resident->rssBytes += 500 * MiB;
        auto b = explainMemory(in);
        // 503 MiB left once the allocators' figures are out; glibc's 67 MiB free no longer decides.
        REQUIRE(b.diagnoses.size() == 1);
        CHECK_THAT(b.diagnoses[0], Catch::StartsWith("503 MiB of RSS is outside Python's allocators"));
    }
}

TEST_CASE("--native's traced mmaps come out of what is unexplained; numpy's arrays are named",
          "[breakdown]") {
    BreakdownInput in = fragmented();
    int64_t before = explainMemory(in).unexplainedBytes;
    REQUIRE(before > 8 * MiB);
    in.trackedBytes = 6 * MiB;
    in.nativeHeapBytes = 1 * MiB;
    in.nativeMappedBytes = 8 * MiB;
    MemoryBreakdown b = explainMemory(in);
    CHECK(b.nativeMappedBytes == 8 * MiB);
    CHECK(b.unexplainedBytes == before - 8 * MiB);
    std::string text = renderBreakdownText(in, b);
    CHECK_THAT(text,
               Catch::Contains("outside PyMem:    6144 KiB reported through PyTraceMalloc_Track") &&
                   Catch::Contains("1024 KiB native modules' malloc") &&
                   Catch::Contains("8192 KiB native modules' mmaps"));
    // More traced mappings than is left: never below zero.
    in.nativeMappedBytes = before + 100 * MiB;
    b = explainMemory(in);
    CHECK(b.unexplainedBytes == 0);
    CHECK(b.nativeMappedBytes == before);
}
