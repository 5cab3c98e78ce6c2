#include "agent/tables.h"

namespace memtap_agent {

void*
Pool::allocate(size_t n) noexcept {
    n = (n + 7) & ~size_t{7};
    if (n > kChunkBytes) {
        return nullptr;
    }
    if (used_ + n > kChunkBytes) {
        if (chunkCount_ == kMaxChunks) {
            return nullptr;
        }
        char* chunk = static_cast<char*>(mapZeroed(kChunkBytes));
        if (chunk == nullptr) {
            return nullptr;
        }
        chunks_[chunkCount_++] = chunk;
        used_ = 0;
    }
    void* out = chunks_[chunkCount_ - 1] + used_;
    used_ += n;
    return out;
}

void
Pool::reset() noexcept {
    for (size_t i = 0; i < chunkCount_; ++i) {
        unmap(chunks_[i], kChunkBytes);
        chunks_[i] = nullptr;
    }
    chunkCount_ = 0;
    used_ = kChunkBytes;
}

bool
IdIndex::init(size_t capacity) noexcept {
    reset();
    if (!map_.allocate(capacity * sizeof(uint32_t))) {
        return false;
    }
    slots_ = static_cast<uint32_t*>(map_.get());
    mask_ = capacity - 1;
    return true;
}

bool
AddressTable::init(size_t capacity) noexcept {
    reset();
    if (!map_.allocate(capacity * sizeof(Entry))) {
        return false;
    }
    entries_ = static_cast<Entry*>(map_.get());
    mask_ = capacity - 1;
    return true;
}

bool
AddressTable::grow() noexcept {
    size_t capacity = (mask_ + 1) * 2;
    Mapping bigger;
    if (!bigger.allocate(capacity * sizeof(Entry))) {
        return false;
    }
    Entry* fresh = static_cast<Entry*>(bigger.get());
    size_t mask = capacity - 1;
    for (size_t i = 0; i <= mask_; ++i) {
        if (entries_[i].addr != 0) {
            size_t j = home(entries_[i].addr, mask);
            while (fresh[j].addr != 0) {
                j = (j + 1) & mask;
            }
            fresh[j] = entries_[i];
        }
    }
    map_ = static_cast<Mapping&&>(bigger);
    entries_ = fresh;
    mask_ = mask;
    return true;
}

bool
AddressTable::insert(uintptr_t addr, uint64_t size, uint32_t trace) noexcept {
    // Load factor kept under 0.7: linear probing stays short and growth is
    // an amortized rehash under the engine lock.
    if ((count_ + 1) * 10 > (mask_ + 1) * 7 && !grow()) {
        return false;
    }
    uint64_t packed = (size > kMaxSize ? kMaxSize : size) << kTraceBits | (trace & kMaxTrace);
    for (size_t i = home(addr, mask_);; i = (i + 1) & mask_) {
        if (entries_[i].addr == addr) {
            entries_[i].packed = packed;
            return true;
        }
        if (entries_[i].addr == 0) {
            entries_[i] = Entry{addr, packed};
            ++count_;
            return true;
        }
    }
}

bool
AddressTable::find(uintptr_t addr, uint64_t* size, uint32_t* trace) const noexcept {
    for (size_t i = home(addr, mask_);; i = (i + 1) & mask_) {
        if (entries_[i].addr == addr) {
            *size = entries_[i].packed >> kTraceBits;
            *trace = static_cast<uint32_t>(entries_[i].packed & kMaxTrace);
            return true;
        }
        if (entries_[i].addr == 0) {
            return false;
        }
    }
}

bool
AddressTable::remove(uintptr_t addr, uint64_t* size, uint32_t* trace) noexcept {
    size_t i = home(addr, mask_);
    while (entries_[i].addr != addr) {
        if (entries_[i].addr == 0) {
            return false;
        }
        i = (i + 1) & mask_;
    }
    *size = entries_[i].packed >> kTraceBits;
    *trace = static_cast<uint32_t>(entries_[i].packed & kMaxTrace);
    // Backward-shift deletion: pull later entries of the run into the hole
    // when the hole lies between their home slot and where they sit.
    size_t hole = i;
    for (size_t j = (i + 1) & mask_; entries_[j].addr != 0; j = (j + 1) & mask_) {
        size_t h = home(entries_[j].addr, mask_);
        bool movable = hole <= j ? (h <= hole || h > j) : (h <= hole && h > j);
        if (movable) {
            entries_[hole] = entries_[j];
            hole = j;
        }
    }
    entries_[hole] = Entry{0, 0};
    --count_;
    return true;
}

} // namespace memtap_agent
