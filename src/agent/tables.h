// Building blocks of the engine's tables, all in memory the agent maps itself
// (mapping.h) so that nothing here allocates through a hooked allocator.
//
// None of these lock: the engine calls every mutating function under its own
// lock. Pool and ChunkedArray never move what they hold, which lets the
// snapshot read interned names and frames after it released that lock.
#ifndef MEMTAP_AGENT_TABLES_H
#define MEMTAP_AGENT_TABLES_H

#include "agent/mapping.h"

#include <cstddef>
#include <cstdint>

namespace memtap_agent {

inline uint64_t
mix64(uint64_t x) {
    // The splitmix64 finalizer: good avalanche for aligned addresses.
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// Bump allocator over fixed-size chunks; pointers stay valid until reset().
class Pool {
public:
    static constexpr size_t kChunkBytes = 1 << 20;
    static constexpr size_t kMaxChunks = 4096;

    // n <= kChunkBytes; 8-byte aligned; nullptr if out of memory.
    void* allocate(size_t n) noexcept;
    void reset() noexcept;

private:
    char* chunks_[kMaxChunks] = {};
    size_t chunkCount_ = 0;
    size_t used_ = kChunkBytes; // in the last chunk; full when there is none
};

// Append-only array of T in chunks of kChunk elements, indexed by id.
template <typename T, size_t kChunk = 16384, size_t kMaxChunks = 1024> class ChunkedArray {
public:
    static constexpr size_t kMaxSize = kChunk * kMaxChunks;

    T* append() noexcept {
        if (size_ == kMaxSize) {
            return nullptr;
        }
        size_t chunk = size_ / kChunk;
        if (chunks_[chunk] == nullptr) {
            chunks_[chunk] = static_cast<T*>(mapZeroed(kChunk * sizeof(T)));
            if (chunks_[chunk] == nullptr) {
                return nullptr;
            }
        }
        return &chunks_[chunk][size_++ % kChunk];
    }
    T& at(size_t i) noexcept { return chunks_[i / kChunk][i % kChunk]; }
    const T& at(size_t i) const noexcept { return chunks_[i / kChunk][i % kChunk]; }
    size_t size() const noexcept { return size_; }
    void reset() noexcept {
        for (size_t i = 0; i < kMaxChunks && chunks_[i] != nullptr; ++i) {
            unmap(chunks_[i], kChunk * sizeof(T));
            chunks_[i] = nullptr;
        }
        size_ = 0;
    }

private:
    T* chunks_[kMaxChunks] = {};
    size_t size_ = 0;
};

// Open-addressing index of ids (slot = id + 1, 0 = empty), linear probing,
// rehashed into a table twice as large at half load. Entries are never
// removed. hashOf(id) gives back the hash an id was inserted with.
class IdIndex {
public:
    bool init(size_t capacity) noexcept;
    void reset() noexcept { map_.reset(), slots_ = nullptr, mask_ = 0, count_ = 0; }

    // Returns the id whose entry matches (eq(id) true), or UINT32_MAX.
    template <typename Eq> uint32_t find(uint64_t hash, Eq eq) const noexcept {
        for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
            uint32_t slot = slots_[i];
            if (slot == 0) {
                return UINT32_MAX;
            }
            if (eq(slot - 1)) {
                return slot - 1;
            }
        }
    }
    // Caller checked that the id is absent. False if the index cannot grow.
    template <typename HashOf> bool insert(uint64_t hash, uint32_t id, HashOf hashOf) noexcept {
        if ((count_ + 1) * 2 > mask_ + 1 && !grow(hashOf)) {
            return false;
        }
        place(hash, id);
        ++count_;
        return true;
    }

private:
    void place(uint64_t hash, uint32_t id) noexcept {
        size_t i = hash & mask_;
        while (slots_[i] != 0) {
            i = (i + 1) & mask_;
        }
        slots_[i] = id + 1;
    }
    template <typename HashOf> bool grow(HashOf hashOf) noexcept {
        Mapping bigger;
        size_t capacity = (mask_ + 1) * 2;
        if (!bigger.allocate(capacity * sizeof(uint32_t))) {
            return false;
        }
        Mapping old = static_cast<Mapping&&>(map_);
        const uint32_t* oldSlots = slots_;
        size_t oldCapacity = mask_ + 1;
        map_ = static_cast<Mapping&&>(bigger);
        slots_ = static_cast<uint32_t*>(map_.get());
        mask_ = capacity - 1;
        for (size_t i = 0; i < oldCapacity; ++i) {
            if (oldSlots[i] != 0) {
                place(hashOf(oldSlots[i] - 1), oldSlots[i] - 1);
            }
        }
        return true;
    }

    Mapping map_;
    uint32_t* slots_ = nullptr;
    size_t mask_ = 0;
    size_t count_ = 0;
};

// Live allocations: address -> (size, traceback id). Linear probing with
// backward-shift deletion (no tombstones, so a long run of alloc/free does
// not degrade lookups). 16 bytes per entry.
class AddressTable {
public:
    static constexpr unsigned kTraceBits = 24;
    static constexpr uint32_t kMaxTrace = (1u << kTraceBits) - 1;
    static constexpr uint64_t kMaxSize = (uint64_t{1} << (64 - kTraceBits)) - 1;

    bool init(size_t capacity) noexcept;
    void reset() noexcept { map_.reset(), entries_ = nullptr, mask_ = 0, count_ = 0; }
    // Replaces an existing entry for addr. False if the table cannot grow.
    bool insert(uintptr_t addr, uint64_t size, uint32_t trace) noexcept;
    bool remove(uintptr_t addr, uint64_t* size, uint32_t* trace) noexcept;
    bool find(uintptr_t addr, uint64_t* size, uint32_t* trace) const noexcept;
    size_t count() const noexcept { return count_; }

private:
    struct Entry {
        uintptr_t addr;  // 0: empty
        uint64_t packed; // size << kTraceBits | trace
    };
    static size_t home(uintptr_t addr, size_t mask) { return mix64(addr) & mask; }
    bool grow() noexcept;

    Mapping map_;
    Entry* entries_ = nullptr;
    size_t mask_ = 0;
    size_t count_ = 0;
};

} // namespace memtap_agent

#endif // MEMTAP_AGENT_TABLES_H
