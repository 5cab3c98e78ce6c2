// Work that must run on a thread holding the GIL, armed by the agent thread
// and run by the next PyMem/PyObject allocation (whose callers hold the GIL,
// Include/cpython/pymem.h) inside our hook: a pymalloc read
// (pymalloc_read.h) and a heap walk (heap_request.h). The agent never takes
// the GIL itself, so nothing it does can wait on an interpreter that never
// releases it (an idle uWSGI worker); detach disarms what never ran.
//
// One word for both, and for the fast-path bit (kGateFastPath). Every
// change of it goes through raiseGate/lowerGate/claimGilWork below, which
// also publish the two jump limits the hooks' fast path tests instead of
// the word: one compare of the size then decides both "small enough" and
// "the gate lets it through" (hooks.cpp "The fast path").
#ifndef MEMTAP_AGENT_GIL_WORK_H
#define MEMTAP_AGENT_GIL_WORK_H

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace memtap_agent {

inline constexpr uint32_t kGilWorkPymalloc = 1u;
inline constexpr uint32_t kGilWorkHeapWalk = 2u;
inline constexpr uint32_t kGilWorkMask = kGilWorkPymalloc | kGilWorkHeapWalk;
// Not GIL work: set by the engine while it records in sampled mode, when the
// hooks may pass an allocation with no sample point, or the free of a block
// the filter rules out, straight to the original (hooks.cpp "The fast
// path"). The mem and obj hooks take it only if the word is exactly this
// bit: sampled, nothing armed.
inline constexpr uint32_t kGateFastPath = 1u << 31;

// The largest allocations the fast path may jump with (hooks.cpp says why
// these sizes): mem/obj, and raw.
inline constexpr size_t kFastObjectBytes = 480;
inline constexpr size_t kFastRawBytes = size_t{1} << 30;

extern std::atomic<uint32_t> g_hookGate;

// Derived from g_hookGate: an allocation of fewer bytes than its domain's
// limit may take the fast path; 0 lets none through. mem/obj: kFastObjectBytes
// + 1 while the gate is exactly kGateFastPath; raw: kFastRawBytes + 1 while
// kGateFastPath is set (raw-domain callers need not hold the GIL, so GIL
// work never runs there).
extern std::atomic<size_t> g_objectJumpLimit;
extern std::atomic<size_t> g_rawJumpLimit;

// Makes the limits agree with the gate as it is now. Concurrent callers
// leave them agreeing with the gate's last value: each re-reads the gate
// after its stores and goes again if it moved, so the last store of each
// limit is derived from the final gate.
void publishJumpLimits() noexcept;

inline void
raiseGate(uint32_t bits) noexcept {
    g_hookGate.fetch_or(bits, std::memory_order_seq_cst);
    publishJumpLimits();
}

inline void
lowerGate(uint32_t bits) noexcept {
    g_hookGate.fetch_and(~bits, std::memory_order_seq_cst);
    publishJumpLimits();
}

// Hook side, out of line. heapWalkAllowed is false in realloc: the caller
// may still hold the old block's address in an object until it returns.
void runGilWork(bool heapWalkAllowed) noexcept;

// Claims bit for the calling thread: true if it was set (and is now clear).
inline bool
claimGilWork(uint32_t bit) noexcept {
    bool claimed = (g_hookGate.fetch_and(~bit, std::memory_order_seq_cst) & bit) != 0;
    if (claimed) {
        publishJumpLimits();
    }
    return claimed;
}

} // namespace memtap_agent

#endif // MEMTAP_AGENT_GIL_WORK_H
