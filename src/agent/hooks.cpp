// The allocator hooks, and how they are put in and taken out WITHOUT the GIL.
//
// Why no GIL: a uWSGI worker under Debian's default config (no
// --enable-threads) holds the GIL while idle in epoll_wait, and an attach must
// complete without waiting for a request. So PyMem_SetAllocator is called
// while other threads may be inside the allocator. PyMem_SetAllocator copies
// the struct member by member (Objects/obmalloc.c), so a concurrent caller can
// read a torn {ctx, fn} pair. Two rules make every torn pair valid:
//   1. each hook struct carries the SAME ctx as the allocator it wraps, so a
//      caller that reads our fn with the old ctx, or the old fn with our ctx,
//      still calls a function with the ctx it expects;
//   2. the hook functions ignore their ctx and call the saved original with
//      the original's own ctx.
// The originals are written before the hook is published and never change
// while our hook may be reachable, so hooks read them without a lock.
#include "agent/hooks.h"

#include "agent/engine.h"

namespace memtap_agent {

constinit thread_local ThreadState g_thread __attribute__((tls_model("initial-exec"))) = {};

namespace {

struct DomainHooks {
    PyMemAllocatorEx original; // what our hook forwards to
    PyMemAllocatorEx hook;     // the struct we gave PyMem_SetAllocator
    bool linked;               // our hook is somewhere in the domain's chain
};

constinit DomainHooks g_domains[kDomainCount] = {};

// All hooks are here, one template per allocator function, one instance per
// domain so each knows its original without a lookup.
template <int D>
void*
hookMalloc(void*, size_t size) noexcept {
    const PyMemAllocatorEx& o = g_domains[D].original;
    ThreadState& t = g_thread;
    if (t.busy || !g_recording.load(std::memory_order_relaxed)) {
        return o.malloc(o.ctx, size);
    }
    // busy also covers the original: pymalloc serves big requests through
    // PyMem_RawMalloc, which must not be counted a second time.
    t.busy = 1;
    void* ptr = o.malloc(o.ctx, size);
    if (ptr != nullptr) {
        engineOnAlloc(t, ptr, size);
    }
    t.busy = 0;
    return ptr;
}

template <int D>
void*
hookCalloc(void*, size_t nelem, size_t elsize) noexcept {
    const PyMemAllocatorEx& o = g_domains[D].original;
    ThreadState& t = g_thread;
    if (t.busy || !g_recording.load(std::memory_order_relaxed)) {
        return o.calloc(o.ctx, nelem, elsize);
    }
    t.busy = 1;
    void* ptr = o.calloc(o.ctx, nelem, elsize);
    if (ptr != nullptr) {
        // The original checked nelem * elsize for overflow before succeeding.
        engineOnAlloc(t, ptr, nelem * elsize);
    }
    t.busy = 0;
    return ptr;
}

template <int D>
void*
hookRealloc(void*, void* oldPtr, size_t size) noexcept {
    const PyMemAllocatorEx& o = g_domains[D].original;
    ThreadState& t = g_thread;
    if (t.busy || !g_recording.load(std::memory_order_relaxed)) {
        return o.realloc(o.ctx, oldPtr, size);
    }
    t.busy = 1;
    void* ptr = o.realloc(o.ctx, oldPtr, size);
    if (ptr != nullptr) {
        // On failure the old block is untouched and stays traced as it was.
        engineOnRealloc(t, oldPtr, ptr, size);
    }
    t.busy = 0;
    return ptr;
}

template <int D>
void
hookFree(void*, void* ptr) noexcept {
    const PyMemAllocatorEx& o = g_domains[D].original;
    ThreadState& t = g_thread;
    if (t.busy || ptr == nullptr || !g_recording.load(std::memory_order_relaxed)) {
        o.free(o.ctx, ptr);
        return;
    }
    t.busy = 1;
    // Forget before freeing: raw-domain calls run without the GIL, and once
    // the block is freed another thread may get the same address and trace it.
    engineOnFree(t, ptr);
    o.free(o.ctx, ptr);
    t.busy = 0;
}

template <int D>
PyMemAllocatorEx
hookFunctions(void* ctx) {
    return PyMemAllocatorEx{ctx, hookMalloc<D>, hookCalloc<D>, hookRealloc<D>, hookFree<D>};
}

PyMemAllocatorEx
hookFor(int domain, void* ctx) {
    switch (domain) {
    case kDomainRaw:
        return hookFunctions<kDomainRaw>(ctx);
    case kDomainMem:
        return hookFunctions<kDomainMem>(ctx);
    default:
        return hookFunctions<kDomainObj>(ctx);
    }
}

bool
isOurs(const PyMemAllocatorEx& current, int domain) {
    const PyMemAllocatorEx& hook = g_domains[domain].hook;
    return current.malloc == hook.malloc && current.calloc == hook.calloc &&
           current.realloc == hook.realloc && current.free == hook.free;
}

} // namespace

void
installHooks(const PythonApi& api) noexcept {
    for (int domain = 0; domain < kDomainCount; ++domain) {
        DomainHooks& d = g_domains[domain];
        if (d.linked) {
            // A previous attach left our hook in the chain: either still on
            // top, or wrapped by someone installed after us (who forwards to
            // us). Wrapping again would make our hook its own original.
            continue;
        }
        PyMemAllocatorEx current{};
        api.getAllocator(domain, &current);
        d.original = current;
        d.hook = hookFor(domain, current.ctx);
        d.linked = true;
        api.setAllocator(domain, &d.hook);
    }
}

bool
uninstallHooks(const PythonApi& api) noexcept {
    bool allRestored = true;
    for (int domain = 0; domain < kDomainCount; ++domain) {
        DomainHooks& d = g_domains[domain];
        if (!d.linked) {
            continue;
        }
        PyMemAllocatorEx current{};
        api.getAllocator(domain, &current);
        if (isOurs(current, domain) && current.ctx == d.hook.ctx) {
            api.setAllocator(domain, &d.original);
            d.linked = false;
        } else {
            // Someone (e.g. tracemalloc.start()) wrapped our hook: removing it
            // would cut their chain. It stays, forwarding without recording.
            allRestored = false;
        }
    }
    return allRestored;
}

} // namespace memtap_agent
