#include "agent/tracked_calls.h"

#include "agent/engine.h"
#include "agent/got_rewire.h"
#include "agent/thread_state.h"

#include <cstring>

namespace memtap_agent {
namespace {

using TrackFn = int (*)(unsigned int, unsigned long, size_t);
using UntrackFn = int (*)(unsigned int, unsigned long);

// Written by the agent thread before any slot points at a hook, never again.
constinit TrackFn g_realTrack = nullptr;
constinit UntrackFn g_realUntrack = nullptr;

int
trackHook(unsigned int domain, unsigned long ptr, size_t size) {
    ThreadState& t = g_thread;
    if (isBusy(t) || !g_recording.load(std::memory_order_relaxed)) {
        return g_realTrack(domain, ptr, size);
    }
    // busy covers the real call too: a running tracemalloc allocates its
    // trace through the raw domain, which must not be counted again.
    setBusy(t);
    int rc = g_realTrack(domain, ptr, size);
    engineOnTracked(t, domain, ptr, size);
    clearBusy(t);
    return rc;
}

int
untrackHook(unsigned int domain, unsigned long ptr) {
    ThreadState& t = g_thread;
    if (isBusy(t) || !g_recording.load(std::memory_order_relaxed)) {
        return g_realUntrack(domain, ptr);
    }
    setBusy(t);
    int rc = g_realUntrack(domain, ptr);
    engineOnUntracked(t, domain, ptr);
    clearBusy(t);
    return rc;
}

constinit GotRewirer g_rewirer;
constinit const PythonApi* g_api = nullptr;

bool
wantEveryModule(const dl_phdr_info*, void*) {
    return true;
}

uintptr_t
chooseTrackHooks(const char* symbol, uint32_t, void*) {
    if (std::strcmp(symbol, g_api->traceMallocTrackName) == 0) {
        return reinterpret_cast<uintptr_t>(&trackHook);
    }
    if (std::strcmp(symbol, g_api->traceMallocUntrackName) == 0) {
        return reinterpret_cast<uintptr_t>(&untrackHook);
    }
    return 0;
}

} // namespace

void
rewireTrackedCalls(const PythonApi& api) noexcept {
    if (api.traceMallocTrack == nullptr) {
        return;
    }
    g_realTrack = api.traceMallocTrack;
    g_realUntrack = api.traceMallocUntrack;
    g_api = &api;
    g_rewirer.rewire(wantEveryModule, chooseTrackHooks, nullptr);
}

uint32_t
restoreTrackedCalls() noexcept {
    return g_rewirer.restore();
}

TrackedCallsReport
trackedCallsReport() noexcept {
    TrackedCallsReport report{};
    report.available = g_api != nullptr && g_api->traceMallocTrack != nullptr;
    report.slots = g_rewirer.slots();
    report.skipped = g_rewirer.skipped();
    report.names = g_rewirer.moduleNames();
    report.skippedWhy = g_rewirer.skipNote();
    return report;
}

} // namespace memtap_agent
