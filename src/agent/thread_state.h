// The one thread-local of the agent, shared by the hooks and the sampler.
//
// initial-exec TLS: the access is a plain %fs-relative load, so a hook never
// calls __tls_get_addr (which may malloc on first use in a dlopen'd module).
// That model makes glibc place the block in its static TLS surplus when the
// agent is dlopen'd, which is small (rtld.optional_static_tls, 512 bytes by
// default in glibc 2.36), so this stays a few words (40 bytes).
//
// The fast path (hooks.cpp) reads one field of it, fastBudget: the bytes it
// may still pass to the original before the slow path must run. That one
// compare stands for three conditions:
//   - no sample point in this allocation: the budget never reaches past
//     the next sample point;
//   - not busy: while busy the budget is far below zero, so no size fits;
//   - the call count is not too stale: the budget is at most kBudgetBytes,
//     so a thread that allocates reaches the slow path, which adds its
//     calls to the global count, at least every kBudgetBytes.
#ifndef MEMTAP_AGENT_THREAD_STATE_H
#define MEMTAP_AGENT_THREAD_STATE_H

#include <cstdint>

namespace memtap_agent {

// Slow-path calls add a thread's calls to the global counter once it holds
// this many, so exact mode (every call slow) has no atomic read-modify-write
// on a shared line per call. Status lags by up to kSeenBatch - 1 calls per
// thread, and in sampled mode by up to kBudgetBytes of allocations more.
inline constexpr uint64_t kSeenBatch = 64;
// The most a fast path may take before the slow path runs again: 16 KiB,
// a few hundred small allocations, over which the slow path's cost is
// spread.
inline constexpr int64_t kBudgetBytes = int64_t{16} << 10;
// Subtracted from fastBudget while busy. A budget is at most kBudgetBytes
// and a fast path's size at most 2^30 (gil_work.h kFastRawBytes), so a busy
// budget never exceeds a size and none of them overflow.
inline constexpr int64_t kBusyBias = int64_t{1} << 62;

struct ThreadState {
    // See above. Not busy: 0 <= fastBudget <= kBudgetBytes, and the bytes
    // left to the next sample point are fastBudget + countdown. Busy:
    // fastBudget < -kBusyBias / 2.
    int64_t fastBudget;
    // Sampled mode: bytes to the next sample point beyond fastBudget (all
    // of them while busy, when the sampler works on this alone).
    int64_t countdown;
    // Allocation calls not yet added to the global counter.
    uint64_t calls;
    uint64_t rng; // xorshift64 state
    // gettid() of this thread, fetched by the first traced allocation (the
    // slow path, never the unsampled one) so it costs one syscall per
    // thread; 0 until then. A fork child's forking thread has a new id: the
    // engine's fork handler clears it (engineForkChild).
    int32_t tid;
    uint8_t rngSeeded; // rng above is valid
};

inline bool
isBusy(const ThreadState& t) noexcept {
    return t.fastBudget < -kBusyBias / 2;
}

// Busy for a stretch that records (the slow paths, the native and tracked
// hooks, the agent's own thread): the budget goes back into the countdown,
// so the sampler sees every byte to the next sample point. Never nested:
// every caller tests isBusy first, except the agent thread, once, at start.
inline void
setBusy(ThreadState& t) noexcept {
    t.countdown += t.fastBudget;
    t.fastBudget = -kBusyBias;
}

// Ends setBusy: a new budget from the countdown, up to kBudgetBytes.
inline void
clearBusy(ThreadState& t) noexcept {
    int64_t budget = t.countdown < kBudgetBytes ? t.countdown : kBudgetBytes;
    if (budget < 0) {
        budget = 0;
    }
    t.countdown -= budget;
    t.fastBudget = budget;
}

// Busy around a call to the original only (hooks.cpp's guarded paths): the
// budget is kept as it is, lowered out of reach and put back.
inline void
beginGuard(ThreadState& t) noexcept {
    t.fastBudget -= kBusyBias;
}

inline void
endGuard(ThreadState& t) noexcept {
    t.fastBudget += kBusyBias;
}

extern thread_local ThreadState g_thread __attribute__((tls_model("initial-exec")));

} // namespace memtap_agent

#endif // MEMTAP_AGENT_THREAD_STATE_H
