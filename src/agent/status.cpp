#include "agent/status.h"

#include "agent/agent_state.h"
#include "agent/engine.h"
#include "agent/hooks.h"
#include "agent/mapping.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

namespace memtap_agent {
namespace {

// glibc's struct mallinfo2 (malloc.h, glibc >= 2.33) and the older struct
// mallinfo with int members. Declared here and resolved with dlsym so the
// agent loads on any glibc and the call never needs a newer symbol version.
struct MallInfo2 {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct MallInfo {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

// fordblks: total free bytes held in malloc's arenas (fast bins included).
uint64_t
mallocFreeBytes() {
    using Info2Fn = MallInfo2 (*)();
    using InfoFn = MallInfo (*)();
    if (auto fn = reinterpret_cast<Info2Fn>(dlsym(RTLD_DEFAULT, "mallinfo2"))) {
        return fn().fordblks;
    }
    if (auto fn = reinterpret_cast<InfoFn>(dlsym(RTLD_DEFAULT, "mallinfo"))) {
        // The int members wrap past 2 GiB; reading them as unsigned is the
        // best the old interface offers.
        return static_cast<unsigned>(fn().fordblks);
    }
    return 0;
}

void
line(Text& out, const char* key, const char* value) {
    out.append(key);
    out.append(' ');
    out.append(value);
    out.append('\n');
}

void
line(Text& out, const char* key, uint64_t value) {
    out.append(key);
    out.append(' ');
    out.appendU64(value);
    out.append('\n');
}

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

// Resident pages of this process: the second field of /proc/self/statm.
// Read with plain syscalls into a stack buffer (no allocation).
uint64_t
ownRssBytes() {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char buf[128];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    const char* p = buf;
    while (*p != '\0' && *p != ' ') {
        ++p;
    }
    uint64_t pages = 0;
    for (++p; *p >= '0' && *p <= '9'; ++p) {
        pages = pages * 10 + static_cast<uint64_t>(*p - '0');
    }
    long pageSize = sysconf(_SC_PAGESIZE);
    return pages * static_cast<uint64_t>(pageSize > 0 ? pageSize : 4096);
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
    line(out, "python", g_agent.api.version);
    line(out, "mode", args.mode == MEMTAP_MODE_EXACT ? "exact" : "sampled");
    line(out, "sample_bytes", args.sample_bytes);
    line(out, "frames", args.frames);
    line(out, "attached_at_unix_ms", g_agent.attachedAtUnixMs);
    line(out, "rss_at_attach_bytes", g_agent.rssAtAttachBytes);
    line(out, "allocations_seen", totals.allocationsSeen);
    line(out, "traced_bytes", totals.tracedBytes);
    line(out, "traced_count", totals.tracedCount);
    EnginePeak peak = enginePeak();
    line(out, "peak_traced_bytes", peak.peakBytes);
    line(out, "peak_unix_ms", peak.peakUnixMs);
    line(out, "peak_breakdown_bytes", peak.capturedBytes);
    line(out, "malloc_free_bytes", mallocFreeBytes());
    line(out, "agent_bytes", agentMappedBytes());
    line(out, "hooks", hooksWord(chain));
    out.append("hook_chain ");
    appendChain(out, chain);
    out.append('\n');
    line(out, "hook_reinstalls", chain.reinstalls);
    line(out, "hook_reinstall_unix_ms", chain.lastReinstallMs);
    out.append("hook_reinstall_domains ");
    appendDomains(out, chain.lastReinstallMask);
    out.append('\n');
    line(out, "frame_capture", g_agent.framesOk ? "yes" : "no");
}

} // namespace memtap_agent
