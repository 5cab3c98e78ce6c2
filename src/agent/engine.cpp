#include "agent/engine.h"

#include "agent/protocol.h"
#include "agent/python_frames.h"
#include "agent/sampler.h"
#include "agent/tables.h"
#include "agent/traces.h"

#include <pthread.h>
#include <sys/mman.h>

namespace memtap_agent {

constinit std::atomic<bool> g_recording{false};

namespace {

// Allocator calls are counted per thread and added to the global counter in
// batches, so the common path has no atomic read-modify-write on a cache line
// shared by every allocating thread. Status may lag by kSeenBatch-1 calls per
// thread.
constexpr uint32_t kSeenBatch = 64;
constexpr size_t kInitialAddresses = 1 << 16;

// The free-side filter, per slot of an address hash: a count of traced
// allocations that hash there (saturating at 255, then never decremented),
// read and written under the lock, and a bitmap whose bit is set while that
// count is non-zero, written under the lock and read without it. A clear bit
// proves the block is not traced, so the common free skips the lock and the
// table. Every free reads the bitmap, so it is kept small (64 KiB, in cache);
// the counts are touched only by traced allocations.
constexpr unsigned kFilterBits = 19;
constexpr size_t kFilterSlots = size_t{1} << kFilterBits;
constexpr size_t kFilterBitmapBytes = kFilterSlots / 8;
constexpr size_t kFilterBytes = kFilterSlots + kFilterBitmapBytes;

// Static objects here must have no destructor that runs at exit: other
// threads of the target may still be inside a hook while the process exits.
template <typename T> union NoDestroy {
    constexpr NoDestroy() : value() {}
    ~NoDestroy() {}
    T value;
};

constinit std::atomic<uint64_t> g_allocationsSeen{0};

// Everything below is protected by g_lock, except the configuration (written
// before g_recording is set, read by hooks after they saw it set) and the
// filter reads.
constinit pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
constinit bool g_live = false; // tables mapped
constinit bool g_exact = false;
constinit bool g_capture = false;
constinit int g_frames = 1;
constinit NoDestroy<Traces> g_traces;
constinit NoDestroy<AddressTable> g_addresses;
constinit uint8_t* g_filter = nullptr; // counts then bitmap; mapped once, kept across attaches
constinit int64_t g_tracedBytes = 0;
constinit int64_t g_tracedCountFp = 0;

inline void
countCall(ThreadState& t) {
    if (++t.pendingSeen >= kSeenBatch) {
        g_allocationsSeen.fetch_add(t.pendingSeen, std::memory_order_relaxed);
        t.pendingSeen = 0;
    }
}

inline size_t
filterSlot(const void* ptr) {
    return mix64(reinterpret_cast<uintptr_t>(ptr)) >> (64 - kFilterBits);
}

inline uint64_t*
filterWord(size_t slot) {
    return reinterpret_cast<uint64_t*>(g_filter + kFilterSlots) + slot / 64;
}

inline bool
maybeTraced(const void* ptr) {
    size_t slot = filterSlot(ptr);
    return (__atomic_load_n(filterWord(slot), __ATOMIC_RELAXED) >> (slot % 64)) & 1;
}

// Under g_lock.
void
filterAdd(const void* ptr) {
    size_t slot = filterSlot(ptr);
    uint8_t& count = g_filter[slot];
    if (count == 255) {
        return;
    }
    if (count++ == 0) {
        uint64_t* word = filterWord(slot);
        __atomic_store_n(word, *word | (uint64_t{1} << (slot % 64)), __ATOMIC_RELAXED);
    }
}

// Under g_lock.
void
filterRemove(const void* ptr) {
    size_t slot = filterSlot(ptr);
    uint8_t& count = g_filter[slot];
    if (count == 255 || count == 0) {
        return;
    }
    if (--count == 0) {
        uint64_t* word = filterWord(slot);
        __atomic_store_n(word, *word & ~(uint64_t{1} << (slot % 64)), __ATOMIC_RELAXED);
    }
}

Weight
weightOf(uint64_t size) {
    return g_exact ? Weight{size, kCountOne} : sampleWeight(size);
}

void
account(uint32_t trace, uint64_t size, int sign) {
    Weight w = weightOf(size);
    Traceback& t = g_traces.value.traceback(trace);
    t.bytes += sign * static_cast<int64_t>(w.bytes);
    t.countFp += sign * w.countFp;
    t.records += sign;
    g_tracedBytes += sign * static_cast<int64_t>(w.bytes);
    g_tracedCountFp += sign * w.countFp;
}

// Under g_lock, tables live.
void
forget(void* ptr) {
    uint64_t size = 0;
    uint32_t trace = 0;
    if (!g_addresses.value.remove(reinterpret_cast<uintptr_t>(ptr), &size, &trace)) {
        return;
    }
    account(trace, size, -1);
    filterRemove(ptr);
}

void
remember(void* ptr, size_t size, const RawFrame* raw, int n) {
    // A stale entry for this address (its free fell in the window while the
    // hooks were being swapped in) is replaced, not double counted.
    if (maybeTraced(ptr)) {
        forget(ptr);
    }
    uint32_t trace = g_traces.value.intern(raw, n);
    if (!g_addresses.value.insert(reinterpret_cast<uintptr_t>(ptr), size, trace)) {
        return; // out of memory: this allocation goes untraced
    }
    account(trace, size, +1);
    filterAdd(ptr);
}

// The slow half of recording, out of line so the hooks keep only the
// sampling decision (a subtraction and a branch) inline.
__attribute__((noinline)) void
captureAndRemember(void* ptr, size_t size) {
    // Frames are captured before taking the lock: the walk only reads the
    // calling thread's own frames (it holds the GIL, or captureFrames is 0).
    RawFrame raw[MEMTAP_MAX_FRAMES];
    int n = g_capture ? captureFrames(raw, g_frames) : 0;
    pthread_mutex_lock(&g_lock);
    if (g_live) {
        remember(ptr, size, raw, n);
    }
    pthread_mutex_unlock(&g_lock);
}

inline void
record(ThreadState& t, void* ptr, size_t size) {
    if (g_exact || shouldSample(t, size)) {
        captureAndRemember(ptr, size);
    }
}

__attribute__((noinline)) void
forgetLocked(void* ptr) {
    pthread_mutex_lock(&g_lock);
    if (g_live) {
        forget(ptr);
    }
    pthread_mutex_unlock(&g_lock);
}

inline void
release(void* ptr) {
    if (maybeTraced(ptr)) {
        forgetLocked(ptr);
    }
}

// Under g_lock.
void
freeTables() {
    g_live = false;
    g_traces.value.reset();
    g_addresses.value.reset();
    g_tracedBytes = 0;
    g_tracedCountFp = 0;
    if (g_filter != nullptr) {
        // Anonymous memory: MADV_DONTNEED gives back the pages, zero-filled.
        madvise(g_filter, kFilterBytes, MADV_DONTNEED);
    }
}

} // namespace

bool
engineStart(const EngineConfig& config) noexcept {
    samplerConfigure(config.sampleBytes > 0 ? config.sampleBytes : 1);
    pthread_mutex_lock(&g_lock);
    freeTables();
    g_exact = config.mode == MEMTAP_MODE_EXACT;
    g_capture = config.captureFrames;
    g_frames = static_cast<int>(config.frames);
    if (g_filter == nullptr) {
        g_filter = static_cast<uint8_t*>(mapZeroed(kFilterBytes));
    }
    bool ok = g_filter != nullptr && g_traces.value.init() && g_addresses.value.init(kInitialAddresses);
    if (ok) {
        g_live = true;
    } else {
        freeTables();
    }
    pthread_mutex_unlock(&g_lock);
    if (ok) {
        g_allocationsSeen.store(0, std::memory_order_relaxed);
        g_recording.store(true, std::memory_order_release);
    }
    return ok;
}

void
engineStop() noexcept {
    g_recording.store(false, std::memory_order_release);
    pthread_mutex_lock(&g_lock);
    freeTables();
    pthread_mutex_unlock(&g_lock);
}

bool
engineRestartTraces() noexcept {
    pthread_mutex_lock(&g_lock);
    bool ok = false;
    if (g_live) {
        freeTables();
        ok = g_traces.value.init() && g_addresses.value.init(kInitialAddresses);
        if (ok) {
            g_live = true;
        } else {
            freeTables();
        }
    }
    pthread_mutex_unlock(&g_lock);
    return ok;
}

void
engineOnAlloc(ThreadState& t, void* ptr, size_t size) noexcept {
    countCall(t);
    record(t, ptr, size);
}

void
engineOnFree(ThreadState& t, void* ptr) noexcept {
    countCall(t);
    release(ptr);
}

void
engineOnRealloc(ThreadState& t, void* oldPtr, void* newPtr, size_t size) noexcept {
    // Tracked as free(old) + malloc(new); old may equal new (in place).
    countCall(t);
    if (oldPtr != nullptr) {
        release(oldPtr);
    }
    record(t, newPtr, size);
}

EngineTotals
engineTotals() noexcept {
    EngineTotals totals{};
    totals.allocationsSeen = g_allocationsSeen.load(std::memory_order_relaxed);
    pthread_mutex_lock(&g_lock);
    int64_t bytes = g_tracedBytes;
    int64_t countFp = g_tracedCountFp;
    pthread_mutex_unlock(&g_lock);
    totals.tracedBytes = bytes > 0 ? static_cast<uint64_t>(bytes) : 0;
    totals.tracedCount = countFp > 0 ? static_cast<uint64_t>((countFp + kCountOne / 2) / kCountOne) : 0;
    return totals;
}

size_t
engineTracebackCount() noexcept {
    pthread_mutex_lock(&g_lock);
    size_t n = g_live ? g_traces.value.tracebackCount() : 0;
    pthread_mutex_unlock(&g_lock);
    return n;
}

size_t
engineCopyTracebacks(SnapshotRow* rows, size_t capacity, EngineTotals* totals) noexcept {
    size_t n = 0;
    pthread_mutex_lock(&g_lock);
    if (g_live) {
        // The only work under the lock: one pass over the aggregates, which
        // the hooks keep up to date, so allocating threads wait little.
        Traces& traces = g_traces.value;
        size_t count = traces.tracebackCount();
        for (size_t i = 0; i < count && n < capacity; ++i) {
            const Traceback& t = traces.traceback(static_cast<uint32_t>(i));
            if (t.countFp > 0 || t.bytes > 0) {
                rows[n++] = SnapshotRow{t.bytes, t.countFp, t.frames, t.nframes, t.records};
            }
        }
    }
    int64_t bytes = g_tracedBytes;
    int64_t countFp = g_tracedCountFp;
    pthread_mutex_unlock(&g_lock);
    totals->allocationsSeen = g_allocationsSeen.load(std::memory_order_relaxed);
    totals->tracedBytes = bytes > 0 ? static_cast<uint64_t>(bytes) : 0;
    totals->tracedCount = countFp > 0 ? static_cast<uint64_t>((countFp + kCountOne / 2) / kCountOne) : 0;
    return n;
}

const InternedString&
engineString(uint32_t id) noexcept {
    return g_traces.value.string(id);
}

void
engineForkPrepare() noexcept {
    pthread_mutex_lock(&g_lock);
}

void
engineForkParent() noexcept {
    pthread_mutex_unlock(&g_lock);
}

void
engineForkChild() noexcept {
    // Only the forking thread exists in the child, and it took the lock in
    // prepare: nothing can be inside the tables, so they can go.
    g_recording.store(false, std::memory_order_relaxed);
    freeTables();
    g_lock = PTHREAD_MUTEX_INITIALIZER;
}

} // namespace memtap_agent
