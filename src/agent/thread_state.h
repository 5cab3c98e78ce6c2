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

struct ThreadState {
    uint8_t busy;         // reentrancy guard: set while a hook is on this thread's stack
    uint8_t rngSeeded;    // rng below is valid
    uint32_t pendingSeen; // allocator calls not yet added to the global counter
    // gettid() of this thread, fetched by the first traced allocation (the
    // slow path, never the unsampled one) so it costs one syscall per
    // thread; 0 until then. A fork child's forking thread has a new id: the
    // engine's fork handler clears it (engineForkChild).
    int32_t tid;
    int64_t countdown; // sampled mode: bytes left before the next sample point
    uint64_t rng;      // xorshift64 state
};

extern thread_local ThreadState g_thread __attribute__((tls_model("initial-exec")));

} // namespace memtap_agent

#endif // MEMTAP_AGENT_THREAD_STATE_H
