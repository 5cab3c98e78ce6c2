// The agent's KEY VALUE replies: what is not a number is an answer with a
// cause, never a standard-library exception ("memtap: error: stoll").
#include <catch2/catch.hpp>

#include "base/error.h"
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
