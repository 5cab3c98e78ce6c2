// Work that must run on a thread holding the GIL, armed by the agent thread
// and run by the next PyMem/PyObject allocation (whose callers hold the GIL,
// Include/cpython/pymem.h) inside our hook: a pymalloc read
// (pymalloc_read.h) and a heap walk (heap_request.h). The agent never takes
// the GIL itself, so nothing it does can wait on an interpreter that never
// releases it (an idle uWSGI worker); detach disarms what never ran.
//
// One word for both, so the hooks' common path pays a single relaxed load.
#ifndef MEMTAP_AGENT_GIL_WORK_H
#define MEMTAP_AGENT_GIL_WORK_H

#include <atomic>
#include <cstdint>

namespace memtap_agent {

inline constexpr uint32_t kGilWorkPymalloc = 1u;
inline constexpr uint32_t kGilWorkHeapWalk = 2u;

extern std::atomic<uint32_t> g_gilWork;

// Hook side, out of line. heapWalkAllowed is false in realloc: the caller
// may still hold the old block's address in an object until it returns.
void runGilWork(bool heapWalkAllowed) noexcept;

// Claims bit for the calling thread: true if it was set (and is now clear).
inline bool
claimGilWork(uint32_t bit) noexcept {
    return (g_gilWork.fetch_and(~bit, std::memory_order_acq_rel) & bit) != 0;
}

} // namespace memtap_agent

#endif // MEMTAP_AGENT_GIL_WORK_H
