#include "agent/status.h"

#include "agent/agent_state.h"
#include "agent/engine.h"
#include "agent/hooks.h"
#include "agent/malloc_info.h"
#include "agent/mapping.h"
#include "agent/native_calls.h"
#include "agent/python_frames.h"
#include "agent/tracked_calls.h"

#include <time.h>

namespace memtap_agent {
namespace {

const char*
chainWord(DomainChain chain) {
    switch (chain) {
    case DomainChain::kLost:
        return "lost";
    case DomainChain::kWrapped:
        return "wrapped";
    case DomainChain::kUnsettled:
        return "unsettled";
    default:
        return nullptr;
    }
}

const char* const kDomainNames[kDomainCount] = {"raw", "mem", "obj"};

// "intact", or the worst state found and the domains in it, e.g.
// "lost:mem,obj" or "wrapped:raw,mem,obj" (protocol.h).
void
appendChain(Text& out, const HookChainReport& r) {
    const DomainChain order[] = {DomainChain::kLost, DomainChain::kUnsettled, DomainChain::kWrapped};
    for (DomainChain worst : order) {
        bool any = false;
        for (int d = 0; d < kDomainCount; ++d) {
            if (r.domains[d] != worst) {
                continue;
            }
            if (!any) {
                out.append(chainWord(worst));
            }
            out.append(any ? ',' : ':');
            out.append(kDomainNames[d]);
            any = true;
        }
        if (any) {
            return;
        }
    }
    out.append("intact");
}

void
appendDomains(Text& out, uint8_t mask) {
    bool any = false;
    for (int d = 0; d < kDomainCount; ++d) {
        if (mask & (1u << d)) {
            if (any) {
                out.append(',');
            }
            out.append(kDomainNames[d]);
            any = true;
        }
    }
    if (!any) {
        out.append("none");
    }
}

const char*
hooksWord(const HookChainReport& r) {
    if (!g_recording.load(std::memory_order_relaxed)) {
        return "passthrough";
    }
    for (DomainChain chain : r.domains) {
        if (chain == DomainChain::kLost) {
            return "lost";
        }
    }
    return "installed";
}

} // namespace

void
recordAttachMoment() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    g_agent.attachedAtUnixMs =
        static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
    g_agent.rssAtAttachBytes = ownRssBytes();
}

void
formatStatus(Text& out) noexcept {
    const memtap_start_args& args = g_agent.args;
    // Before the figures: a re-install restarts the traces.
    checkHookChain(g_agent.api);
    HookChainReport chain = hookChainReport();
    EngineTotals totals = engineTotals();
    appendKeyValue(out, "python", g_agent.api.version);
    appendKeyValue(out, "mode", args.mode == MEMTAP_MODE_EXACT ? "exact" : "sampled");
    appendKeyValue(out, "sample_bytes", args.sample_bytes);
    appendKeyValue(out, "frames", args.frames);
    appendKeyValue(out, "attached_at_unix_ms", g_agent.attachedAtUnixMs);
    appendKeyValue(out, "rss_at_attach_bytes", g_agent.rssAtAttachBytes);
    appendKeyValue(out, "allocations_seen", totals.allocationsSeen);
    appendKeyValue(out, "traced_bytes", totals.tracedBytes);
    appendKeyValue(out, "traced_count", totals.tracedCount);
    appendKeyValue(out, "traced_tracked_bytes", totals.trackedBytes);
    appendKeyValue(out, "traced_native_heap_bytes", totals.nativeHeapBytes);
    appendKeyValue(out, "traced_native_mmap_bytes", totals.nativeMappedBytes);
    EnginePeak peak = enginePeak();
    appendKeyValue(out, "peak_traced_bytes", peak.peakBytes);
    appendKeyValue(out, "peak_unix_ms", peak.peakUnixMs);
    appendKeyValue(out, "peak_breakdown_bytes", peak.capturedBytes);
    MallocFigures malloc = readMallocFigures();
    if (malloc.known) {
        appendKeyValue(out, "malloc_heap_bytes", malloc.heapBytes);
        appendKeyValue(out, "malloc_mmap_bytes", malloc.mmapBytes);
        appendKeyValue(out, "malloc_in_use_bytes", malloc.inUseBytes);
        appendKeyValue(out, "malloc_releasable_bytes", malloc.topBytes);
    }
    appendKeyValue(out, "malloc_free_bytes", malloc.freeBytes);
    appendKeyValue(out, "agent_bytes", agentMappedBytes());
    appendKeyValue(out, "hooks", hooksWord(chain));
    out.append("hook_chain ");
    appendChain(out, chain);
    out.append('\n');
    appendKeyValue(out, "hook_reinstalls", chain.reinstalls);
    appendKeyValue(out, "hook_reinstall_unix_ms", chain.lastReinstallMs);
    out.append("hook_reinstall_domains ");
    appendDomains(out, chain.lastReinstallMask);
    out.append('\n');
    // Modules loaded since the last tick are rewired before they are counted.
    NativeCallsReport native = nativeCallsReport();
    if (g_recording.load(std::memory_order_relaxed)) {
        rewireTrackedCalls(g_agent.api);
        if (native.enabled) {
            rewireNativeCalls(g_agent.api);
            native = nativeCallsReport();
        }
    }
    bool nativeAsked = (g_agent.args.features & MEMTAP_FEATURE_NATIVE) != 0;
    appendKeyValue(out, "native", native.enabled ? "yes" : nativeAsked ? "unavailable" : "no");
    if (native.enabled) {
        appendKeyValue(out, "native_call_slots", native.slots);
        appendKeyValue(out, "native_call_modules", native.names[0] != '\0' ? native.names : "none");
        appendKeyValue(out, "native_call_skipped", native.skipped);
        if (native.skipped > 0) {
            appendKeyValue(out, "native_call_skip_note", native.skippedWhy);
        }
    }
    TrackedCallsReport tracked = trackedCallsReport();
    appendKeyValue(out, "tracked_calls", tracked.available ? "rewired" : "unavailable");
    appendKeyValue(out, "tracked_call_slots", tracked.slots);
    appendKeyValue(out, "tracked_call_modules", tracked.names[0] != '\0' ? tracked.names : "none");
    appendKeyValue(out, "tracked_call_skipped", tracked.skipped);
    if (tracked.skipped > 0) {
        appendKeyValue(out, "tracked_call_skip_note", tracked.skippedWhy);
    }
    appendKeyValue(out, "tracked_untraced_calls", engineUntracedDomainCalls());
    appendKeyValue(out, "frame_capture", g_agent.framesOk ? "yes" : "no");
#if MEMTAP_AGENT_HAVE_FRAMES
    appendKeyValue(out, "frame_note", framesNote());
#endif
}

} // namespace memtap_agent
