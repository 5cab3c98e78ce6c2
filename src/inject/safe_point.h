// THE SAFE-POINT RULE: when may memtap borrow a target thread?
//
// The borrowed ("hijacked") thread runs, on its own stack and TLS, exactly:
// the raw syscalls mmap, munmap, memfd_create and close (no libc code: they
// are issued from memtap's stubs, scratch_stub.h), __errno_location, dlopen
// of the agent (first attach only), and the agent's entry
// (src/agent/entry.cpp), which only checks and copies its arguments and
// calls pthread_create (with pthread_attr_* and pthread_sigmask around it).
// Everything else the agent does (dlsym, the socket, its tables, the hooks,
// pthread_atfork) runs on the agent's own thread. pthread_create takes the
// stack cache lock (dl_stack_cache_lock) and malloc's arena locks (the new
// thread's DTV, _dl_allocate_tls); dlopen takes the loader's locks
// (dl_load_lock, dl_load_write_lock) and malloc's; nothing else, and none of
// them calls into Python. So a thread is safe to borrow when it holds none of
// those locks, which we decide from where it stopped:
//
//  1. Where it is. Either stopped in user mode (orig_rax == -1: e.g. a
//     thread spinning in pure Python, which makes no syscall for seconds),
//     or interrupted inside one of the plain blocking syscalls below
//     (read, select, poll, epoll_wait, accept, nanosleep, ...), confirmed by
//     Capstone: the two bytes before rip decode as `syscall`.
//     Never futex: a thread parked in pthread_cond_wait or sem_wait (a thread
//     waiting for the GIL, say) was seen to deadlock the whole process when
//     borrowed, and its restart semantics (timeouts, requeue) are not ours to
//     replay.
//  2. What is on its native stack, unwound with libdw from the stop site to
//     the outermost frame. The unwind must complete (a partial stack proves
//     nothing). A frame in libc or the dynamic loader must be one of the
//     syscall wrappers and thread/process entry points named in
//     safe_point.cpp (stripped libc names only its exported symbols, so an
//     allowlist is the robust direction: malloc's internals would be
//     misnamed, not absent). A frame anywhere must not be an allocator or
//     loader entry point (malloc, free, dl*, PyMem_*, PyObject_Malloc...),
//     which also catches a thread in a signal handler that interrupted one.
//
// A thread that fails the rule is resumed at once and another one, or the same
// one a moment later, is tried; attach gives up with a clear message after its
// timeout. Tested against targets blocked in syscalls, spinning in pure
// Python, and multi-threaded (tests/integration).
#pragma once

#include <sys/user.h>

#include <cstdint>
#include <span>
#include <string>

#include "symbols/unwinder.h"

namespace memtap::inject {

struct SafePointVerdict {
    bool safe = false;
    std::string reason; // why not, for --verbose logs and the timeout message
};

// Decided from /proc/PID/task/TID/syscall before stopping anything: worth
// interrupting? (A thread in futex or another unknown syscall is not.)
bool isPlainBlockingSyscall(long number);

SafePointVerdict judgeSafePoint(const user_regs_struct& regs, std::span<const uint8_t> codeBeforeRip,
                                const symbols::UnwindResult& stack);

// "__GI___libc_read" -> "read": glibc's internal aliases reduced to the public name.
std::string normalizeLibcName(std::string_view name);

} // namespace memtap::inject
