// Work that must run on a thread holding the GIL, armed by the agent thread
// and run by the next PyMem/PyObject allocation (whose callers hold the GIL,
// Include/cpython/pymem.h) inside our hook: a pymalloc read
// (pymalloc_read.h) and a heap walk (heap_request.h). The agent never takes
// the GIL itself, so nothing it does can wait on an interpreter that never
// releases it (an idle uWSGI worker); detach disarms what never ran.
//
// One word for both, and for the fast-path bit (kGateFastPath), so the
// hooks' common path pays a single relaxed load.
#ifndef MEMTAP_AGENT_GIL_WORK_H
#define MEMTAP_AGENT_GIL_WORK_H

#include <atomic>
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

extern std::atomic<uint32_t> g_hookGate;

// Hook side, out of line. heapWalkAllowed is false in realloc: the caller
// may still hold the old block's address in an object until it returns.
void runGilWork(bool heapWalkAllowed) noexcept;

// Claims bit for the calling thread: true if it was set (and is now clear).
inline bool
claimGilWork(uint32_t bit) noexcept {
    return (g_hookGate.fetch_and(~bit, std::memory_order_acq_rel) & bit) != 0;
}

} // namespace memtap_agent

#endif // MEMTAP_AGENT_GIL_WORK_H
