// Memory that extensions report through PyTraceMalloc_Track/_Untrack
// (Include/cpython/tracemalloc.h; numpy's array buffers, domain 389047 =
// NPY_TRACE_DOMAIN), traced like the PyMem domains while attached.
//
// How: the GOT slot through which each loaded module calls those functions
// is pointed at our hook (got_rewire.h), which calls the real function first
// (tracemalloc, if running, still sees the call) and then records it. The
// agent thread rescans when modules were loaded, and puts every slot back on
// detach.
//
// Agent thread only, except the hooks.
#ifndef MEMTAP_AGENT_TRACKED_CALLS_H
#define MEMTAP_AGENT_TRACKED_CALLS_H

#include "agent/python_api.h"

#include <cstdint>

namespace memtap_agent {

// Points every loaded module's slots at our hooks (also those found by an
// earlier scan that someone rewrote, e.g. lazy binding resolving the PLT
// entry at the same moment). A no-op when the interpreter has no
// PyTraceMalloc_Track. Cheap when no module was loaded since the last call.
void rewireTrackedCalls(const PythonApi& api) noexcept;
// Puts back every slot still holding our hook. Returns how many were put back.
uint32_t restoreTrackedCalls() noexcept;

struct TrackedCallsReport {
    bool available;         // the interpreter exports PyTraceMalloc_Track/_Untrack
    uint32_t slots;         // GOT slots pointing at our hooks now
    uint32_t skipped;       // slots left alone
    const char* names;      // comma-separated basenames of the rewired modules
    const char* skippedWhy; // "MODULE: reason" of the first slot left alone, or ""
};
TrackedCallsReport trackedCallsReport() noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_TRACKED_CALLS_H
