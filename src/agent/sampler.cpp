#include "agent/sampler.h"

#include "agent/traces.h"

#include <cmath>
#include <time.h>

namespace memtap_agent {
namespace {

// Set by the agent before recording starts; read by hooks on any thread.
constinit double g_mean = 512.0 * 1024.0;

uint64_t
nextRandom(ThreadState& t) {
    // xorshift64 (Marsaglia 2003): per-thread, no lock, never zero.
    uint64_t x = t.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t.rng = x;
    return x;
}

int64_t
drawGap(ThreadState& t) {
    // Exponential by inversion; u in (0, 1] so log(u) is finite.
    double u = static_cast<double>((nextRandom(t) >> 11) + 1) * 0x1.0p-53;
    double gap = -std::log(u) * g_mean;
    return gap >= 9.0e18 ? INT64_MAX : static_cast<int64_t>(gap) + 1;
}

} // namespace

void
samplerConfigure(uint64_t meanBytes) noexcept {
    g_mean = static_cast<double>(meanBytes);
}

bool
sampleSlow(ThreadState& t, size_t size) noexcept {
    if (!t.rngSeeded) {
        // Seeded from the thread-local's own address and the clock (vDSO, no
        // syscall): distinct per thread, no shared state.
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t.rng = mix64(reinterpret_cast<uintptr_t>(&t) ^ static_cast<uint64_t>(ts.tv_nsec) ^
                      (static_cast<uint64_t>(ts.tv_sec) << 32)) |
                1;
        t.rngSeeded = 1;
        // A fresh thread (or first use) starts at a random point, not at a
        // sample point: draw the gap and apply this allocation to it.
        t.countdown = drawGap(t) - static_cast<int64_t>(size);
        if (t.countdown > 0) {
            return false;
        }
    }
    t.countdown = drawGap(t);
    return true;
}

Weight
sampleWeight(uint64_t size) noexcept {
    if (size == 0) {
        // p is 0 for an empty allocation; it can only be sampled with a
        // point on its boundary. Count it once, with no bytes.
        return Weight{0, kCountOne};
    }
    double p = -std::expm1(-static_cast<double>(size) / g_mean);
    double bytes = static_cast<double>(size) / p;
    double count = static_cast<double>(kCountOne) / p;
    return Weight{static_cast<uint64_t>(bytes + 0.5), static_cast<int64_t>(count + 0.5)};
}

} // namespace memtap_agent
