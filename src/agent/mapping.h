// Memory the agent owns: anonymous mappings, never the target's allocators.
//
// Allocator hooks must not allocate through the allocators they hook, and
// glibc malloc may itself be hooked by a Python build with PYTHONMALLOC=malloc,
// so the tables live in mmap'd memory. Every byte mapped is counted for the
// status key agent_bytes.
#ifndef MEMTAP_AGENT_MAPPING_H
#define MEMTAP_AGENT_MAPPING_H

#include <cstddef>
#include <cstdint>

namespace memtap_agent {

// Zero-filled, page-rounded; nullptr on failure. async-signal-safe.
void* mapZeroed(size_t bytes) noexcept;
void unmap(void* addr, size_t bytes) noexcept;
uint64_t agentMappedBytes() noexcept;

// Move-only owner of one mapping (rr's ScopedFd idea applied to mmap).
class Mapping {
public:
    constexpr Mapping() = default;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    Mapping(Mapping&& other) noexcept : addr_(other.addr_), bytes_(other.bytes_) {
        other.addr_ = nullptr;
        other.bytes_ = 0;
    }
    Mapping& operator=(Mapping&& other) noexcept {
        if (this != &other) {
            reset();
            addr_ = other.addr_;
            bytes_ = other.bytes_;
            other.addr_ = nullptr;
            other.bytes_ = 0;
        }
        return *this;
    }
    ~Mapping() { reset(); }

    bool allocate(size_t bytes) noexcept {
        reset();
        addr_ = mapZeroed(bytes);
        bytes_ = addr_ != nullptr ? bytes : 0;
        return addr_ != nullptr;
    }
    void reset() noexcept {
        if (addr_ != nullptr) {
            unmap(addr_, bytes_);
        }
        addr_ = nullptr;
        bytes_ = 0;
    }
    void* get() const noexcept { return addr_; }
    size_t size() const noexcept { return bytes_; }

private:
    void* addr_ = nullptr;
    size_t bytes_ = 0;
};

} // namespace memtap_agent

#endif // MEMTAP_AGENT_MAPPING_H
