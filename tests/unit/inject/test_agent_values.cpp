// The agent's KEY VALUE replies: what is not a number is an answer with a
// cause, never a standard-library exception ("memtap: error: stoll").
#include <catch2/catch.hpp>

#include "base/error.h"
#include "inject/agent_client.h"
#include "inject/agent_values.h"

using namespace memtap::inject;

TEST_CASE("key value lines keep spaces in values and skip other lines", "[agent_values]") {
    AgentValues values =
        parseKeyValueLines("python 3.11.7\nframe_note from the table, checked\nnoline\n\nlast 7");
    CHECK(values.at("python") == "3.11.7");
    CHECK(values.at("frame_note") == "from the table, checked");
    CHECK(values.at("last") == "7");
    CHECK(values.count("noline") == 0);
}

TEST_CASE("numbers parse only when whole and in range", "[agent_values]") {
    CHECK(tryParseUnsigned("0") == 0u);
    CHECK(tryParseUnsigned("18446744073709551615") == UINT64_MAX);
    CHECK_FALSE(tryParseUnsigned("18446744073709551616"));
    for (const char* bad : {"", "-1", "+1", "12x", " 1", "1 ", "0x10"}) {
        INFO(bad);
        CHECK_FALSE(tryParseUnsigned(bad));
    }
    CHECK(tryParseSigned("-1") == -1);
    CHECK(tryParseSigned("9223372036854775807") == INT64_MAX);
    CHECK_FALSE(tryParseSigned("9223372036854775808"));
    CHECK_FALSE(tryParseSigned("-"));
    CHECK_FALSE(tryParseSigned("--1"));
}

TEST_CASE("a value that is not a number falls back or names its key", "[agent_values]") {
    AgentValues values =
        parseKeyValueLines("traced_bytes 4096\npeak_traced_bytes lots\ntrim_result -1\n");
    CHECK(numberOr(values, "traced_bytes", 0) == 4096);
    CHECK(numberOr(values, "peak_traced_bytes", -1) == -1);
    CHECK(numberOr(values, "missing", 5) == 5);
    CHECK(numberOrThrow(values, "trim_result", "malloc-trim") == -1);
    try {
        numberOrThrow(values, "peak_traced_bytes", "status");
        FAIL("no error");
    } catch (const memtap::Error& e) {
        CHECK(std::string(e.what()) ==
              "the agent's status reply has no number under peak_traced_bytes ('lots')");
        CHECK_THAT(e.hint(), Catch::Contains("memtap detach PID"));
    }
    CHECK_THROWS_AS(numberOrThrow(values, "missing", "status"), memtap::Error);
}

TEST_CASE("a status reply is typed, and one without its core figures is an Error", "[agent_values]") {
    using memtap::inject::AgentStatus;
    auto status = AgentStatus::fromReplyOrThrow(
        "python 3.11.7\nmode sampled\nsample_bytes 524288\nattached_at_unix_ms 1700000000000\n"
        "traced_bytes 1048576\ntraced_count 12\npeak_traced_bytes 2097152\npeak_unix_ms 1700000001000\n"
        "frame_note layout table, confirmed by _Py_DebugOffsets\nnew_key_of_a_later_agent 1\n");
    CHECK(status.python == "3.11.7");
    CHECK_FALSE(status.exact);
    CHECK(status.sampleBytes == 524288);
    CHECK(status.attachedAtUnixMs == 1700000000000u);
    CHECK(status.tracedBytes == 1048576);
    CHECK(status.tracedCount == 12);
    CHECK(status.peakTracedBytes == 2097152);
    CHECK(status.peakUnixMs == 1700000001000u);
    CHECK(status.values.at("frame_note") == "layout table, confirmed by _Py_DebugOffsets");
    CHECK(status.values.count("new_key_of_a_later_agent") == 1);

    auto old =
        AgentStatus::fromReplyOrThrow("python 3.8.18\nmode exact\ntraced_bytes 0\ntraced_count 0\n");
    CHECK(old.exact);
    CHECK_FALSE(old.peakTracedBytes);
    CHECK(old.attachedAtUnixMs == 0);

    for (const char* bad : {"mode exact\ntraced_bytes 0\ntraced_count 0\n",               // no python
                            "python 3.11.7\nmode fast\ntraced_bytes 0\ntraced_count 0\n", // bad mode
                            "python 3.11.7\nmode exact\ntraced_bytes many\ntraced_count 0\n"}) {
        INFO(bad);
        try {
            AgentStatus::fromReplyOrThrow(bad);
            FAIL("no error");
        } catch (const memtap::Error& e) {
            CHECK_THAT(std::string(e.what()), Catch::StartsWith("the agent's status reply has"));
            CHECK_THAT(e.hint(), Catch::Contains("memtap detach PID"));
        }
    }
}

TEST_CASE("a malloc-trim reply is typed, -1 included", "[agent_values]") {
    using memtap::inject::MallocTrimReply;
    auto reply = MallocTrimReply::fromReplyOrThrow(
        "trim_result -1\nrss_before_bytes 100\nrss_after_bytes 90\nmalloc_free_before_bytes 50\n"
        "malloc_free_after_bytes 40\n");
    CHECK(reply.trimResult == -1);
    CHECK(reply.rssBeforeBytes == 100);
    CHECK(reply.rssAfterBytes == 90);
    CHECK(reply.mallocFreeBeforeBytes == 50);
    CHECK(reply.mallocFreeAfterBytes == 40);
    CHECK_THROWS_AS(MallocTrimReply::fromReplyOrThrow("trim_result 1\n"), memtap::Error);
}
