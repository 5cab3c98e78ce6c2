// The free-side filter: which freed blocks may be traced, answered without
// the engine's lock and, for the common free, from a few KiB that stay in L1.
//
// Every free passes through the hooks, and in sampled mode almost none of
// the freed blocks is traced. A hash of the block's address picks one of
// kFilterSlots slots. Per slot: a count of traced blocks that hash there
// (saturating at 255, then never decremented) and one bit of the bitmap,
// set while that count is non-zero. Per group of 16 slots (16 adjacent bits
// of one bitmap word): one bit of the summary, set while any of the group's
// bits is. A clear summary bit, or a clear bitmap bit, proves the block is
// not traced.
//
// Sizes: the summary is 4 KiB (L1 holds it with the allocator's own hot
// lines), the bitmap 64 KiB, the counts 512 KiB. With n traced blocks a free
// reads the bitmap with probability about 1 - exp(-16n / 2^19) (n = 1000:
// 3%) and takes the lock for nothing with probability about n / 2^19. In
// exact mode every free is of a traced block anyway.
//
// Counts and bits are written under the engine's lock only; the bits are
// read without it (relaxed atomics). A block's bits are set before the
// allocating hook returns it, so any free of it sees them.
#ifndef MEMTAP_AGENT_FREE_FILTER_H
#define MEMTAP_AGENT_FREE_FILTER_H

#include <cstddef>
#include <cstdint>

namespace memtap_agent {

inline constexpr unsigned kFilterBits = 19;
inline constexpr size_t kFilterSlots = size_t{1} << kFilterBits;
inline constexpr unsigned kFilterGroupShift = 4; // 16 slots per summary bit
inline constexpr size_t kFilterSummaryWords = (kFilterSlots >> kFilterGroupShift) / 64;
inline constexpr size_t kFilterBitmapWords = kFilterSlots / 64;
inline constexpr size_t kFilterBytes = (kFilterSummaryWords + kFilterBitmapWords) * 8 + kFilterSlots;
static_assert(64 % (1u << kFilterGroupShift) == 0, "a group must lie inside one bitmap word");

// Summary words, then bitmap words, then the counts (one byte per slot).
// Mapped by filterMapOnce() and never unmapped: a hook that is still
// running after detach may read it.
extern uint64_t* g_filter;

// Fibonacci hashing (Knuth, TAOCP 6.4): one multiply; the top bits mix
// every bit of the address, so 16-byte aligned blocks of one pool spread.
inline size_t
filterSlot(const void* ptr) noexcept {
    return (reinterpret_cast<uintptr_t>(ptr) * 0x9e3779b97f4a7c15ULL) >> (64 - kFilterBits);
}

inline bool
testBit(const uint64_t* words, size_t bit) noexcept {
    return (__atomic_load_n(&words[bit / 64], __ATOMIC_RELAXED) >> (bit % 64)) & 1;
}

// False only if no traced block has this address. g_filter must be mapped.
// Inlined into every free hook, whose fast path it is.
__attribute__((always_inline)) inline bool
filterMayContain(const void* ptr) noexcept {
    size_t slot = filterSlot(ptr);
    return testBit(g_filter, slot >> kFilterGroupShift) && testBit(g_filter + kFilterSummaryWords, slot);
}

// Engine side, under its lock.
bool filterMapOnce() noexcept;
void filterAdd(const void* ptr) noexcept;
void filterRemove(const void* ptr) noexcept;
void filterClear() noexcept; // gives the pages back, zero-filled

} // namespace memtap_agent

#endif // MEMTAP_AGENT_FREE_FILTER_H
