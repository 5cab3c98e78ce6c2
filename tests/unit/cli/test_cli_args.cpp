// The command-line contract: strict parsing, usage errors that name the word.
#include <catch2/catch.hpp>

#include "base/error.h"
#include "cli/args.h"
#include "cli/memory_figures.h"
#include "cli/snapshot_store.h"
#include "cli/target_status.h"

using namespace memtap::cli;
using memtap::ExitCode;

namespace {

CommandSpec
spec() {
    CommandSpec s;
    s.name = "diff";
    s.positionalUsage = "PID OLD NEW";
    s.minPositional = 3;
    s.maxPositional = 3;
    s.options = {{"--by", "KEY", ""}, {"--json", "", ""}};
    return s;
}

ExitCode
codeOf(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const memtap::Error& e) {
        return e.code();
    }
    return ExitCode::Ok;
}

} // namespace

TEST_CASE("options with values, flags and positionals", "[args]") {
    auto parsed = parseOrThrow(spec(), {"123", "--by", "filename", "s1", "--json", "now"});
    CHECK(parsed.positional == std::vector<std::string>{"123", "s1", "now"});
    CHECK(parsed.value("--by") == "filename");
    CHECK(parsed.has("--json"));
    CHECK(parseOrThrow(spec(), {"1", "a", "b", "--by=traceback"}).value("--by") == "traceback");
}

TEST_CASE("bad command lines are usage errors naming the cause", "[args]") {
    CHECK(codeOf([] { parseOrThrow(spec(), {"1", "a", "b", "--bogus"}); }) == ExitCode::Usage);
    CHECK(codeOf([] { parseOrThrow(spec(), {"1", "a"}); }) == ExitCode::Usage);
    CHECK(codeOf([] { parseOrThrow(spec(), {"1", "a", "b", "--by"}); }) == ExitCode::Usage);
    CHECK(codeOf([] { parseOrThrow(spec(), {"1", "a", "b", "--json=yes"}); }) == ExitCode::Usage);
    try {
        parseOrThrow(spec(), {"1", "a", "b", "--bogus"});
    } catch (const memtap::Error& e) {
        CHECK(std::string(e.what()).find("--bogus") != std::string::npos);
        CHECK(e.hint().find("memtap diff --help") != std::string::npos);
    }
}

TEST_CASE("numbers are parsed whole", "[args]") {
    CHECK(parsePidOrThrow("4242") == 4242);
    for (const char* bad : {"", "0", "-1", "12x", "abc", "99999999999"}) {
        CHECK(codeOf([&] { parsePidOrThrow(bad); }) == ExitCode::Usage);
    }
    CHECK(parseByteSizeOrThrow("512K", "--sample-bytes") == 512 * 1024);
    CHECK(parseByteSizeOrThrow("2m", "--sample-bytes") == 2 * 1024 * 1024);
    CHECK(parseByteSizeOrThrow("4096", "--sample-bytes") == 4096);
    CHECK(codeOf([] { parseByteSizeOrThrow("K", "--sample-bytes"); }) == ExitCode::Usage);
    CHECK(codeOf([] { parseUnsignedOrThrow("65", "--frames", 1, 64); }) == ExitCode::Usage);
    CHECK(parseSecondsOrThrow("0.5", "--interval") == 0.5);
    CHECK(codeOf([] { parseSecondsOrThrow("0", "--interval"); }) == ExitCode::Usage);
    CHECK(codeOf([] { parseSecondsOrThrow("nan", "--interval"); }) == ExitCode::Usage);
}

TEST_CASE("sizes never wrap: at most 1T, checked before the multiply", "[args]") {
    CHECK(parseByteSizeOrThrow("1T", "--sample-bytes") == (1ull << 40));
    CHECK(parseByteSizeOrThrow("1024G", "--sample-bytes") == (1ull << 40));
    CHECK(parseByteSizeOrThrow("1048576M", "--sample-bytes") == (1ull << 40));
    CHECK(parseByteSizeOrThrow("1099511627776", "--sample-bytes") == (1ull << 40));
    CHECK(parseByteSizeOrThrow("1", "--sample-bytes") == 1);
    // 1099511627776G is 2^70, which wrapped to 0; 16777216G (2^54) was accepted.
    for (const char* bad : {"1099511627776G", "16777216G", "1025G", "2T", "1099511627777", "1048577M",
                            "18446744073709551616", "99999999999999999999999K", "0", "0K", "-1K", "+1K",
                            "1.5M", "1KB", "G", "", " 1K"}) {
        INFO(bad);
        try {
            parseByteSizeOrThrow(bad, "--sample-bytes");
            FAIL("accepted");
        } catch (const memtap::Error& e) {
            CHECK(e.code() == ExitCode::Usage);
            CHECK_THAT(e.what(), Catch::Contains("--sample-bytes") && Catch::Contains("1T"));
        }
    }
}

TEST_CASE("snapshot names are safe file names", "[args]") {
    validateSnapshotNameOrThrow("s1");
    validateSnapshotNameOrThrow("before-deploy_2.x");
    for (const char* bad : {"", "now", "../x", "a/b", ".hidden", "with space"}) {
        CHECK(codeOf([&] { validateSnapshotNameOrThrow(bad); }) == ExitCode::Usage);
    }
}

TEST_CASE("hook chain keys in plain words", "[status]") {
    auto intact = parseKeyValueLines("hooks installed\nhook_chain intact\nhook_reinstalls 0\n"
                                     "hook_reinstall_unix_ms 0\nhook_reinstall_domains none\n");
    CHECK_FALSE(hookChainProblem(intact));
    CHECK(hookChainState(intact) == "installed, the current allocators");

    auto wrapped = intact;
    wrapped["hook_chain"] = "wrapped:raw,mem,obj";
    CHECK_FALSE(hookChainProblem(wrapped)); // tracemalloc over us: every call still seen
    CHECK(hookChainState(wrapped).find("wrapped on raw, mem, obj") != std::string::npos);

    auto reinstalled = intact;
    reinstalled["hook_reinstalls"] = "2";
    reinstalled["hook_reinstall_unix_ms"] = "1700000000000";
    reinstalled["hook_reinstall_domains"] = "mem,obj";
    auto problem = hookChainProblem(reinstalled);
    REQUIRE(problem);
    CHECK(problem->find("re-installed on mem, obj at ") != std::string::npos);
    CHECK(problem->find("(2 times since attach)") != std::string::npos);
    CHECK(problem->find("allocations in between were not seen") != std::string::npos);

    auto lost = intact;
    lost["hooks"] = "lost";
    lost["hook_chain"] = "lost:obj";
    problem = hookChainProblem(lost);
    REQUIRE(problem);
    CHECK(problem->find("hooks on obj were removed") != std::string::npos);
    CHECK(problem->find("not seen") != std::string::npos);
    CHECK(hookChainState(lost) == "LOST on obj (see below)");

    TargetStatus status;
    status.pid = 7;
    status.attached = true;
    status.agent = lost;
    auto json = renderStatusJson(status);
    CHECK(json.find("\"hook_chain\":\"lost:obj\"") != std::string::npos);
    CHECK(json.find("\"hook_problem\":\"memtap's hooks on obj were removed") != std::string::npos);
    auto text = renderStatusText(status);
    CHECK(text.find("hooks:            LOST on obj") != std::string::npos);
    CHECK(text.find("warning:          memtap's hooks on obj were removed") != std::string::npos);
}

TEST_CASE("status key-value payloads and JSON", "[status]") {
    auto kv = parseKeyValueLines("python 3.11.7\nmode sampled\nallocations_seen 12\n");
    CHECK(kv.at("python") == "3.11.7");
    CHECK(kv.at("allocations_seen") == "12");
    TargetStatus status;
    status.pid = 7;
    status.attached = true;
    status.python = "3.11.7";
    status.rssBytes = 4096;
    status.agent = kv;
    CHECK(renderStatusJson(status) == "{\"attached\":true,\"pid\":7,\"python\":\"3.11.7\",\"allocations_"
                                      "seen\":12,\"mode\":\"sampled\","
                                      "\"rss_bytes\":4096}\n");
    TargetStatus idle;
    idle.pid = 8;
    idle.python = "3.6.15";
    CHECK(renderStatusJson(idle) ==
          "{\"attached\":false,\"pid\":8,\"python\":\"3.6.15\",\"rss_bytes\":0}\n");
}

TEST_CASE("status shows the traced peak: peak_traced_bytes and peak_at in JSON, a line in text",
          "[status][peak]") {
    TargetStatus status;
    status.pid = 7;
    status.attached = true;
    status.python = "3.12.1";
    status.nowUnixMs = 1700000012000;
    status.agent = parseKeyValueLines("mode exact\ntraced_bytes 1048576\ntraced_count 3\n"
                                      "peak_traced_bytes 314572800\npeak_unix_ms 1700000000000\n");
    auto json = renderStatusJson(status);
    CHECK(json.find("\"peak_traced_bytes\":314572800") != std::string::npos);
    CHECK(json.find("\"peak_at\":1700000000000") != std::string::npos);
    auto text = renderStatusText(status);
    CHECK(text.find("peak traced:      300 MiB (12 s ago;") != std::string::npos);
    // An agent without a peak: no line, no key.
    status.agent.erase("peak_traced_bytes");
    status.agent.erase("peak_unix_ms");
    CHECK(renderStatusText(status).find("peak") == std::string::npos);
    CHECK(renderStatusJson(status).find("peak") == std::string::npos);
}

TEST_CASE("the agent's pymalloc and malloc keys become the breakdown's figures", "[status][breakdown]") {
    using memtap::cli::mallocFiguresFrom;
    using memtap::cli::pymallocFiguresFrom;
    using memtap::report::PymallocState;
    auto ok = pymallocFiguresFrom(parseKeyValueLines(
        "pymalloc_requested 3\npymalloc_completed 3\npymalloc_read_unix_ms 1700000000000\n"
        "pymalloc_result ok\npymalloc_arenas 222\npymalloc_arena_bytes 232783872\n"
        "pymalloc_allocated_bytes 3944256\npymalloc_available_bytes 97017488\n"
        "pymalloc_unused_pool_bytes 128745472\npymalloc_overhead_bytes 3076656\nsome_future_key 1\n"));
    CHECK(ok.state == PymallocState::Read);
    CHECK(ok.arenas == 222);
    CHECK(ok.arenaBytes == 232783872);
    CHECK(ok.allocatedBytes == 3944256);
    CHECK(ok.availableBytes == 97017488);
    CHECK(ok.unusedPoolBytes == 128745472);
    CHECK(ok.overheadBytes == 3076656);
    CHECK(ok.readUnixMs == 1700000000000u);
    CHECK(pymallocFiguresFrom(parseKeyValueLines("pymalloc_result disabled\n")).state ==
          PymallocState::Disabled);
    auto unreadable = pymallocFiguresFrom(parseKeyValueLines("pymalloc_result unreadable\n"));
    CHECK(unreadable.state == PymallocState::NotRead);
    CHECK_THAT(unreadable.notReadReason, Catch::Contains("_PyObject_DebugMallocStats"));
    CHECK(pymallocFiguresFrom(parseKeyValueLines("pymalloc_result none\n")).state ==
          PymallocState::NotRead);

    auto old = mallocFiguresFrom(parseKeyValueLines("malloc_free_bytes 4096\n"));
    CHECK(old.freeBytes == 4096);
    CHECK(old.inUseBytes == -1);
    CHECK(old.heapBytes == -1);
    auto full = mallocFiguresFrom(parseKeyValueLines(
        "malloc_free_bytes 4096\nmalloc_heap_bytes 1036288\nmalloc_mmap_bytes 401408\n"
        "malloc_in_use_bytes 1176448\nmalloc_releasable_bytes 116016\n"));
    CHECK(full.heapBytes == 1036288);
    CHECK(full.mmapBytes == 401408);
    CHECK(full.inUseBytes == 1176448);
    CHECK(full.releasableBytes == 116016);
}
