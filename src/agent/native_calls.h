// --native (MEMTAP_FEATURE_NATIVE): memory that native modules take from
// libc directly (malloc, calloc, realloc, free, posix_memalign, aligned_alloc,
// memalign, mmap, munmap), which no PyMem hook sees: C extensions, the C++
// runtime they use, compression and database libraries.
//
// The GOT slots through which each such module calls those functions point
// at hooks of our own (got_rewire.h); one set of hook instances per module,
// so a block is charged to the module that called libc (its domain is
// kNativeDomainBase + the module's number, snapshot "domain" lines name it)
// under the Python traceback of the calling thread. Left alone: libc, the
// dynamic loader, the interpreter's own module (its allocators are traced
// already) and the agent. The hooks call the definitions the program's
// symbol lookup reaches (an LD_PRELOADed allocator included), never a slot's
// old value (with lazy binding that is the PLT stub, whose resolver would
// write the slot) nor a canonical PLT address (native_calls.cpp).
//
// Not seen: a block a module allocates and the interpreter frees (or the
// other way round) keeps its record until its address is reused; a munmap
// of part of a mapping is ignored (a whole one, from its start, is seen).
//
// Agent thread only, except the hooks.
#ifndef MEMTAP_AGENT_NATIVE_CALLS_H
#define MEMTAP_AGENT_NATIVE_CALLS_H

#include "agent/python_api.h"

#include <cstdint>

namespace memtap_agent {

// Native blocks' domain: this plus the module's number (< 32).
inline constexpr uint32_t kNativeDomainBase = 0x4d540000u; // "MT" << 16
inline constexpr uint32_t kNativeModules = 32;

// False (nothing rewired) when the real allocator functions cannot be found.
bool rewireNativeCalls(const PythonApi& api) noexcept;
uint32_t restoreNativeCalls() noexcept;

// The basename of native module `module` ("" if none), for snapshots.
const char* nativeModuleName(uint32_t module) noexcept;

struct NativeCallsReport {
    bool enabled;
    uint32_t slots;
    uint32_t skipped;
    const char* names;
    const char* skippedWhy;
};
NativeCallsReport nativeCallsReport() noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_NATIVE_CALLS_H
