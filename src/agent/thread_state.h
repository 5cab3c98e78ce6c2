// The one thread-local of the agent, shared by the hooks and the sampler.
//
// initial-exec TLS: the access is a plain %fs-relative load, so a hook never
// calls __tls_get_addr (which may malloc on first use in a dlopen'd module).
// That model makes glibc place the block in its static TLS surplus when the
// agent is dlopen'd, which is small (rtld.optional_static_tls, 512 bytes by
// default in glibc 2.36), so this stays a few words (32 bytes).
#ifndef MEMTAP_AGENT_THREAD_STATE_H
#define MEMTAP_AGENT_THREAD_STATE_H

#include <cstdint>

namespace memtap_agent {

// Allocation calls (not frees) are counted per thread and added to the global counter in
// batches, so the common path has no atomic read-modify-write on a cache line
// shared by every allocating thread. Status may lag by kSeenBatch-1 calls per
// thread.
inline constexpr uint32_t kSeenBatch = 64;
// The reentrancy guard lives in the same word as that count: one test of
// the word (count + 1 < kSeenBatch) tells the hooks' fast path both that no
// hook of ours is on this thread's stack and that no batch is due.
inline constexpr uint32_t kBusyBit = 1u << 31;

struct ThreadState {
    // kBusyBit: set while a hook (or the agent's own thread) must not record
    // what this thread allocates. Bits 0-30: allocation calls not yet added
    // to the global counter.
    uint32_t callWord;
    // gettid() of this thread, fetched by the first traced allocation (the
    // slow path, never the unsampled one) so it costs one syscall per
    // thread; 0 until then. A fork child's forking thread has a new id: the
    // engine's fork handler clears it (engineForkChild).
    int32_t tid;
    int64_t countdown; // sampled mode: bytes left before the next sample point
    uint64_t rng;      // xorshift64 state
    uint8_t rngSeeded; // rng above is valid
};

inline bool
isBusy(const ThreadState& t) noexcept {
    return (t.callWord & kBusyBit) != 0;
}

inline void
setBusy(ThreadState& t) noexcept {
    t.callWord |= kBusyBit;
}

inline void
clearBusy(ThreadState& t) noexcept {
    t.callWord &= ~kBusyBit;
}

extern thread_local ThreadState g_thread __attribute__((tls_model("initial-exec")));

} // namespace memtap_agent

#endif // MEMTAP_AGENT_THREAD_STATE_H
