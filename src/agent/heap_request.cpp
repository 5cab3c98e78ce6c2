#include "agent/heap_request.h"

#include "agent/gil_work.h"
#include "agent/heap_walk.h"
#include "agent/pymalloc_read.h"
#include "agent/thread_state.h"

#include <atomic>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

namespace memtap_agent {

namespace {

using GilCheckFn = int (*)();

enum class State : uint8_t { kNone, kArmed, kRunning, kDone, kCancelled };

constinit const PythonApi* g_api = nullptr;
constinit GilCheckFn g_gilCheck = nullptr;
// Set by a cancel or a detach; the running walk polls it.
constinit std::atomic<uint32_t> g_cancel{0};

// g_lock guards everything below. The walking thread holds it only to
// claim the request and to hand over its result, never while it walks.
constinit pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
constinit uint32_t g_sequence = 0; // of the newest request
constinit State g_state = State::kNone;
constinit HeapWalkRequest g_request = {};
constinit uint64_t g_armedUnixMs = 0;
constinit uint64_t g_startedUnixMs = 0;
constinit int32_t g_walkerTid = 0;
// The result of request g_sequence once kDone. Never destroyed: other
// threads may still be inside a hook while the process exits.
union ResultStorage {
    constexpr ResultStorage() : text() {}
    ~ResultStorage() {}
    MappedText text;
};
constinit ResultStorage g_resultStorage;
MappedText& g_result = g_resultStorage.text;

struct LockGuard {
    LockGuard() { pthread_mutex_lock(&g_lock); }
    ~LockGuard() { pthread_mutex_unlock(&g_lock); }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;
};

uint64_t
wallClockMs() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

const char*
stateWord(State s) {
    switch (s) {
    case State::kArmed:
        return "armed";
    case State::kRunning:
        return "running";
    case State::kDone:
        return "done";
    case State::kCancelled:
        return "cancelled";
    default:
        return "none";
    }
}

// "123 " -> 123, advancing *p past the number and one space. False if no digits.
bool
parseNumber(const char** p, uint64_t* out) {
    const char* s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9') {
        return false;
    }
    while (*s >= '0' && *s <= '9' && v < (uint64_t{1} << 40)) {
        v = v * 10 + static_cast<uint64_t>(*s++ - '0');
    }
    if (*s == ' ') {
        ++s;
    } else if (*s != '\0') {
        return false;
    }
    *p = s;
    *out = v;
    return true;
}

// "types MAX" or "refs MAX TOP LINE FILE" (FILE to the end of the line).
const char*
parseRequest(const char* args, HeapWalkRequest* r) {
    *r = HeapWalkRequest{};
    uint64_t max = 0;
    if (strncmp(args, "types ", 6) == 0) {
        const char* p = args + 6;
        if (!parseNumber(&p, &max) || *p != '\0') {
            return "bad heap-walk arguments: want \"types MAX\"";
        }
        r->kind = HeapWalkKind::kTypes;
    } else if (strncmp(args, "refs ", 5) == 0) {
        const char* p = args + 5;
        uint64_t top = 0;
        uint64_t line = 0;
        if (!parseNumber(&p, &max) || !parseNumber(&p, &top) || !parseNumber(&p, &line) || *p == '\0' ||
            strlen(p) >= sizeof(r->file) || line > INT32_MAX) {
            return "bad heap-walk arguments: want \"refs MAX TOP LINE FILE\"";
        }
        r->kind = HeapWalkKind::kRefs;
        r->topChains = static_cast<uint32_t>(top);
        r->line = static_cast<int>(line);
        memcpy(r->file, p, strlen(p) + 1);
    } else {
        return "bad heap-walk arguments: want \"types ...\" or \"refs ...\"";
    }
    if (max == 0 || max > UINT32_MAX - 1) {
        return "bad heap-walk arguments: MAX must be 1..4294967294";
    }
    r->maxObjects = static_cast<uint32_t>(max);
    return nullptr;
}

} // namespace

void
heapRequestConfigure(const PythonApi& api) noexcept {
    g_api = &api;
    g_gilCheck = reinterpret_cast<GilCheckFn>(api.gilStateCheck);
}

const char*
armHeapWalk(const char* args, Text& out) noexcept {
    HeapWalkRequest request;
    if (const char* bad = parseRequest(args, &request)) {
        return bad;
    }
    if (g_api == nullptr || g_api->heap.dictNext == nullptr) {
        return "this interpreter lacks a C-API function the heap walk needs";
    }
    LockGuard lock;
    if (g_state == State::kArmed || g_state == State::kRunning) {
        return "busy: another heap walk is armed or running; try again when it is done";
    }
    ++g_sequence;
    g_request = request;
    g_state = State::kArmed;
    g_armedUnixMs = wallClockMs();
    g_startedUnixMs = 0;
    g_walkerTid = 0;
    g_result.reset();
    g_cancel.store(0, std::memory_order_relaxed);
    raiseGate(kGilWorkHeapWalk);
    appendKeyValue(out, "heap_walk_requested", g_sequence);
    return nullptr;
}

void
formatHeapWalkResult(Text& out) noexcept {
    LockGuard lock;
    appendKeyValue(out, "heap_walk_requested", g_sequence);
    appendKeyValue(out, "heap_walk_state", stateWord(g_state));
    appendKeyValue(out, "heap_walk_armed_unix_ms", g_armedUnixMs);
    appendKeyValue(out, "heap_walk_started_unix_ms", g_startedUnixMs);
    appendKeyValue(out, "heap_walk_thread", static_cast<uint64_t>(g_walkerTid > 0 ? g_walkerTid : 0));
    if (g_state == State::kDone) {
        out.append(g_result.data(), g_result.size());
    }
}

void
cancelHeapWalk() noexcept {
    lowerGate(kGilWorkHeapWalk);
    g_cancel.store(1, std::memory_order_release);
    LockGuard lock;
    if (g_state == State::kArmed) {
        g_state = State::kCancelled;
    }
    g_result.reset();
}

void
heapRequestForkPrepare() noexcept {
    pthread_mutex_lock(&g_lock);
}

void
heapRequestForkParent() noexcept {
    pthread_mutex_unlock(&g_lock);
}

void
heapRequestForkChild() noexcept {
    // The child has no agent thread to read a result or cancel a walk.
    lowerGate(kGilWorkHeapWalk);
    g_state = State::kNone;
    g_lock = PTHREAD_MUTEX_INITIALIZER;
}

__attribute__((noinline)) void
runArmedHeapWalk() noexcept {
    // A caller of PyMem_Malloc without the GIL (a buggy extension) must not
    // walk objects the holder may be changing: leave the walk armed.
    if (g_gilCheck != nullptr && g_gilCheck() == 0) {
        return;
    }
    if (pythonIsFinalizing(*g_api) || !claimGilWork(kGilWorkHeapWalk)) {
        return;
    }
    HeapWalkRequest request;
    uint32_t sequence;
    {
        LockGuard lock;
        if (g_state != State::kArmed) {
            return; // cancelled between the claim and here
        }
        g_state = State::kRunning;
        g_startedUnixMs = wallClockMs();
        g_walkerTid = static_cast<int32_t>(gettid());
        request = g_request;
        sequence = g_sequence;
    }
    MappedText result;
    runHeapWalk(*g_api, request, g_cancel, result);
    LockGuard lock;
    if (g_sequence != sequence) {
        return;
    }
    bool cancelled = g_cancel.load(std::memory_order_acquire) != 0;
    g_state = cancelled ? State::kCancelled : State::kDone;
    if (!cancelled) {
        g_result = static_cast<MappedText&&>(result);
    }
}

void
runGilWork(bool heapWalkAllowed) noexcept {
    uint32_t work = g_hookGate.load(std::memory_order_acquire);
    if (work & kGilWorkPymalloc) {
        runArmedPymallocRead();
    }
    if (heapWalkAllowed && (work & kGilWorkHeapWalk)) {
        runArmedHeapWalk();
    }
}

} // namespace memtap_agent
