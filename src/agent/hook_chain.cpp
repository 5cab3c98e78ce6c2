// See hook_chain.h. Runs on the agent thread only (or the hijacked thread
// during start), never inside a hook.
//
// The ctx convention we follow: tracemalloc_start() in Modules/_tracemalloc.c
// (3.6..3.12) and Python/tracemalloc.c (3.13) sets, for each domain,
//     alloc.ctx = &allocators.<domain>;
//     PyMem_GetAllocator(<domain>, &allocators.<domain>);
//     PyMem_SetAllocator(<domain>, &alloc);
// so the ctx of tracemalloc's hook is the address of a PyMemAllocatorEx that
// holds the allocator it wraps, and its hooks call that one. The saved struct
// is written before the hook is published; tracemalloc_stop() sets the saved
// ones back and does not clear them.
#include "agent/hook_chain.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

namespace memtap_agent {
namespace {

// tracemalloc over memray over us is two levels; a few more cost nothing.
constexpr int kMaxWalk = 8;
constexpr int kSettleReads = 16;
// Long enough for a PyMem_SetAllocator that was half-way through (a copy of
// five words) to have finished unless its thread was preempted right there.
constexpr long kSettleGapNs = 50 * 1000;

bool
sameAllocator(const PyMemAllocatorEx& a, const PyMemAllocatorEx& b) {
    return a.ctx == b.ctx && a.malloc == b.malloc && a.calloc == b.calloc && a.realloc == b.realloc &&
           a.free == b.free;
}

} // namespace

bool
tryReadMemory(const void* addr, void* out, size_t size) noexcept {
    // write(2) from addr into a pipe: the kernel copies the bytes and answers
    // EFAULT (or a short count) for an unmapped page instead of faulting, and
    // write is allowed by every seccomp policy that lets the target log
    // (process_vm_readv is not: Docker's default profile refuses it).
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        return false;
    }
    bool ok = false;
    ssize_t n;
    do {
        n = write(fds[1], addr, size);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(size)) {
        do {
            n = read(fds[0], out, size);
        } while (n < 0 && errno == EINTR);
        ok = n == static_cast<ssize_t>(size);
    }
    close(fds[0]);
    close(fds[1]);
    return ok;
}

bool
tryReadSettledAllocator(const PythonApi& api, int domain, PyMemAllocatorEx* out) noexcept {
    PyMemAllocatorEx previous{};
    api.getAllocator(domain, &previous);
    for (int i = 0; i < kSettleReads; ++i) {
        timespec gap{0, kSettleGapNs};
        nanosleep(&gap, nullptr);
        PyMemAllocatorEx now{};
        api.getAllocator(domain, &now);
        if (sameAllocator(previous, now)) {
            *out = now;
            return true;
        }
        previous = now;
    }
    return false;
}

ChainFind
findOurHook(int domain, const PyMemAllocatorEx& current, MatchOursFn matchOurs) noexcept {
    PyMemAllocatorEx level = current;
    for (int depth = 0; depth < kMaxWalk; ++depth) {
        int generation = matchOurs(domain, level);
        if (generation >= 0) {
            return ChainFind{depth == 0 ? ChainPlace::kTop : ChainPlace::kBelowWrapper, generation};
        }
        // pymalloc's and malloc's ctx is NULL (Objects/obmalloc.c); anything
        // not aligned like a PyMemAllocatorEx is not one.
        auto address = reinterpret_cast<uintptr_t>(level.ctx);
        if (address == 0 || address % alignof(PyMemAllocatorEx) != 0) {
            break;
        }
        PyMemAllocatorEx below{};
        if (!tryReadMemory(level.ctx, &below, sizeof(below))) {
            break;
        }
        level = below;
    }
    return ChainFind{ChainPlace::kNotFound, -1};
}

} // namespace memtap_agent
