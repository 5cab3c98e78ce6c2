#include "agent/pymalloc_read.h"

#include "agent/hooks.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

namespace memtap_agent {

namespace {

using DebugMallocStatsFn = int (*)(FILE*);
using GilCheckFn = int (*)();

constinit const PythonApi* g_api = nullptr;
constinit DebugMallocStatsFn g_debugMallocStats = nullptr;
constinit GilCheckFn g_gilCheck = nullptr;

enum class Result : uint8_t { kNone, kOk, kDisabled, kUnreadable };

// g_resultLock guards everything below; the hook holds it only to copy the
// figures in, the agent thread only to copy them out.
constinit pthread_mutex_t g_resultLock = PTHREAD_MUTEX_INITIALIZER;
constinit uint32_t g_requested = 0; // sequence number of the newest armed read
constinit uint32_t g_completed = 0; // sequence number of the last completed read
constinit uint64_t g_readUnixMs = 0;
constinit Result g_result = Result::kNone;
constinit PymallocFigures g_figures = {};

// Written only by the thread that claimed the armed read (one at a time:
// claiming clears its bit of g_hookGate). 3.6's output is the largest: 64 size
// classes of ~50 bytes each, plus ~1 KiB of totals.
constinit char g_text[32 * 1024] = {};

// "  1,469,054,976" -> 1469054976: printone() in Objects/obmalloc.c writes
// the value right-aligned with thousands separators after a '='.
uint64_t
valueAfterEquals(const char* eq, const char* end) {
    uint64_t v = 0;
    for (const char* p = eq + 1; p < end; ++p) {
        if (*p >= '0' && *p <= '9') {
            v = v * 10 + static_cast<uint64_t>(*p - '0');
        }
    }
    return v;
}

bool
labelIs(const char* line, const char* eq, const char* label) {
    size_t n = strlen(label);
    if (static_cast<size_t>(eq - line) < n || strncmp(line, label, n) != 0) {
        return false;
    }
    for (const char* p = line + n; p < eq; ++p) {
        if (*p != ' ') {
            return false;
        }
    }
    return true;
}

bool
labelHas(const char* line, const char* eq, const char* part) {
    size_t n = strlen(part);
    for (const char* p = line; p + n <= eq; ++p) {
        if (strncmp(p, part, n) == 0) {
            return true;
        }
    }
    return false;
}

uint64_t
wallClockMs() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

const char*
resultWord(Result r) {
    switch (r) {
    case Result::kOk:
        return "ok";
    case Result::kDisabled:
        return "disabled";
    case Result::kUnreadable:
        return "unreadable";
    default:
        return "none";
    }
}

struct ReadOutcome {
    Result result;
    PymallocFigures figures;
};

// Runs with the object domain unwrapped (hooks.h): CPython's stats function
// then finds pymalloc where it looks for it.
void
readStats(void* arg) {
    auto* outcome = static_cast<ReadOutcome*>(arg);
    FILE* f = fmemopen(g_text, sizeof(g_text) - 1, "w");
    if (f == nullptr) {
        return;
    }
    // Returns 0 without writing when pymalloc is not in use (PYTHONMALLOC=
    // malloc, or tracemalloc's hooks beneath ours).
    int used = g_debugMallocStats(f);
    long written = ftell(f);
    fclose(f);
    g_text[written > 0 && static_cast<size_t>(written) < sizeof(g_text) ? written : 0] = '\0';
    if (used == 0) {
        outcome->result = Result::kDisabled;
    } else if (parseDebugMallocStats(g_text, &outcome->figures)) {
        outcome->result = Result::kOk;
    }
}

} // namespace

bool
parseDebugMallocStats(const char* text, PymallocFigures* out) noexcept {
    *out = PymallocFigures{};
    bool any = false;
    uint64_t headers = 0, quantization = 0, alignment = 0;
    for (const char* line = text; *line != '\0';) {
        const char* end = strchr(line, '\n');
        if (end == nullptr) {
            end = line + strlen(line);
        }
        const char* eq = static_cast<const char*>(memchr(line, '=', static_cast<size_t>(end - line)));
        if (eq != nullptr) {
            uint64_t v = valueAfterEquals(eq, end);
            bool hit = true;
            if (labelIs(line, eq, "# arenas allocated current")) {
                out->arenas = v;
            } else if (labelHas(line, eq, " bytes/arena")) { // "N arenas * SIZE bytes/arena"
                out->arenaBytes = v;
            } else if (labelIs(line, eq, "# bytes in allocated blocks")) {
                out->allocatedBytes = v;
            } else if (labelIs(line, eq, "# bytes in available blocks")) {
                out->availableBytes = v;
            } else if (labelHas(line, eq, " unused pools * ")) { // "N unused pools * SIZE bytes"
                out->unusedPoolBytes = v;
            } else if (labelIs(line, eq, "# bytes lost to pool headers")) {
                headers = v;
            } else if (labelIs(line, eq, "# bytes lost to quantization")) {
                quantization = v;
            } else if (labelIs(line, eq, "# bytes lost to arena alignment")) {
                alignment = v;
            } else {
                hit = false;
            }
            any = any || hit;
        }
        line = *end == '\0' ? end : end + 1;
    }
    out->overheadBytes = headers + quantization + alignment;
    return any;
}

void
pymallocReadConfigure(const PythonApi& api) noexcept {
    g_api = &api;
    g_debugMallocStats = reinterpret_cast<DebugMallocStatsFn>(api.debugMallocStats);
    g_gilCheck = reinterpret_cast<GilCheckFn>(api.gilStateCheck);
}

void
pymallocReadDisarm() noexcept {
    lowerGate(kGilWorkPymalloc);
}

void
formatPymalloc(Text& out) noexcept {
    pthread_mutex_lock(&g_resultLock);
    if (g_debugMallocStats != nullptr &&
        (g_hookGate.load(std::memory_order_acquire) & kGilWorkPymalloc) == 0) {
        ++g_requested;
        raiseGate(kGilWorkPymalloc);
    }
    uint32_t requested = g_requested;
    uint32_t completed = g_completed;
    uint64_t readMs = g_readUnixMs;
    Result result = g_debugMallocStats == nullptr ? Result::kUnreadable : g_result;
    PymallocFigures f = g_figures;
    pthread_mutex_unlock(&g_resultLock);
    appendKeyValue(out, "pymalloc_requested", requested);
    appendKeyValue(out, "pymalloc_completed", completed);
    appendKeyValue(out, "pymalloc_read_unix_ms", readMs);
    out.append("pymalloc_result ");
    out.append(resultWord(result));
    out.append('\n');
    if (result == Result::kOk) {
        appendKeyValue(out, "pymalloc_arenas", f.arenas);
        appendKeyValue(out, "pymalloc_arena_bytes", f.arenaBytes);
        appendKeyValue(out, "pymalloc_allocated_bytes", f.allocatedBytes);
        appendKeyValue(out, "pymalloc_available_bytes", f.availableBytes);
        appendKeyValue(out, "pymalloc_unused_pool_bytes", f.unusedPoolBytes);
        appendKeyValue(out, "pymalloc_overhead_bytes", f.overheadBytes);
    }
}

void
pymallocForkPrepare() noexcept {
    pthread_mutex_lock(&g_resultLock);
}

void
pymallocForkParent() noexcept {
    pthread_mutex_unlock(&g_resultLock);
}

void
pymallocForkChild() noexcept {
    lowerGate(kGilWorkPymalloc);
    g_resultLock = PTHREAD_MUTEX_INITIALIZER;
}

__attribute__((noinline)) void
runArmedPymallocRead() noexcept {
    // A caller of PyMem_Malloc without the GIL (a buggy extension) must not
    // walk the arenas while the holder changes them: leave the read armed.
    if (g_gilCheck != nullptr && g_gilCheck() == 0) {
        return;
    }
    // Claim it: with the GIL held at most one thread is here, but a thread
    // of another interpreter (3.12+, own GIL) could be too.
    if (!claimGilWork(kGilWorkPymalloc)) {
        return;
    }
    ReadOutcome outcome{Result::kUnreadable, {}};
    if (!runWithObjectAllocatorUnwrapped(*g_api, readStats, &outcome)) {
        // The agent thread is checking the chains right now: next time.
        raiseGate(kGilWorkPymalloc);
        return;
    }
    Result result = outcome.result;
    PymallocFigures figures = outcome.figures;
    uint64_t now = wallClockMs();
    pthread_mutex_lock(&g_resultLock);
    g_completed = g_requested;
    g_readUnixMs = now;
    g_result = result;
    g_figures = figures;
    pthread_mutex_unlock(&g_resultLock);
}

} // namespace memtap_agent
