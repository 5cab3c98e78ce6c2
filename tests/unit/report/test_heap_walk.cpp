// The heap walk's payload (protocol.h "heap-walk-result") read back, and the
// names `memtap refs` gives holders, on fixed payloads written as the agent
// writes them.
#include <catch2/catch.hpp>

#include "report/heap_walk.h"

#include <stdexcept>

using namespace memtap::report;

namespace {

// Two chains: a class-level list that holds every object, and a cycle.
const char* const kRefsPayload = "heap_walk_state done\n"
                                 "walk_result complete\n"
                                 "walk_objects 41038\n"
                                 "walk_modules 34\n"
                                 "walk_threads 1\n"
                                 "walk_frames 2\n"
                                 "walk_ns 13000000\n"
                                 "walk_mapped_bytes 1703936\n"
                                 "gc_lists read\n"
                                 "gc_listed 15129\n"
                                 "gc_finalized 7\n"
                                 "gc_cycle_objects 7743\n"
                                 "gc_external_objects 3554\n"
                                 "site_objects 2500\n"
                                 "site_traced_records 2600\n"
                                 "chain\t2000\t128000\t4\t3\n"
                                 "link\tmodule\thelpers.audit\tmodule\thelpers.audit\n"
                                 "link\tattr\tAudit\ttype\thelpers.audit.Audit\n"
                                 "link\tattr\tentries\tlist\t\n"
                                 "link\titem\t\tdict\t\n"
                                 "chain\t500\t32000\t3\t0\n"
                                 "link\tcycle\t\t__main__.Node\t\n"
                                 "link\tdict\t\tdict\t\n"
                                 "link\tattr\tpayload\tdict\t\n"
                                 "cycle\t4000\t219000\t__main__.Node\n"
                                 "cyclesite\t2000\t128000\t/srv/app/graph.py:12\n"
                                 "type\t12651\t791000\tdict\n";

} // namespace

TEST_CASE("a refs payload reads into chains, links, types and cycle rows", "[heap_walk]") {
    HeapWalk w = HeapWalk::parseOrThrow(kRefsPayload);
    REQUIRE(w.state() == "done");
    REQUIRE(w.result() == "complete");
    REQUIRE(w.number("gc_cycle_objects") == 7743);
    REQUIRE(w.number("walk_result") == 0); // not a number
    REQUIRE(w.chains.size() == 2);
    REQUIRE(w.chains[0].links.size() == 4);
    REQUIRE(w.chains[0].links[1].object == "helpers.audit.Audit");
    REQUIRE(w.chains[1].shared == 0);
    REQUIRE(w.cycles.size() == 1);
    REQUIRE(w.cycles[0].name == "__main__.Node");
    REQUIRE(w.cycleSites.size() == 1);
    REQUIRE(w.cycleSites[0].name == "/srv/app/graph.py:12");
    REQUIRE(w.cycleSites[0].count == 2000);
    REQUIRE(w.types.size() == 1);
    REQUIRE(w.types[0].count == 12651);
}

TEST_CASE("holders are named by their owner and attribute", "[heap_walk]") {
    HeapWalk w = HeapWalk::parseOrThrow(kRefsPayload);
    REQUIRE(chainHolder(w.chains[0]) == "helpers.audit.Audit.entries");
    REQUIRE(chainPath(w.chains[0]) == "helpers.audit.Audit.entries");
    // A cycle shares nothing: the kind of root and the last reference.
    REQUIRE(chainHolder(w.chains[1]) == "<reference cycle> __main__.Node.payload");
}

TEST_CASE("the walk's cost and the gc line read as sentences", "[heap_walk]") {
    HeapWalk w = HeapWalk::parseOrThrow(kRefsPayload);
    std::string cost = walkCostText(w);
    REQUIRE(cost.find("(34 modules, 1 thread, 2 frames)") != std::string::npos);
    REQUIRE(gcListsText(w).find("7,743 in reference cycles") != std::string::npos);
    w.values["gc_lists"] = "collecting";
    REQUIRE(gcListsText(w).find("a collection was running") != std::string::npos);
    w.values["gc_lists"] = "unavailable";
    REQUIRE(gcListsText(w).find("cannot find them") != std::string::npos);
}

TEST_CASE("malformed chain, link and type lines are refused", "[heap_walk]") {
    REQUIRE_THROWS(HeapWalk::parseOrThrow("chain\t1\t2\t3\n"));
    REQUIRE_THROWS(HeapWalk::parseOrThrow("link\tattr\tx\tdict\t\n")); // no chain before it
    REQUIRE_THROWS(HeapWalk::parseOrThrow("chain\t1\t2\t2\t0\nlink\tmodule\tm\tmodule\tm\n"));
    REQUIRE_THROWS(HeapWalk::parseOrThrow("type\tmany\t2\tdict\n"));
    REQUIRE_THROWS(HeapWalk::parseOrThrow("cycle\t1\t2\n"));
}
