// The hooks' jump limits (gil_work.h) against the gate they are derived
// from: the fast path tests only the limits, so a limit that disagrees with
// the gate either lets exact mode's allocations through untraced or keeps
// armed GIL work from running.
#include "agent/gil_work.h"

#include <catch2/catch.hpp>

using namespace memtap_agent;

namespace {

constexpr size_t kObjectOpen = kFastObjectBytes + 1;
constexpr size_t kRawOpen = kFastRawBytes + 1;

void
resetGate() {
    g_hookGate.store(0);
    publishJumpLimits();
}

} // namespace

TEST_CASE("the jump limits follow the gate bit by bit", "[jump_limits]") {
    resetGate();
    CHECK(g_objectJumpLimit.load() == 0);
    CHECK(g_rawJumpLimit.load() == 0);

    raiseGate(kGateFastPath);
    CHECK(g_objectJumpLimit.load() == kObjectOpen);
    CHECK(g_rawJumpLimit.load() == kRawOpen);

    // Armed GIL work closes mem/obj (it must run there), not raw.
    raiseGate(kGilWorkHeapWalk);
    CHECK(g_objectJumpLimit.load() == 0);
    CHECK(g_rawJumpLimit.load() == kRawOpen);
    raiseGate(kGilWorkPymalloc);
    CHECK(claimGilWork(kGilWorkHeapWalk));
    CHECK_FALSE(claimGilWork(kGilWorkHeapWalk));
    CHECK(g_objectJumpLimit.load() == 0); // the pymalloc read is still armed
    CHECK(claimGilWork(kGilWorkPymalloc));
    CHECK(g_objectJumpLimit.load() == kObjectOpen);

    // Work armed outside sampled mode leaves everything closed, and
    // stopping sampled mode closes both whatever is armed.
    raiseGate(kGilWorkPymalloc);
    lowerGate(kGateFastPath);
    CHECK(g_objectJumpLimit.load() == 0);
    CHECK(g_rawJumpLimit.load() == 0);
    lowerGate(kGilWorkPymalloc);
    CHECK(g_objectJumpLimit.load() == 0);
    CHECK(g_rawJumpLimit.load() == 0);
}
