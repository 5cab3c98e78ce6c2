#include "agent/mapping.h"

#include <atomic>
#include <sys/mman.h>

namespace memtap_agent {
namespace {

constinit std::atomic<uint64_t> g_mappedBytes{0};

size_t
pageRound(size_t bytes) {
    constexpr size_t kPage = 4096;
    return (bytes + kPage - 1) & ~(kPage - 1);
}

} // namespace

void*
mapZeroed(size_t bytes) noexcept {
    if (bytes == 0) {
        return nullptr;
    }
    void* addr =
        mmap(nullptr, pageRound(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) {
        return nullptr;
    }
    g_mappedBytes.fetch_add(pageRound(bytes), std::memory_order_relaxed);
    return addr;
}

void
unmap(void* addr, size_t bytes) noexcept {
    if (addr == nullptr) {
        return;
    }
    munmap(addr, pageRound(bytes));
    g_mappedBytes.fetch_sub(pageRound(bytes), std::memory_order_relaxed);
}

uint64_t
agentMappedBytes() noexcept {
    return g_mappedBytes.load(std::memory_order_relaxed);
}

} // namespace memtap_agent
