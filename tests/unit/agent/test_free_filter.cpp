// The free-side filter must never say "not traced" for a traced block: a
// free it waves through would leave that block in every later report.
#include <catch2/catch.hpp>

#include "agent/free_filter.h"

#include <cstdint>
#include <random>
#include <set>
#include <vector>

using namespace memtap_agent;

namespace {

const void*
address(uint64_t value) {
    return reinterpret_cast<const void*>(static_cast<uintptr_t>(value));
}

// Addresses that share a filter slot (and so a summary group) with base.
std::vector<uint64_t>
sameSlotAs(uint64_t base, size_t count) {
    std::vector<uint64_t> found;
    for (uint64_t a = base + 16; found.size() < count; a += 16) {
        if (filterSlot(address(a)) == filterSlot(address(base))) {
            found.push_back(a);
        }
    }
    return found;
}

// An address in the same summary group as base but another slot.
uint64_t
sameGroupOtherSlot(uint64_t base) {
    size_t slot = filterSlot(address(base));
    for (uint64_t a = base + 16;; a += 16) {
        size_t other = filterSlot(address(a));
        if (other != slot && other >> kFilterGroupShift == slot >> kFilterGroupShift) {
            return a;
        }
    }
}

size_t
bitsSet() {
    size_t n = 0;
    for (size_t i = 0; i < kFilterSummaryWords + kFilterBitmapWords; ++i) {
        n += static_cast<size_t>(__builtin_popcountll(g_filter[i]));
    }
    return n;
}

} // namespace

TEST_CASE("every added block is reported, and removing all clears the filter", "[free_filter]") {
    REQUIRE(filterMapOnce());
    filterClear();
    std::mt19937_64 rng(7);
    std::vector<uint64_t> blocks;
    for (int i = 0; i < 20000; ++i) {
        blocks.push_back((rng() & 0x7fffffffff0ULL) | 0x10000);
    }
    for (uint64_t b : blocks) {
        filterAdd(address(b));
    }
    for (uint64_t b : blocks) {
        REQUIRE(filterMayContain(address(b)));
    }
    for (uint64_t b : blocks) {
        filterRemove(address(b));
    }
    CHECK(bitsSet() == 0);
}

TEST_CASE("few traced blocks rule out almost every other address", "[free_filter]") {
    REQUIRE(filterMapOnce());
    filterClear();
    std::mt19937_64 rng(11);
    for (int i = 0; i < 500; ++i) {
        filterAdd(address(rng() & 0x7fffffffff0ULL));
    }
    // Consecutive 16-byte blocks, as pymalloc hands them out: they spread.
    size_t maybe = 0;
    for (uint64_t a = 0x7f0000000000; a < 0x7f0000000000 + 16 * 100000; a += 16) {
        maybe += filterMayContain(address(a)) ? 1 : 0;
    }
    CHECK(maybe < 1000); // about 500/2^19 of them, plus hash luck
    filterClear();
}

TEST_CASE("a slot stays set until its last block goes", "[free_filter]") {
    REQUIRE(filterMapOnce());
    filterClear();
    uint64_t base = 0x7f1234560000;
    std::vector<uint64_t> twins = sameSlotAs(base, 2);
    filterAdd(address(base));
    filterAdd(address(twins[0]));
    filterRemove(address(base));
    CHECK(filterMayContain(address(twins[0])));
    filterRemove(address(twins[0]));
    CHECK_FALSE(filterMayContain(address(twins[0])));
    CHECK(bitsSet() == 0);
}

TEST_CASE("a group's summary bit stays set while another slot of it is", "[free_filter]") {
    REQUIRE(filterMapOnce());
    filterClear();
    uint64_t base = 0x7f0abc000010;
    uint64_t neighbour = sameGroupOtherSlot(base);
    filterAdd(address(base));
    filterAdd(address(neighbour));
    filterRemove(address(base));
    CHECK_FALSE(filterMayContain(address(base)));
    CHECK(filterMayContain(address(neighbour)));
    filterRemove(address(neighbour));
    CHECK(bitsSet() == 0);
}

TEST_CASE("a saturated slot is never cleared", "[free_filter]") {
    REQUIRE(filterMapOnce());
    filterClear();
    uint64_t base = 0x7f5555550000;
    std::vector<uint64_t> same = sameSlotAs(base, 300);
    for (uint64_t a : same) {
        filterAdd(address(a));
    }
    for (uint64_t a : same) {
        filterRemove(address(a));
    }
    // Past 255 the count no longer knows how many remain: it keeps saying
    // "maybe", which costs a lookup, never a missed free.
    CHECK(filterMayContain(address(base)));
    filterClear();
    CHECK_FALSE(filterMayContain(address(base)));
}
