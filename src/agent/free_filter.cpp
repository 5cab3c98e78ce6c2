#include "agent/free_filter.h"

#include "agent/mapping.h"

#include <sys/mman.h>

namespace memtap_agent {

constinit uint64_t* g_filter = nullptr;

namespace {

uint64_t*
bitmap() {
    return g_filter + kFilterSummaryWords;
}

uint8_t*
counts() {
    return reinterpret_cast<uint8_t*>(g_filter + kFilterSummaryWords + kFilterBitmapWords);
}

void
setBit(uint64_t* words, size_t bit) {
    uint64_t* word = &words[bit / 64];
    __atomic_store_n(word, *word | (uint64_t{1} << (bit % 64)), __ATOMIC_RELAXED);
}

void
clearBit(uint64_t* words, size_t bit) {
    uint64_t* word = &words[bit / 64];
    __atomic_store_n(word, *word & ~(uint64_t{1} << (bit % 64)), __ATOMIC_RELAXED);
}

} // namespace

bool
filterMapOnce() noexcept {
    if (g_filter == nullptr) {
        g_filter = static_cast<uint64_t*>(mapZeroed(kFilterBytes));
    }
    return g_filter != nullptr;
}

void
filterAdd(const void* ptr) noexcept {
    size_t slot = filterSlot(ptr);
    uint8_t& count = counts()[slot];
    if (count == 255) {
        return;
    }
    if (count++ == 0) {
        // The bitmap bit first: a reader that sees the summary bit must
        // find the bitmap bit too.
        setBit(bitmap(), slot);
        setBit(g_filter, slot >> kFilterGroupShift);
    }
}

void
filterRemove(const void* ptr) noexcept {
    size_t slot = filterSlot(ptr);
    uint8_t& count = counts()[slot];
    if (count == 255 || count == 0) {
        return;
    }
    if (--count != 0) {
        return;
    }
    clearBit(bitmap(), slot);
    // The group: the 16 bits of this word from (slot % 64) rounded down to 16.
    constexpr size_t kGroupSlots = size_t{1} << kFilterGroupShift;
    constexpr uint64_t kGroupMask = (uint64_t{1} << kGroupSlots) - 1;
    size_t first = slot % 64 / kGroupSlots * kGroupSlots;
    if (((bitmap()[slot / 64] >> first) & kGroupMask) == 0) {
        clearBit(g_filter, slot >> kFilterGroupShift);
    }
}

void
filterClear() noexcept {
    if (g_filter != nullptr) {
        // Anonymous memory: MADV_DONTNEED gives back the pages, zero-filled.
        madvise(g_filter, kFilterBytes, MADV_DONTNEED);
    }
}

} // namespace memtap_agent
