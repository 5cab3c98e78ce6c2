// Poisson sampling by bytes (sampled mode).
//
// Sample points fall on the stream of allocated bytes with exponentially
// distributed gaps of mean T (args.sample_bytes), independently per thread.
// An allocation of s bytes is sampled if a point falls inside it, which
// happens with probability p = 1 - exp(-s/T); recording it with weight 1/p
// (s/p bytes, 1/p allocations) makes the size and count estimates unbiased.
// Because the gaps are memoryless, the next gap is drawn afresh at the end of
// a sampled allocation.
#ifndef MEMTAP_AGENT_SAMPLER_H
#define MEMTAP_AGENT_SAMPLER_H

#include "agent/thread_state.h"

#include <cstddef>
#include <cstdint>

namespace memtap_agent {

void samplerConfigure(uint64_t meanBytes) noexcept;

bool sampleSlow(ThreadState& t, size_t size) noexcept;

// The common, not-sampled path: a subtraction and a compare on a
// thread-local; no lock, no syscall, no table.
inline bool
shouldSample(ThreadState& t, size_t size) noexcept {
    t.countdown -= static_cast<int64_t>(size);
    if (t.countdown > 0) {
        return false;
    }
    return sampleSlow(t, size);
}

struct Weight {
    uint64_t bytes;  // estimated bytes this record stands for
    int64_t countFp; // estimated allocations, fixed point (traces.h kCountOne)
};

// A pure function of size and the configured mean, so a free subtracts
// exactly what the matching allocation added.
Weight sampleWeight(uint64_t size) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_SAMPLER_H
