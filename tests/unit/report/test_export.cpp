// The call tree, the gzip container, the pprof encoding and the HTML page.
// The pprof bytes are decoded by an independent decoder (python3-protobuf) in
// tests/integration/export_test.py; here the structure is checked by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "fixtures.h"
#include "golden.h"
#include "report/crc32.h"
#include "report/diff.h"
#include "report/flame_tree.h"
#include "report/gzip_writer.h"
#include "report/html_flamegraph.h"
#include "report/pprof.h"
#include "report/speedscope.h"

using namespace memtap::report;

TEST_CASE("the flame tree merges tracebacks from the outermost frame", "[export]") {
    FlameNode root = buildFlameTree(test::olderSnapshot(), test::newerSnapshot());
    int64_t newTotal = 0, oldTotal = 0;
    for (const auto& t : test::newerSnapshot().traces) {
        newTotal += t.size;
    }
    for (const auto& t : test::olderSnapshot().traces) {
        oldTotal += t.size;
    }
    CHECK(root.size == newTotal);
    CHECK(root.oldSize == oldTotal);
    // main.py:5 is the outermost frame of four tracebacks (old or new).
    REQUIRE(!root.children.empty());
    const FlameNode& main = root.children[0];
    CHECK(main.frame.file == "main.py");
    CHECK(main.size == 3000000 + 600000 + 64000);
    CHECK(main.oldSize == 1000000 + 500000 + 20000);
    // Below it, app/server.py:10 then app/worker.py:7, by size in NEW.
    REQUIRE(main.children.size() == 3);
    CHECK(main.children[0].frame.file == "app/server.py");
    CHECK(main.children[1].frame.file == "app/worker.py");
    CHECK(main.children[2].frame.function == "parse");
    // app/parse.py:17 has tokenize below it in NEW only, and self memory in OLD.
    const FlameNode& parse = main.children[2];
    CHECK(parse.oldSize == 20000);
    REQUIRE(parse.children.size() == 1);
    CHECK(parse.children[0].frame.function == "tokenize");
    CHECK(parse.children[0].oldSize == 0);
    CHECK(parse.children[0].count == 1000);
    // The frame-less traceback counts at the root only.
    size_t nodes = flameNodeCount(root);
    CHECK(nodes == 1 + 1 + 2 + 2 + 1 + 1 + 1 +
                       1); // root, main, server+cache, worker+cache, parse, tokenize, util, weird
}

TEST_CASE("gzipStored frames data in stored blocks of at most 65535 bytes", "[export]") {
    for (size_t size : {size_t{0}, size_t{1}, size_t{65535}, size_t{65536}, size_t{200000}}) {
        std::string data(size, 'x');
        for (size_t i = 0; i < size; ++i) {
            data[i] = static_cast<char>(i * 7);
        }
        std::string gz = gzipStored(data);
        REQUIRE(gz.size() >= 18);
        CHECK(static_cast<unsigned char>(gz[0]) == 0x1f);
        CHECK(static_cast<unsigned char>(gz[1]) == 0x8b);
        // Walk the blocks: each is 1 header byte, LEN, NLEN, LEN bytes.
        size_t at = 10;
        std::string inflated;
        bool final = false;
        while (!final) {
            REQUIRE(at + 5 <= gz.size());
            final = gz[at] == '\x01';
            size_t len = static_cast<unsigned char>(gz[at + 1]) | static_cast<unsigned char>(gz[at + 2])
                                                                      << 8;
            size_t nlen = static_cast<unsigned char>(gz[at + 3]) | static_cast<unsigned char>(gz[at + 4])
                                                                       << 8;
            CHECK((len ^ nlen) == 0xffff);
            CHECK(len <= 65535);
            inflated += gz.substr(at + 5, len);
            at += 5 + len;
        }
        CHECK(inflated == data);
        REQUIRE(at + 8 == gz.size());
        uint32_t crc = 0, isize = 0;
        for (int i = 0; i < 4; ++i) {
            crc |= static_cast<uint32_t>(static_cast<unsigned char>(gz[at + i])) << (8 * i);
            isize |= static_cast<uint32_t>(static_cast<unsigned char>(gz[at + 4 + i])) << (8 * i);
        }
        CHECK(crc == crc32(data));
        CHECK(isize == size);
    }
}

TEST_CASE("the pprof profile starts with its four sample types and ends with the string table",
          "[export]") {
    std::string proto =
        encodePprofProfile(test::olderSnapshot(), test::newerSnapshot(), PprofOptions{"s1", "s2"});
    // Field 1 (sample_type), wire type 2: key byte 0x0a.
    REQUIRE(!proto.empty());
    CHECK(proto[0] == '\x0a');
    for (const char* s : {"inuse_space", "inuse_objects", "growth_space", "growth_objects", "bytes",
                          "count", "app/cache.py", "store", "memtap diff s1 -> s2 (exact mode)"}) {
        CHECK(proto.find(s) != std::string::npos);
    }
    std::string gz = renderPprof(test::olderSnapshot(), test::newerSnapshot(), PprofOptions{"s1", "s2"});
    CHECK(gz.size() == proto.size() + 10 + 5 * ((proto.size() + 65534) / 65535) + 8);
}

TEST_CASE("the HTML page embeds the tree safely and the table", "[export]") {
    HtmlReportOptions options;
    options.title = "process 4242: s1 -> s2";
    options.oldName = "s1";
    options.newName = "s2";
    std::string html = renderHtmlFlamegraph(test::olderSnapshot(), test::newerSnapshot(), options);
    test::checkGolden("diff.html", html);
    // No network at view time.
    CHECK(html.find("http://") == std::string::npos);
    CHECK(html.find("https://") == std::string::npos);
    CHECK(html.find("src=") == std::string::npos);
    // A name holding "</script>" cannot end the data block early.
    auto newer = test::newerSnapshot();
    newer.traces.push_back(Trace{{Frame{"</script><b>x.py", 1, "evil"}}, 10, 1});
    std::string evil = renderHtmlFlamegraph(test::olderSnapshot(), newer, options);
    size_t data = evil.find("id=\"flame-data\">");
    REQUIRE(data != std::string::npos);
    size_t end = evil.find("</script>", data);
    CHECK(evil.substr(data, end - data).find("\\u003c/script>") != std::string::npos);
    CHECK(evil.find("<b>x.py") == std::string::npos); // escaped in the table too
}

TEST_CASE("the speedscope file holds what NEW holds and the growth, outermost frame first", "[export]") {
    auto older = test::olderSnapshot();
    auto newer = test::newerSnapshot();
    std::string json = renderSpeedscope(older, newer, SpeedscopeOptions{"s1", "s2", "process 4242"});
    test::checkGolden("diff.speedscope.json", json);
    // The two profiles' totals are those of the traceback diff.
    int64_t held = 0;
    int64_t grown = 0;
    for (const StatDiff& stat : compareSnapshots(older, newer, GroupBy::Traceback)) {
        held += stat.size;
        grown += std::max<int64_t>(0, stat.sizeDiff);
    }
    CHECK(json.find(fmt::format("\"name\":\"s2: bytes held\",\"unit\":\"bytes\",\"startValue\":0,"
                                "\"endValue\":{}",
                                held)) != std::string::npos);
    CHECK(json.find(fmt::format("\"name\":\"s1 -> s2: growth\",\"unit\":\"bytes\",\"startValue\":0,"
                                "\"endValue\":{}",
                                grown)) != std::string::npos);
    CHECK(grown > 0);
    CHECK(grown < held);
}
