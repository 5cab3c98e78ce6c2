// The engine's lock. Every traced allocation and free takes it (in exact
// mode: every allocator call), so its uncontended path is one atomic
// instruction each way; glibc's pthread_mutex_lock and unlock ran 31 and 26
// instructions per call there (callgrind, bench/README.md "instructions").
//
// Three states, as in Drepper's "Futexes Are Tricky" (2011), mutex 3:
// 0 free, 1 held, 2 held and someone may be asleep on it. A waiter spins
// briefly (holds are short) before it sleeps in futex(2); unlock wakes one
// only when the state says someone may sleep. No allocation, no C++ runtime.
#ifndef MEMTAP_AGENT_FUTEX_LOCK_H
#define MEMTAP_AGENT_FUTEX_LOCK_H

#include <atomic>
#include <cstdint>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace memtap_agent {

class FutexLock {
public:
    constexpr FutexLock() = default;
    FutexLock(const FutexLock&) = delete;
    FutexLock& operator=(const FutexLock&) = delete;

    void lock() noexcept {
        uint32_t expected = 0;
        if (!state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                            std::memory_order_relaxed)) [[unlikely]] {
            lockContended();
        }
    }

    void unlock() noexcept {
        if (state_.exchange(0, std::memory_order_release) == 2) [[unlikely]] {
            syscall(SYS_futex, &state_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
        }
    }

    // fork() child: only the forking thread exists, and it held the lock
    // (the prepare handler took it), so the lock is simply free again.
    void resetInChild() noexcept { state_.store(0, std::memory_order_relaxed); }

private:
    __attribute__((noinline)) void lockContended() noexcept {
        for (int spin = 0; spin < 200; ++spin) {
            uint32_t expected = 0;
            if (state_.load(std::memory_order_relaxed) == 0 &&
                state_.compare_exchange_weak(expected, 1, std::memory_order_acquire,
                                             std::memory_order_relaxed)) {
                return;
            }
            __builtin_ia32_pause();
        }
        // Mark it contended; whoever gets it from here on leaves state 2, so
        // its unlock wakes the next sleeper.
        while (state_.exchange(2, std::memory_order_acquire) != 0) {
            syscall(SYS_futex, &state_, FUTEX_WAIT_PRIVATE, 2, nullptr, nullptr, 0);
        }
    }

    std::atomic<uint32_t> state_{0};
};
static_assert(sizeof(FutexLock) == 4, "futex(2) works on a 32-bit word");

// Scope guard for FutexLock.
class FutexLockGuard {
public:
    explicit FutexLockGuard(FutexLock& lock) noexcept : lock_(lock) { lock_.lock(); }
    ~FutexLockGuard() { lock_.unlock(); }
    FutexLockGuard(const FutexLockGuard&) = delete;
    FutexLockGuard& operator=(const FutexLockGuard&) = delete;

private:
    FutexLock& lock_;
};

} // namespace memtap_agent

#endif // MEMTAP_AGENT_FUTEX_LOCK_H
