// The allocator hooks, and how they are put in, checked and taken out
// WITHOUT the GIL.
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
//
// Generations. Another PyMem_SetAllocator caller may cut our hook out of a
// domain's chain (tracemalloc.stop() after a tracemalloc.start() that came
// before our attach: it puts back the allocators it saved, below ours).
// checkHookChain then installs our hook again on top of the new current
// allocator. That must not rewrite the original of the hook that was cut:
// some thread may still be calling it (it read the old pair just before the
// cut), or the chain may in fact still reach it through a wrapper we cannot
// follow (hook_chain.h). So each domain has kGenerations hook instances, each
// with its own original: a re-install takes an unused one, and an instance
// that was cut is never reused (kAbandoned). If our old hook is still reached
// below the new one, the reentrancy guard (busy) makes it forward without
// recording, so nothing is counted twice and nothing loops. A generation is
// reused only after detach put its original back cleanly, as before.
#include "agent/hooks.h"

#include "agent/engine.h"
#include "agent/free_filter.h"
#include "agent/gil_work.h"
#include "agent/hook_chain.h"

#include <pthread.h>
#include <time.h>
#include <utility>

namespace memtap_agent {

constinit thread_local ThreadState g_thread __attribute__((tls_model("initial-exec"))) = {};

namespace {

// Each re-install uses one for good; 16 survive any plausible program (a cut
// needs someone to install below us and remove it again).
constexpr int kGenerations = 16;

enum class SlotState : uint8_t {
    kFree,      // never published, or its original was put back by detach
    kLinked,    // the one generation we consider live in this domain
    kAbandoned, // cut out of the chain; its original stays as it was, forever
};

struct Slot {
    PyMemAllocatorEx original; // what this generation's hook forwards to
    PyMemAllocatorEx hook;     // the struct we gave PyMem_SetAllocator
    SlotState state;
};

constinit Slot g_slots[kDomainCount][kGenerations] = {};
constinit HookChainReport g_report = {};

// Held by the agent thread while it reads or changes the chains (install,
// check, uninstall), and by a hook while runWithObjectAllocatorUnwrapped has
// the object domain swapped; a hook only ever tries it. Without it a chain
// check that ran during the swap would take our hook for cut out.
constinit pthread_mutex_t g_chainLock = PTHREAD_MUTEX_INITIALIZER;

struct ChainLockGuard {
    ChainLockGuard() { pthread_mutex_lock(&g_chainLock); }
    ~ChainLockGuard() { pthread_mutex_unlock(&g_chainLock); }
    ChainLockGuard(const ChainLockGuard&) = delete;
    ChainLockGuard& operator=(const ChainLockGuard&) = delete;
};

// Armed GIL work (gil_work.h) runs in the mem and obj domains only: their
// callers hold the GIL; raw-domain callers need not.
template <int D>
__attribute__((always_inline)) inline void
runArmedWorkIfAny(bool heapWalkAllowed) {
    if (D != kDomainRaw && (g_hookGate.load(std::memory_order_relaxed) & kGilWorkMask) != 0)
        [[unlikely]] {
        runGilWork(heapWalkAllowed);
    }
}

// The fast path (sampled mode). Most allocations hold no sample point and
// most freed blocks were never traced. For those the hook reads two words
// (the domain's jump limit, the thread's budget) and jumps to the
// original: a tail call, no stack frame, nothing set around the call
// (nothing it does could be recorded twice); a free reads the filter only.
// Everything else takes the slow path below, as every call did before.
// As objdump shows it (RelWithDebInfo, LTO), malloc's fast path is 12
// instructions and free's 12.
//
// When the original may call our hooks again, the call is guarded instead
// (busy set around it, still without the engine): pymalloc serves requests
// over 512 bytes (SMALL_REQUEST_THRESHOLD, Objects/obmalloc.c) through
// PyMem_RawMalloc, and reallocates a block it does not manage through
// PyMem_RawRealloc, both through our raw hook. Unguarded, the inner call
// would take the same bytes off the budget a second time and double the
// block's chance of being sampled. So mem/obj allocations jump straight to
// the original only up to kFastObjectBytes, 480 (room for the 32 bytes of
// pads the debug hooks add, PYTHONMALLOC=debug, _PyMem_DebugRawAlloc:
// 4 * sizeof(size_t)), and mem/obj reallocs are always guarded. A small
// request can still reach the raw domain (pymalloc growing its arena
// vector, 3.10+ radix tree nodes); those are blocks of their own, seen
// once, as raw allocations. kFastRawBytes keeps the budget's arithmetic
// far from overflow (thread_state.h kBusyBias).
//
// An allocation's first test is its size against the domain's jump limit
// (gil_work.h), which is 0 unless the gate lets the fast path through: one
// compare with memory instead of a size check and a gate check.

template <int D>
__attribute__((always_inline)) inline size_t
jumpLimit() {
    return (D == kDomainRaw ? g_rawJumpLimit : g_objectJumpLimit).load(std::memory_order_relaxed);
}

// The gate's condition as the limit encodes it, for the paths that compare
// the size with something else: sampled mode, and in mem/obj nothing armed
// (armed GIL work must run there).
template <int D>
__attribute__((always_inline)) inline bool
gateOpen() {
    return jumpLimit<D>() != 0;
}

// The thread's check every fast path makes once the gate is open: the
// budget (thread_state.h) covers the size, so the thread is not busy and
// no sample point falls inside the block. Takes the bytes off the budget
// and counts the call when it says yes.
__attribute__((always_inline)) inline bool
skipsEngine(ThreadState& t, size_t size) {
    if (t.fastBudget <= static_cast<int64_t>(size)) {
        return false;
    }
    t.fastBudget -= static_cast<int64_t>(size);
    t.calls += 1;
    return true;
}

__attribute__((noinline)) void*
guardedMalloc(const PyMemAllocatorEx& o, size_t size) {
    ThreadState& t = g_thread;
    beginGuard(t);
    void* ptr = o.malloc(o.ctx, size);
    endGuard(t);
    return ptr;
}

__attribute__((noinline)) void*
guardedCalloc(const PyMemAllocatorEx& o, size_t nelem, size_t elsize) {
    ThreadState& t = g_thread;
    beginGuard(t);
    void* ptr = o.calloc(o.ctx, nelem, elsize);
    endGuard(t);
    return ptr;
}

__attribute__((noinline)) void*
guardedRealloc(const PyMemAllocatorEx& o, void* oldPtr, size_t size) {
    ThreadState& t = g_thread;
    beginGuard(t);
    void* ptr = o.realloc(o.ctx, oldPtr, size);
    endGuard(t);
    return ptr;
}

// The slow path, shared by every instance: o is that instance's original.
template <int D>
__attribute__((noinline)) void*
slowMalloc(const PyMemAllocatorEx& o, size_t size) {
    ThreadState& t = g_thread;
    if (isBusy(t) || !g_recording.load(std::memory_order_relaxed)) {
        return o.malloc(o.ctx, size);
    }
    // busy also covers the original: pymalloc serves big requests through
    // PyMem_RawMalloc, which must not be counted a second time.
    setBusy(t);
    void* ptr = o.malloc(o.ctx, size);
    if (ptr != nullptr) {
        engineOnAlloc(t, ptr, size);
    }
    runArmedWorkIfAny<D>(true);
    clearBusy(t);
    return ptr;
}

template <int D>
__attribute__((noinline)) void*
slowCalloc(const PyMemAllocatorEx& o, size_t nelem, size_t elsize) {
    ThreadState& t = g_thread;
    if (isBusy(t) || !g_recording.load(std::memory_order_relaxed)) {
        return o.calloc(o.ctx, nelem, elsize);
    }
    setBusy(t);
    void* ptr = o.calloc(o.ctx, nelem, elsize);
    if (ptr != nullptr) {
        // The original checked nelem * elsize for overflow before succeeding.
        engineOnAlloc(t, ptr, nelem * elsize);
    }
    runArmedWorkIfAny<D>(true);
    clearBusy(t);
    return ptr;
}

template <int D>
__attribute__((noinline)) void*
slowRealloc(const PyMemAllocatorEx& o, void* oldPtr, size_t size) {
    ThreadState& t = g_thread;
    if (isBusy(t) || !g_recording.load(std::memory_order_relaxed)) {
        return o.realloc(o.ctx, oldPtr, size);
    }
    setBusy(t);
    void* ptr = o.realloc(o.ctx, oldPtr, size);
    if (ptr != nullptr) {
        // On failure the old block is untouched and stays traced as it was.
        engineOnRealloc(t, oldPtr, ptr, size);
    }
    runArmedWorkIfAny<D>(false);
    clearBusy(t);
    return ptr;
}

__attribute__((noinline)) void
slowFree(const PyMemAllocatorEx& o, void* ptr) {
    ThreadState& t = g_thread;
    if (isBusy(t) || ptr == nullptr || !g_recording.load(std::memory_order_relaxed)) {
        o.free(o.ctx, ptr);
        return;
    }
    setBusy(t);
    // Forget before freeing: raw-domain calls run without the GIL, and once
    // the block is freed another thread may get the same address and trace it.
    engineOnFree(t, ptr);
    o.free(o.ctx, ptr);
    clearBusy(t);
}

// Off the jump path: a mem/obj allocation over kFastObjectBytes with no
// sample point is guarded; anything else with a sample point (or a count
// due, ...) is recorded by the slow path.
template <int D>
__attribute__((noinline)) void*
mallocOffJumpPath(const PyMemAllocatorEx& o, size_t size) {
    if (D != kDomainRaw && size > kFastObjectBytes && size <= kFastRawBytes && gateOpen<D>() &&
        skipsEngine(g_thread, size)) {
        return guardedMalloc(o, size);
    }
    return slowMalloc<D>(o, size);
}

template <int D>
__attribute__((noinline)) void*
callocOffJumpPath(const PyMemAllocatorEx& o, size_t nelem, size_t elsize, size_t size) {
    if (D != kDomainRaw && size > kFastObjectBytes && size <= kFastRawBytes && gateOpen<D>() &&
        skipsEngine(g_thread, size)) {
        return guardedCalloc(o, nelem, elsize);
    }
    return slowCalloc<D>(o, nelem, elsize);
}

// A realloc of NULL is a malloc; any other realloc in mem/obj is guarded
// (the old block may be one pymalloc passes to PyMem_RawRealloc). The old
// block must not be traced.
template <int D>
__attribute__((always_inline)) inline void*
forwardRealloc(const PyMemAllocatorEx& o, void* oldPtr, size_t size) {
    ThreadState& t = g_thread;
    if (size <= kFastRawBytes && gateOpen<D>() && (oldPtr == nullptr || !filterMayContain(oldPtr)) &&
        skipsEngine(t, size)) {
        bool jump = D == kDomainRaw || (oldPtr == nullptr && size <= kFastObjectBytes);
        return jump ? o.realloc(o.ctx, oldPtr, size) : guardedRealloc(o, oldPtr, size);
    }
    return slowRealloc<D>(o, oldPtr, size);
}

// All hooks are here: one instance per domain and generation, so each knows
// its original without a lookup.
template <int D, int G>
void*
hookMalloc(void*, size_t size) noexcept {
    const PyMemAllocatorEx& o = g_slots[D][G].original;
    if (size < jumpLimit<D>() && skipsEngine(g_thread, size)) [[likely]] {
        return o.malloc(o.ctx, size);
    }
    return mallocOffJumpPath<D>(o, size);
}

template <int D, int G>
void*
hookCalloc(void*, size_t nelem, size_t elsize) noexcept {
    const PyMemAllocatorEx& o = g_slots[D][G].original;
    // May wrap: the size only steers sampling and the guard, and an
    // overflowing calloc fails in the original (which checks), returning
    // NULL, so nothing is recorded with a wrapped size.
    size_t size = nelem * elsize;
    if (size < jumpLimit<D>() && skipsEngine(g_thread, size)) [[likely]] {
        return o.calloc(o.ctx, nelem, elsize);
    }
    return callocOffJumpPath<D>(o, nelem, elsize, size);
}

template <int D, int G>
void*
hookRealloc(void*, void* oldPtr, size_t size) noexcept {
    return forwardRealloc<D>(g_slots[D][G].original, oldPtr, size);
}

template <int D, int G>
void
hookFree(void*, void* ptr) noexcept {
    const PyMemAllocatorEx& o = g_slots[D][G].original;
    // In any mode, and whatever the gate: a block the filter rules out is
    // not traced, and the slow path would only forward its free. The filter
    // is mapped (engineStart) before any hook is installed, and never
    // unmapped. No thread-local: frees are not counted, and a free on a
    // busy thread is forwarded by the slow path too.
    if (!filterMayContain(ptr)) [[likely]] {
        o.free(o.ctx, ptr);
        return;
    }
    slowFree(o, ptr);
}

struct HookFns {
    void* (*malloc)(void*, size_t);
    void* (*calloc)(void*, size_t, size_t);
    void* (*realloc)(void*, void*, size_t);
    void (*free)(void*, void*);
};

struct DomainFns {
    HookFns generation[kGenerations];
};

template <int D, int... G>
constexpr DomainFns
domainFns(std::integer_sequence<int, G...>) {
    return DomainFns{
        {HookFns{hookMalloc<D, G>, hookCalloc<D, G>, hookRealloc<D, G>, hookFree<D, G>}...}};
}

constexpr DomainFns kHooks[kDomainCount] = {
    domainFns<kDomainRaw>(std::make_integer_sequence<int, kGenerations>{}),
    domainFns<kDomainMem>(std::make_integer_sequence<int, kGenerations>{}),
    domainFns<kDomainObj>(std::make_integer_sequence<int, kGenerations>{}),
};

bool
hasFns(const PyMemAllocatorEx& a, const HookFns& f) {
    return a.malloc == f.malloc && a.calloc == f.calloc && a.realloc == f.realloc && a.free == f.free;
}

// Any generation, whatever its state: one that is found in the chain is
// reachable, whatever we thought of it.
int
matchOurs(int domain, const PyMemAllocatorEx& a) {
    for (int g = 0; g < kGenerations; ++g) {
        if (hasFns(a, kHooks[domain].generation[g])) {
            return g;
        }
    }
    return -1;
}

int
linkedGeneration(int domain) {
    for (int g = 0; g < kGenerations; ++g) {
        if (g_slots[domain][g].state == SlotState::kLinked) {
            return g;
        }
    }
    return -1;
}

// Publishes a fresh generation of our hook on top of current (read settled
// just before). False if every generation of this domain is used up.
bool
installOn(const PythonApi& api, int domain, const PyMemAllocatorEx& current) {
    for (int g = 0; g < kGenerations; ++g) {
        Slot& s = g_slots[domain][g];
        if (s.state != SlotState::kFree) {
            continue;
        }
        const HookFns& f = kHooks[domain].generation[g];
        s.original = current;
        s.hook = PyMemAllocatorEx{current.ctx, f.malloc, f.calloc, f.realloc, f.free};
        s.state = SlotState::kLinked;
        api.setAllocator(domain, &s.hook);
        return true;
    }
    return false;
}

// What a domain's chain looks like now. A cut domain comes back as kNone
// with its generation abandoned and *current holding what to wrap.
DomainChain
examine(const PythonApi& api, int domain, PyMemAllocatorEx* current) {
    int linked = linkedGeneration(domain);
    if (linked < 0) {
        return DomainChain::kNone;
    }
    if (!tryReadSettledAllocator(api, domain, current)) {
        return DomainChain::kUnsettled;
    }
    ChainFind found = findOurHook(domain, *current, matchOurs);
    if (found.place == ChainPlace::kNotFound) {
        g_slots[domain][linked].state = SlotState::kAbandoned;
        return DomainChain::kNone;
    }
    if (found.generation != linked) {
        // An older generation is what the chain reaches (someone put back a
        // copy of it): it is the live one now, the other was cut.
        g_slots[domain][linked].state = SlotState::kAbandoned;
        g_slots[domain][found.generation].state = SlotState::kLinked;
    }
    return found.place == ChainPlace::kTop ? DomainChain::kIntact : DomainChain::kWrapped;
}

uint64_t
wallClockMs() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

} // namespace

void
installHooks(const PythonApi& api) noexcept {
    ChainLockGuard lock;
    g_report = HookChainReport{};
    for (int domain = 0; domain < kDomainCount; ++domain) {
        PyMemAllocatorEx current{};
        // A previous attach may have left our hook in the chain: still on
        // top, or wrapped by someone installed after us (who forwards to us).
        // Wrapping again would only add a level; a chain that was cut gets a
        // fresh generation (nothing was recorded while dormant, so this is
        // not counted as a re-install).
        bool hadHook = linkedGeneration(domain) >= 0;
        DomainChain chain = examine(api, domain, &current);
        if (chain == DomainChain::kNone) {
            if (!hadHook) {
                // The first install reads once, as it always did: the
                // settled read's short sleeps would lengthen the borrowed
                // thread's stop while the entry runs on it.
                api.getAllocator(domain, &current);
            }
            chain = installOn(api, domain, current) ? DomainChain::kIntact : DomainChain::kLost;
        }
        g_report.domains[domain] = chain;
    }
}

bool
uninstallHooks(const PythonApi& api) noexcept {
    ChainLockGuard lock;
    bool allRestored = true;
    for (int domain = 0; domain < kDomainCount; ++domain) {
        int linked = linkedGeneration(domain);
        if (linked < 0) {
            g_report.domains[domain] = DomainChain::kNone;
            continue;
        }
        PyMemAllocatorEx current{};
        DomainChain chain = examine(api, domain, &current);
        if (chain == DomainChain::kIntact) {
            // examine may have switched to another generation found on top.
            int live = linkedGeneration(domain);
            Slot& top = g_slots[domain][live];
            if (current.ctx == top.hook.ctx) {
                api.setAllocator(domain, &top.original);
                top.state = SlotState::kFree;
                chain = DomainChain::kNone;
            } else {
                allRestored = false; // our functions with a ctx we did not set
            }
        } else if (chain != DomainChain::kNone) {
            // Someone (e.g. tracemalloc.start()) wrapped our hook, or the
            // chain would not settle: removing it could cut their chain. It
            // stays, forwarding without recording.
            allRestored = false;
        }
        // (kNone: cut out; the current allocator is what the program set
        // last, and nothing of ours is in it to remove.)
        g_report.domains[domain] = chain;
    }
    return allRestored;
}

void
checkHookChain(const PythonApi& api) noexcept {
    if (!g_recording.load(std::memory_order_relaxed)) {
        return;
    }
    ChainLockGuard lock;
    PyMemAllocatorEx current[kDomainCount] = {};
    uint8_t cut = 0;
    for (int domain = 0; domain < kDomainCount; ++domain) {
        if (linkedGeneration(domain) < 0) {
            continue; // never installed, or already reported lost
        }
        DomainChain chain = examine(api, domain, &current[domain]);
        if (chain == DomainChain::kNone) {
            cut |= static_cast<uint8_t>(1u << domain);
        } else {
            g_report.domains[domain] = chain;
        }
    }
    if (cut == 0) {
        return;
    }
    // Frees in the cut domains went unseen: what is traced may be long gone.
    // Start over before the hooks go back, so what they record is kept.
    engineRestartTraces();
    for (int domain = 0; domain < kDomainCount; ++domain) {
        if (cut & (1u << domain)) {
            g_report.domains[domain] =
                installOn(api, domain, current[domain]) ? DomainChain::kIntact : DomainChain::kLost;
        }
    }
    ++g_report.reinstalls;
    g_report.lastReinstallMs = wallClockMs();
    g_report.lastReinstallMask = cut;
}

HookChainReport
hookChainReport() noexcept {
    return g_report;
}

bool
runWithObjectAllocatorUnwrapped(const PythonApi& api, void (*fn)(void*), void* arg) noexcept {
    if (pthread_mutex_trylock(&g_chainLock) != 0) {
        return false;
    }
    int linked = linkedGeneration(kDomainObj);
    if (linked >= 0) {
        // The caller holds the GIL, so no other thread of this interpreter
        // is in the object domain. A caller of another interpreter (3.12+,
        // own GIL) reading the pair mid-swap gets the same ctx either way:
        // our hook carries its original's ctx (the rule at the top).
        PyMemAllocatorEx current{};
        api.getAllocator(kDomainObj, &current);
        PyMemAllocatorEx original = g_slots[kDomainObj][linked].original;
        api.setAllocator(kDomainObj, &original);
        fn(arg);
        api.setAllocator(kDomainObj, &current);
    }
    pthread_mutex_unlock(&g_chainLock);
    return linked >= 0;
}

void
hooksForkPrepare() noexcept {
    pthread_mutex_lock(&g_chainLock);
}

void
hooksForkParent() noexcept {
    pthread_mutex_unlock(&g_chainLock);
}

void
hooksForkChild() noexcept {
    g_chainLock = PTHREAD_MUTEX_INITIALIZER;
}

} // namespace memtap_agent
