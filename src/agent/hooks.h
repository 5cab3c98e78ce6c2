// Installing, checking and removing the allocator hooks on the three PyMem
// domains.
//
// All of these run WITHOUT the GIL (see hooks.cpp for why that is safe), on
// the agent thread, one at a time (except runWithObjectAllocatorUnwrapped,
// below, which a hook calls).
#ifndef MEMTAP_AGENT_HOOKS_H
#define MEMTAP_AGENT_HOOKS_H

#include "agent/python_api.h"

#include <cstdint>

namespace memtap_agent {

// Wraps raw, mem and obj. Idempotent: a domain whose chain still reaches our
// hook (a dormant agent left it in pass-through, possibly wrapped by someone
// installed after us) is not wrapped again; one whose chain no longer reaches
// it is wrapped afresh. The hooks forward only; recording is switched on by
// the engine. Clears the chain report (hookChainReport).
void installHooks(const PythonApi& api) noexcept;

// Puts back the original allocator of each domain whose current allocator is
// still ours; a domain that someone wrapped after us keeps our hook, which
// stays in pass-through; a domain whose chain no longer reaches our hook has
// nothing of ours to remove. Returns true unless some domain kept our hook.
bool uninstallHooks(const PythonApi& api) noexcept;

// While recording: for each domain, is our hook still reached from what
// PyMem_GetAllocator returns (hook_chain.h says how far that can be known)?
// A domain cut out of its chain (tracemalloc.stop() after tracemalloc was
// started before us puts back the allocators it saved) gets our hook again
// on top of its current allocator, the traces recorded so far are dropped
// (frees were missed in between), and the re-install is counted.
void checkHookChain(const PythonApi& api) noexcept;

enum class DomainChain : uint8_t {
    kNone,     // no hook of ours installed in this domain
    kIntact,   // our hook is the current allocator
    kWrapped,  // another hook was installed above ours and still calls it
    kLost,     // our hook is not reached and could not be installed again
    kUnsettled // the current allocator kept changing while we read it
};

struct HookChainReport {
    DomainChain domains[3];    // indexed by PyMemDomain, as of the last check
    uint32_t reinstalls;       // since installHooks
    uint64_t lastReinstallMs;  // CLOCK_REALTIME of the last one, 0 if none
    uint8_t lastReinstallMask; // 1 << domain for each domain re-installed then
};
HookChainReport hookChainReport() noexcept;

// From a mem/obj hook, GIL held: runs fn(arg) with the object domain set to
// the allocator our live hook wraps, then puts back what was there. CPython's
// own stats look for pymalloc at the top of that chain and report nothing
// while any hook, ours included, sits there (_PyMem_PymallocEnabled,
// Objects/obmalloc.c). Never waits: false, without running fn, while the
// agent thread is reading or changing the chains, or when the object domain
// has no live hook of ours.
bool runWithObjectAllocatorUnwrapped(const PythonApi& api, void (*fn)(void*), void* arg) noexcept;

// fork(): the child gets the chain lock free (entry.cpp's fork handlers).
void hooksForkPrepare() noexcept;
void hooksForkParent() noexcept;
void hooksForkChild() noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_HOOKS_H
