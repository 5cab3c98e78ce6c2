#include "agent/engine.h"

#include <pthread.h>

namespace memtap_agent {

constinit std::atomic<bool> g_recording{false};

namespace {

// Allocator calls are counted per thread and added to the global counter in
// batches, so the common path has no atomic read-modify-write on a cache line
// shared by every allocating thread. Status may lag by kSeenBatch-1 calls per
// thread.
constexpr uint32_t kSeenBatch = 64;

constinit std::atomic<uint64_t> g_allocationsSeen{0};

// Protects the tables; taken by hooks only on the recording path.
constinit pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
// Tables are live (mapped); read and written under g_lock only.
constinit bool g_live = false;

inline void
countCall(ThreadState& t) {
    if (++t.pendingSeen >= kSeenBatch) {
        g_allocationsSeen.fetch_add(t.pendingSeen, std::memory_order_relaxed);
        t.pendingSeen = 0;
    }
}

} // namespace

bool
engineStart(const EngineConfig& config) noexcept {
    pthread_mutex_lock(&g_lock);
    g_live = true;
    pthread_mutex_unlock(&g_lock);
    g_allocationsSeen.store(0, std::memory_order_relaxed);
    g_recording.store(true, std::memory_order_release);
    return true;
}

void
engineStop() noexcept {
    g_recording.store(false, std::memory_order_release);
    pthread_mutex_lock(&g_lock);
    g_live = false;
    pthread_mutex_unlock(&g_lock);
}

void
engineOnAlloc(ThreadState& t, void* ptr, size_t size) noexcept {
    countCall(t);
}

void
engineOnFree(ThreadState& t, void* ptr) noexcept {
    countCall(t);
}

void
engineOnRealloc(ThreadState& t, void* oldPtr, void* newPtr, size_t size) noexcept {
    countCall(t);
}

EngineTotals
engineTotals() noexcept {
    EngineTotals totals{};
    totals.allocationsSeen = g_allocationsSeen.load(std::memory_order_relaxed);
    return totals;
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
    // Only the forking thread exists in the child; the lock was taken by it
    // in prepare, so re-initializing it is safe.
    g_recording.store(false, std::memory_order_relaxed);
    g_live = false;
    g_lock = PTHREAD_MUTEX_INITIALIZER;
}

} // namespace memtap_agent
