#include "agent/engine.h"

#include "agent/free_filter.h"
#include "agent/futex_lock.h"
#include "agent/gil_work.h"
#include "agent/native_calls.h"

#include "agent/protocol.h"
#include "agent/python_frames.h"
#include "agent/sampler.h"
#include "agent/tables.h"
#include "agent/traces.h"

#include <cstring>
#include <time.h>
#include <unistd.h>

namespace memtap_agent {

constinit std::atomic<bool> g_recording{false};

namespace {

constexpr size_t kInitialAddresses = 1 << 16;

// The free-side filter (free_filter.h) is mapped with the tables and kept
// across attaches, like them cleared by freeTables().

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
constinit FutexLock g_lock;
constinit bool g_live = false; // tables mapped
constinit bool g_exact = false;
constinit bool g_capture = false;
constinit int g_frames = 1;
constinit NoDestroy<Traces> g_traces;
constinit NoDestroy<AddressTable> g_addresses;
constinit int64_t g_tracedBytes = 0;
// Traced bytes by where the block came from (the key's slot: 0 PyMem, 1
// native heap, 2 native mappings, 3 and up tracked domains), for the RSS
// breakdown.
constinit int64_t g_kindBytes[4] = {};
constinit int64_t g_tracedCountFp = 0;

// Peak. g_peakBytes is the high-water mark of g_tracedBytes since the tables
// were (re)started or the peak was reset, updated on every traced change: a
// compare in account(), which only traced allocations reach (in sampled mode
// one per sample), never on the hooks' inline path. The per-traceback
// breakdown at the peak (Traceback::peakBytes/peakCountFp, "the peak table")
// is copied from the live aggregates only when a new peak is reached after
// more than peakMargin() bytes of traced churn (allocated plus freed) since
// the last copy. Accuracy: between the last copy and the true peak at most
// m = peakMargin() bytes were allocated or freed (else the peak itself would
// have been copied), so the table's sites differ from the true breakdown by
// at most m in total, |peak-time bytes - copied bytes| summed over all
// sites <= max(peak/64, floor). A site holding a share s of the peak is shown
// with at least (s - 1/64)/s of its size: >= 80% once s >= 8%, ~98% for a
// burst that dominates the peak. A copy costs one pass over the tracebacks;
// growth from B to 2B makes at most ~45 copies (1.0156^45 = 2), and a
// workload whose traced total does not make new highs makes none.
constexpr int64_t kPeakFloorBytes = int64_t{1} << 20;
constinit int64_t g_peakBytes = 0;
constinit uint64_t g_peakUnixMs = 0;             // CLOCK_REALTIME_COARSE of the last new high
constinit int64_t g_peakFloor = kPeakFloorBytes; // at least a few samples in sampled mode
constinit int64_t g_capturedBytes = 0;           // g_tracedBytes at the last copy
constinit int64_t g_capturedCountFp = 0;
constinit uint64_t g_capturedUnixMs = 0;
constinit uint64_t g_churnSinceCapture = 0;

// The fast path counts its calls in t.calls too (hooks.cpp skipsEngine);
// they reach the global counter here, on the thread's next recorded call.
inline void
countCall(ThreadState& t) {
    uint64_t calls = ++t.calls;
    if (calls >= kSeenBatch) {
        g_allocationsSeen.fetch_add(calls, std::memory_order_relaxed);
        t.calls = 0;
    }
}

Weight
weightOf(uint64_t size) {
    return g_exact ? Weight{size, kCountOne} : sampleWeight(size);
}

uint64_t
coarseUnixMs() {
    // The coarse clock is a vDSO read of the last tick (no syscall): enough
    // for a millisecond figure a person reads.
    timespec ts{};
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

// Under g_lock, tables live: the peak table becomes the live aggregates.
void
capturePeak() {
    Traces& traces = g_traces.value;
    size_t count = traces.tracebackCount();
    for (size_t i = 0; i < count; ++i) {
        Traceback& t = traces.traceback(static_cast<uint32_t>(i));
        t.peakBytes = t.bytes;
        t.peakCountFp = t.countFp;
        t.peakRecords = t.records;
    }
    g_capturedBytes = g_tracedBytes;
    g_capturedCountFp = g_tracedCountFp;
    g_capturedUnixMs = g_peakUnixMs;
    g_churnSinceCapture = 0;
}

int64_t
peakMargin() {
    int64_t relative = g_capturedBytes / 64;
    return relative > g_peakFloor ? relative : g_peakFloor;
}

// Under g_lock.
void
resetPeakState() {
    g_peakBytes = 0;
    g_peakUnixMs = 0;
    g_capturedBytes = 0;
    g_capturedCountFp = 0;
    g_capturedUnixMs = 0;
    g_churnSinceCapture = 0;
}

inline int
kindOf(const void* key) {
    uint64_t slot = reinterpret_cast<uintptr_t>(key) >> 48;
    return slot < 3 ? static_cast<int>(slot) : 3;
}

void
account(const void* key, uint32_t trace, uint64_t size, int sign) {
    Weight w = weightOf(size);
    g_kindBytes[kindOf(key)] += sign * static_cast<int64_t>(w.bytes);
    Traceback& t = g_traces.value.traceback(trace);
    t.bytes += sign * static_cast<int64_t>(w.bytes);
    t.countFp += sign * w.countFp;
    t.records += sign;
    g_tracedBytes += sign * static_cast<int64_t>(w.bytes);
    g_tracedCountFp += sign * w.countFp;
    g_churnSinceCapture += w.bytes;
    if (g_tracedBytes > g_peakBytes) {
        g_peakBytes = g_tracedBytes;
        g_peakUnixMs = coarseUnixMs();
        if (g_churnSinceCapture > static_cast<uint64_t>(peakMargin())) {
            capturePeak();
        }
    }
}

// Under g_lock, tables live.
void
forget(void* ptr) {
    uint64_t size = 0;
    uint32_t trace = 0;
    if (!g_addresses.value.remove(reinterpret_cast<uintptr_t>(ptr), &size, &trace)) {
        return;
    }
    account(ptr, trace, size, -1);
    filterRemove(ptr);
}

void
remember(void* ptr, size_t size, const RawFrame* raw, int n, uint32_t tid, uint32_t domain) {
    // A stale entry for this address (its free fell in the window while the
    // hooks were being swapped in) is replaced, not double counted.
    if (filterMayContain(ptr)) {
        forget(ptr);
    }
    uint32_t trace = g_traces.value.intern(raw, n, tid, domain);
    if (!g_addresses.value.insert(reinterpret_cast<uintptr_t>(ptr), size, trace)) {
        return; // out of memory: this allocation goes untraced
    }
    account(ptr, trace, size, +1);
    filterAdd(ptr);
}

// The slow half of recording, out of line so the hooks keep only the
// sampling decision (a subtraction and a branch) inline.
__attribute__((noinline)) void
captureAndRemember(void* ptr, size_t size, uint32_t domain) {
    // The thread id is cached on this, the traced path, so the unsampled
    // path stays as it was and each thread pays one syscall.
    ThreadState& t = g_thread;
    if (t.tid == 0) {
        t.tid = static_cast<int32_t>(gettid());
    }
    // Frames are captured before taking the lock: the walk only reads the
    // calling thread's own frames (it holds the GIL, or captureFrames is 0).
    RawFrame raw[MEMTAP_MAX_FRAMES];
    int n = g_capture ? captureFrames(raw, g_frames) : 0;
    g_lock.lock();
    if (g_live) {
        remember(ptr, size, raw, n, static_cast<uint32_t>(t.tid), domain);
    }
    g_lock.unlock();
}

inline void
record(ThreadState& t, void* ptr, size_t size, uint32_t domain = 0) {
    if (g_exact || shouldSample(t, size)) {
        captureAndRemember(ptr, size, domain);
    }
}

// Blocks outside PyMem are keyed by their address with a slot number in
// bits 48-52, above every user-space address (x86-64: 47 bits), so the same
// address in two domains is two blocks, as in tracemalloc. Slot 1: native
// heap blocks (--native), 2: native mappings, then the tracked domains:
// slot kFirstTrackedSlot + i holds domain value + 1 in g_domainSlots[i]
// (0: free), claimed once and kept for the life of the process, read
// without a lock.
constexpr uint64_t kNativeHeapSlot = 1;
constexpr uint64_t kNativeMapSlot = 2;
constexpr uint64_t kFirstTrackedSlot = 3;
constinit std::atomic<uint64_t> g_domainSlots[kTrackedDomains] = {};
constinit std::atomic<uint64_t> g_untracedDomainCalls{0};

// 0 when the domain has no slot (and add is false, or all are taken).
uint64_t
domainSlot(unsigned int domain, bool add) {
    uint64_t want = uint64_t{domain} + 1;
    for (uint32_t i = 0; i < kTrackedDomains; ++i) {
        uint64_t seen = g_domainSlots[i].load(std::memory_order_acquire);
        if (seen == 0 && add &&
            g_domainSlots[i].compare_exchange_strong(seen, want, std::memory_order_acq_rel)) {
            return kFirstTrackedSlot + i;
        }
        if (seen == want) {
            return kFirstTrackedSlot + i;
        }
    }
    return 0;
}

inline void*
trackedKey(uint64_t slot, uintptr_t ptr) {
    return reinterpret_cast<void*>(ptr | slot << 48);
}

__attribute__((noinline)) void
forgetLocked(void* ptr) {
    g_lock.lock();
    if (g_live) {
        forget(ptr);
    }
    g_lock.unlock();
}

inline void
release(void* ptr) {
    if (filterMayContain(ptr)) {
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
    for (int64_t& bytes : g_kindBytes) {
        bytes = 0;
    }
    g_tracedCountFp = 0;
    resetPeakState();
    filterClear();
}

} // namespace

bool
engineStart(const EngineConfig& config) noexcept {
    samplerConfigure(config.sampleBytes > 0 ? config.sampleBytes : 1);
    g_lock.lock();
    freeTables();
    g_exact = config.mode == MEMTAP_MODE_EXACT;
    g_capture = config.captureFrames;
    g_frames = static_cast<int>(config.frames);
    // A copy of the peak table every few samples at most: below that the
    // breakdown would move by single samples anyway.
    g_peakFloor = kPeakFloorBytes;
    if (!g_exact && config.sampleBytes > 0 && config.sampleBytes < (uint64_t{1} << 40) &&
        static_cast<int64_t>(config.sampleBytes * 8) > g_peakFloor) {
        g_peakFloor = static_cast<int64_t>(config.sampleBytes * 8);
    }
    bool ok = filterMapOnce() && g_traces.value.init() && g_addresses.value.init(kInitialAddresses);
    if (ok) {
        g_live = true;
    } else {
        freeTables();
    }
    g_lock.unlock();
    if (ok) {
        g_allocationsSeen.store(0, std::memory_order_relaxed);
        g_recording.store(true, std::memory_order_release);
        if (!g_exact) {
            raiseGate(kGateFastPath);
        }
    }
    return ok;
}

void
engineStop() noexcept {
    lowerGate(kGateFastPath);
    g_recording.store(false, std::memory_order_release);
    g_lock.lock();
    freeTables();
    g_lock.unlock();
}

bool
engineRestartTraces() noexcept {
    g_lock.lock();
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
    g_lock.unlock();
    return ok;
}

void
engineOnAlloc(ThreadState& t, void* ptr, size_t size) noexcept {
    countCall(t);
    record(t, ptr, size);
}

void
engineOnFree(ThreadState&, void* ptr) noexcept {
    release(ptr); // frees are not counted: allocations_seen counts allocations
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

void
engineOnTracked(ThreadState& t, unsigned int domain, uintptr_t ptr, size_t size) noexcept {
    countCall(t);
    uint64_t slot = domainSlot(domain, true);
    if (slot == 0 || ptr >> 48 != 0) {
        g_untracedDomainCalls.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // With --native the block's malloc by the reporting module (numpy's
    // own) was recorded as native: the domain names it better, and the
    // bytes must not count twice.
    release(trackedKey(kNativeHeapSlot, ptr));
    // A block tracked again without an untrack first replaces its old entry
    // (remember), as PyTraceMalloc_Track does.
    record(t, trackedKey(slot, ptr), size, domain);
}

void
engineOnUntracked(ThreadState&, unsigned int domain, uintptr_t ptr) noexcept {
    uint64_t slot = domainSlot(domain, false);
    if (slot != 0 && ptr >> 48 == 0) {
        release(trackedKey(slot, ptr));
    }
}

void
engineOnNativeAlloc(ThreadState& t, uint32_t module, void* ptr, size_t size, bool mapped) noexcept {
    countCall(t);
    auto address = reinterpret_cast<uintptr_t>(ptr);
    if (address >> 48 == 0) {
        record(t, trackedKey(mapped ? kNativeMapSlot : kNativeHeapSlot, address), size,
               kNativeDomainBase + module);
    }
}

void
engineOnNativeFree(ThreadState&, void* ptr, bool mapped) noexcept {
    auto address = reinterpret_cast<uintptr_t>(ptr);
    if (address >> 48 == 0) {
        release(trackedKey(mapped ? kNativeMapSlot : kNativeHeapSlot, address));
    }
}

uint64_t
engineUntracedDomainCalls() noexcept {
    return g_untracedDomainCalls.load(std::memory_order_relaxed);
}

EngineTotals
engineTotals() noexcept {
    EngineTotals totals{};
    totals.allocationsSeen = g_allocationsSeen.load(std::memory_order_relaxed);
    g_lock.lock();
    int64_t bytes = g_tracedBytes;
    int64_t countFp = g_tracedCountFp;
    auto positive = [](int64_t v) { return v > 0 ? static_cast<uint64_t>(v) : uint64_t{0}; };
    totals.nativeHeapBytes = positive(g_kindBytes[1]);
    totals.nativeMappedBytes = positive(g_kindBytes[2]);
    totals.trackedBytes = positive(g_kindBytes[3]);
    g_lock.unlock();
    totals.tracedBytes = bytes > 0 ? static_cast<uint64_t>(bytes) : 0;
    totals.tracedCount = countFp > 0 ? static_cast<uint64_t>((countFp + kCountOne / 2) / kCountOne) : 0;
    return totals;
}

EnginePeak
enginePeak() noexcept {
    g_lock.lock();
    EnginePeak peak{};
    peak.peakBytes = g_peakBytes > 0 ? static_cast<uint64_t>(g_peakBytes) : 0;
    peak.peakUnixMs = g_peakUnixMs;
    peak.capturedBytes = g_capturedBytes > 0 ? static_cast<uint64_t>(g_capturedBytes) : 0;
    peak.capturedUnixMs = g_capturedUnixMs;
    g_lock.unlock();
    return peak;
}

void
engineResetPeak() noexcept {
    g_lock.lock();
    if (g_live) {
        g_peakBytes = g_tracedBytes;
        g_peakUnixMs = coarseUnixMs();
        capturePeak();
    }
    g_lock.unlock();
}

size_t
engineTracebackCount() noexcept {
    g_lock.lock();
    size_t n = g_live ? g_traces.value.tracebackCount() : 0;
    g_lock.unlock();
    return n;
}

size_t
engineCopyTracebacks(SnapshotRow* rows, size_t capacity, EngineTotals* totals,
                     SnapshotKind kind) noexcept {
    size_t n = 0;
    bool peak = kind == SnapshotKind::kPeak;
    g_lock.lock();
    if (g_live) {
        // The only work under the lock: one pass over the aggregates, which
        // the hooks keep up to date, so allocating threads wait little.
        Traces& traces = g_traces.value;
        size_t count = traces.tracebackCount();
        for (size_t i = 0; i < count && n < capacity; ++i) {
            const Traceback& t = traces.traceback(static_cast<uint32_t>(i));
            int64_t bytes = peak ? t.peakBytes : t.bytes;
            int64_t countFp = peak ? t.peakCountFp : t.countFp;
            int64_t records = peak ? t.peakRecords : t.records;
            if (countFp > 0 || bytes > 0) {
                rows[n++] = SnapshotRow{bytes, countFp, t.frames, t.nframes, t.tid, t.domain, records};
            }
        }
    }
    int64_t bytes = peak ? g_capturedBytes : g_tracedBytes;
    int64_t countFp = peak ? g_capturedCountFp : g_tracedCountFp;
    g_lock.unlock();
    totals->allocationsSeen = g_allocationsSeen.load(std::memory_order_relaxed);
    totals->tracedBytes = bytes > 0 ? static_cast<uint64_t>(bytes) : 0;
    totals->tracedCount = countFp > 0 ? static_cast<uint64_t>((countFp + kCountOne / 2) / kCountOne) : 0;
    return n;
}

bool
engineFindBlock(const void* ptr, uint64_t* size, uint32_t* trace) noexcept {
    if (g_filter == nullptr || !filterMayContain(ptr)) {
        return false;
    }
    g_lock.lock();
    bool found = g_live && g_addresses.value.find(reinterpret_cast<uintptr_t>(ptr), size, trace);
    g_lock.unlock();
    return found;
}

namespace {

bool
fileMatches(const InternedString& frameFile, const char* file, size_t n) {
    if (frameFile.length < n || std::memcmp(frameFile.text + frameFile.length - n, file, n) != 0) {
        return false;
    }
    return frameFile.length == n || frameFile.text[frameFile.length - n - 1] == '/';
}

} // namespace

size_t
engineMarkSite(const char* file, int line, uint8_t* marks, size_t cap, int64_t* records,
               int64_t* bytes) noexcept {
    size_t n = std::strlen(file);
    size_t matched = 0;
    g_lock.lock();
    if (g_live) {
        Traces& traces = g_traces.value;
        size_t count = traces.tracebackCount();
        for (size_t i = 0; i < count && i < cap; ++i) {
            const Traceback& t = traces.traceback(static_cast<uint32_t>(i));
            if (t.nframes == 0 || t.domain != 0 || t.frames[0].line != line ||
                !fileMatches(traces.string(t.frames[0].file), file, n)) {
                continue;
            }
            marks[i] = 1;
            *records += t.records;
            *bytes += t.bytes;
            ++matched;
        }
    }
    g_lock.unlock();
    return matched;
}

bool
engineTopFrame(uint32_t trace, char* file, size_t cap, int* line) noexcept {
    bool found = false;
    g_lock.lock();
    if (g_live && trace < g_traces.value.tracebackCount() && cap > 0) {
        const Traceback& t = g_traces.value.traceback(trace);
        if (t.nframes != 0) {
            const InternedString& name = g_traces.value.string(t.frames[0].file);
            size_t n = name.length < cap - 1 ? name.length : cap - 1;
            std::memcpy(file, name.text, n);
            file[n] = '\0';
            *line = t.frames[0].line;
            found = true;
        }
    }
    g_lock.unlock();
    return found;
}

const InternedString&
engineString(uint32_t id) noexcept {
    return g_traces.value.string(id);
}

void
engineForkPrepare() noexcept {
    g_lock.lock();
}

void
engineForkParent() noexcept {
    g_lock.unlock();
}

void
engineForkChild() noexcept {
    // Only the forking thread exists in the child, and it took the lock in
    // prepare: nothing can be inside the tables, so they can go.
    lowerGate(kGateFastPath);
    g_recording.store(false, std::memory_order_relaxed);
    // The forking thread carries on in the child under another id (the
    // child's pid): a later attach to the child must not see the parent's.
    g_thread.tid = 0;
    freeTables();
    g_lock.resetInChild();
}

} // namespace memtap_agent
