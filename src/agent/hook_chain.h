// Reading a domain's allocator chain from the agent thread, without the GIL:
// where (if anywhere) our hook sits below what PyMem_GetAllocator returns.
//
// What can be known (hook_chain.cpp has the sources):
//   - the current allocator IS one of our hooks: intact;
//   - the current allocator is a wrapper that keeps the allocator it wrapped
//     in a PyMemAllocatorEx at its ctx (tracemalloc on 3.6..3.13, memray and
//     others that copy the pattern), and following ctx reaches our hook:
//     wrapped, our hook is still called;
//   - otherwise we cannot prove our hook is reached. After tracemalloc.stop()
//     (it restores the allocators it saved, which do not include ours when
//     tracemalloc was started first) that is exactly the state, and the
//     static tracemalloc kept them in is not visible to us. A wrapper with
//     another ctx convention that still calls us looks the same; hooks.cpp
//     treats both as cut, which is sound because re-installing on top of a
//     chain that still reaches an old hook of ours records each call once
//     (the reentrancy guard) and never loops (each generation of our hooks
//     forwards to its own saved original).
#ifndef MEMTAP_AGENT_HOOK_CHAIN_H
#define MEMTAP_AGENT_HOOK_CHAIN_H

#include "agent/python_api.h"

namespace memtap_agent {

// Copies size bytes at addr into out, or returns false if any of them is not
// readable (never faults: the kernel copies them, see hook_chain.cpp).
bool tryReadMemory(const void* addr, void* out, size_t size) noexcept;

// The domain's current allocator, read until two reads a little apart agree:
// before 3.12 PyMem_GetAllocator takes no lock, and a thread holding the GIL
// may be half-way through PyMem_SetAllocator. False if it never settled.
bool tryReadSettledAllocator(const PythonApi& api, int domain, PyMemAllocatorEx* out) noexcept;

enum class ChainPlace { kTop, kBelowWrapper, kNotFound };

struct ChainFind {
    ChainPlace place;
    int generation; // which of our hooks was found (matchOurs' answer), -1 if none
};

// matchOurs returns the generation whose hook functions a is, or -1.
using MatchOursFn = int (*)(int domain, const PyMemAllocatorEx& a);

// Follows ctx from current through at most a few wrappers (see above).
ChainFind findOurHook(int domain, const PyMemAllocatorEx& current, MatchOursFn matchOurs) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_HOOK_CHAIN_H
