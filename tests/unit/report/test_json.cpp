// JsonWriter and the `diff --json` document.
#include <limits>

#include <catch2/catch.hpp>

#include "fixtures.h"
#include "golden.h"
#include "report/diff.h"
#include "report/json.h"

using namespace memtap::report;

TEST_CASE("JsonWriter places commas and writes compact output", "[json]") {
    JsonWriter json;
    json.beginObject();
    json.key("a");
    json.value(1);
    json.key("list");
    json.beginArray();
    json.value(int64_t{-2});
    json.value(uint64_t{18446744073709551615u});
    json.value(true);
    json.null();
    json.beginObject();
    json.endObject();
    json.beginArray();
    json.endArray();
    json.value("text");
    json.endArray();
    json.key("f");
    json.value(0.5);
    json.key("nan");
    json.value(std::numeric_limits<double>::quiet_NaN());
    json.key("b");
    json.value(false);
    json.endObject();
    CHECK(
        json.str() ==
        R"({"a":1,"list":[-2,18446744073709551615,true,null,{},[],"text"],"f":0.5,"nan":null,"b":false})");
}

TEST_CASE("JsonWriter escapes strings", "[json]") {
    auto quoted = [](std::string_view text) {
        JsonWriter json;
        json.value(text);
        return json.str();
    };
    CHECK(quoted("plain") == R"("plain")");
    CHECK(quoted("q\"b\\s/") == R"("q\"b\\s/")");
    CHECK(quoted("\n\r\t\b\f") == R"("\n\r\t\b\f")");
    CHECK(quoted(std::string_view("\x00\x01\x1b\x1f\x7f", 5)) == R"("\u0000\u0001\u001b\u001f\u007f")");
    CHECK(quoted("日本.py") == "\"日本.py\"");
    // Bytes that are not UTF-8 (a Latin-1 file name) become U+FFFD.
    CHECK(quoted("caf\xe9.py") == "\"caf\xEF\xBF\xBD.py\"");
    CHECK(quoted("\xe6\x97") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST_CASE("JsonWriter takes all integer types", "[json]") {
    JsonWriter json;
    json.beginArray();
    json.value(short{-3});
    json.value(7u);
    json.value(8LL);
    json.value(size_t{9});
    json.endArray();
    CHECK(json.str() == "[-3,7,8,9]");
}

TEST_CASE("diff JSON golden file", "[json][golden]") {
    auto stats = compareSnapshots(test::olderSnapshot(), test::newerSnapshot(), GroupBy::Traceback);
    std::string json = renderDiffJson(stats, 4242, "s1", "s2", GroupBy::Traceback, "exact", 4);
    test::checkGolden("diff_traceback_top4.json", json);
    CHECK_THAT(json,
               Catch::StartsWith(R"({"pid":4242,"old":"s1","new":"s2","by":"traceback","mode":"exact",)"
                                 R"("estimated":false,"stats":[{"file":"app/cache.py","line":42,)"
                                 R"("function":"store","size":3000000,"size_diff":2000000,)"
                                 R"("count":3000,"count_diff":2000,"traceback":[)"));

    auto all = compareSnapshots(test::olderSnapshot(), test::newerSnapshot(), GroupBy::Lineno);
    std::string sampled = renderDiffJson(all, 1, "a", "b", GroupBy::Lineno, "sampled", 0);
    test::checkGolden("diff_lineno_sampled.json", sampled);
    CHECK_THAT(sampled, Catch::Contains(R"("estimated":true)"));
    CHECK_THAT(sampled, Catch::Contains(R"("file":"weird\tdir/odd\\name\n.py")"));
}

TEST_CASE("diff JSON carries samples, rough, the session warning and what predates attach", "[json]") {
    Frame f{"app.py", 3, "f"};
    Snapshot older;
    older.mode = "sampled";
    older.sampleBytes = 524288;
    Snapshot newer = older;
    newer.traces = {Trace{{f}, 4194304, 1, 1}};
    auto stats = compareSnapshots(older, newer, GroupBy::Lineno);
    DiffContext context;
    context.attachedAtUnixMs = 1764687731123;
    context.rssAtAttachBytes = 209715200;
    context.warning = "OLD and NEW come from different attach sessions";
    std::string json = renderDiffJson(stats, 42, "s1", "s2", GroupBy::Lineno, "sampled", 10, context);
    CHECK_THAT(json,
               Catch::Contains("\"attached_at_unix_ms\":1764687731123,\"rss_at_attach_bytes\":209715200,"
                               "\"warning\":\"OLD and NEW come from different attach sessions\""));
    CHECK_THAT(json,
               Catch::Contains("\"count_diff\":1,\"samples\":1,\"samples_old\":0,\"rough\":true,"));
    // Unknown counts (version 1) and unset context keys are left out.
    newer.traces[0].samples = -1;
    std::string v1 = renderDiffJson(compareSnapshots(older, newer, GroupBy::Lineno), 42, "s1", "s2",
                                    GroupBy::Lineno, "sampled", 10);
    CHECK_THAT(v1, !Catch::Contains("\"samples\"") && !Catch::Contains("rough") &&
                       !Catch::Contains("warning") && !Catch::Contains("attached_at"));
}
