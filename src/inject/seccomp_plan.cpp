// The syscalls an attach makes or causes in the target, judged against its
// seccomp filters before the first one (seccomp_filter.h:
// plannedAttachSyscalls). Kept apart from the filter reader and evaluator:
// this list changes with memtap's attach, the evaluator with the kernel ABI.
#include "inject/seccomp_filter.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace memtap::inject {

// --- the syscalls of an attach --------------------------------------------------
//
// memtap's own remote syscalls are read off src/inject/injector.cpp; the
// rest were seen with `strace -f` (Debian 12, glibc 2.36, kernel 6.18):
//
// (a) a C program that fills a memfd with a small .so, then
//     dlopen("/proc/self/fd/N", RTLD_NOW), then calls an entry that does
//     pthread_create. dlopen:
//       openat(AT_FDCWD, "/proc/self/fd/4", O_RDONLY|O_CLOEXEC) = 3
//       read(3, "\177ELF...", 832) = 832
//       newfstatat(3, "", {...}, AT_EMPTY_PATH) = 0
//       mmap(NULL, 16408, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3, 0)
//       mmap(.., PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x1000)
//       mmap(.., PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x2000)
//       mmap(.., PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x2000)
//       close(3); mprotect(.., 4096, PROT_READ)
//     preceded, in a process whose malloc had not run yet, by
//       getrandom(.., 8, GRND_NONBLOCK); brk(NULL); brk(..)
//     pthread_create, in the caller:
//       rt_sigaction(SIGRT_1, {...}, NULL, 8)         (first thread only)
//       rt_sigprocmask(SIG_UNBLOCK, [RTMIN RT_1], NULL, 8)
//       mmap(NULL, 8392704, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK, -1, 0)
//       mprotect(.., 8388608, PROT_READ|PROT_WRITE)
//       rt_sigprocmask(SIG_BLOCK, ~[], [], 8)
//       clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|
//               CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, ..}, 88)
//       rt_sigprocmask(SIG_SETMASK, [], NULL, 8)
//     and in the new thread: rseq(.., 0x20, 0, 0x53053053), set_robust_list(.., 24),
//       rt_sigprocmask(SIG_SETMASK, ..), and at its exit rt_sigprocmask(SIG_BLOCK, ..),
//       madvise(stack, .., MADV_DONTNEED), exit(0).
// (b) python3 loading build/src/agent/libmemtap-agent.so from a memfd with
//     ctypes and calling memtap_agent_start, then detach: the same dlopen
//     (plus an anonymous PROT_READ|PROT_WRITE MAP_FIXED mapping for .bss),
//     then the agent's start:
//       socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0)
//       newfstatat(AT_FDCWD, "<socket>", .., AT_SYMLINK_NOFOLLOW) = -1 ENOENT
//       bind(4, {AF_UNIX, "<socket>"}, 110); chmod("<socket>", 0600); listen(4, 8)
//       mmap(NULL, .., PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)  x6 (tables)
//       the pthread_create above (rt_sigprocmask(SIG_SETMASK, ..) around it)
//     and the agent's thread: rseq, set_robust_list, rt_sigprocmask,
//       prctl(PR_SET_NAME, "memtap-agent"), poll([{fd, POLLIN}], 1, 200),
//       accept4(4, NULL, NULL, SOCK_CLOEXEC), getsockopt(.., SOL_SOCKET, SO_PEERCRED, ..),
//       recvfrom(.., 0, NULL, NULL), sendto(.., MSG_NOSIGNAL, NULL, 0), munmap x7,
//       madvise(.., MADV_DONTNEED), unlink("<socket>"), close,
//       malloc's new arena: mmap(NULL, 134217728, PROT_NONE,
//       MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0), munmap x2,
//       mprotect(.., PROT_READ|PROT_WRITE), then madvise and exit(0).
// Added without being seen, because other glibc versions or contention do
// them: open and fstat and lstat (glibc before 2.26 / 2.33), pread64
// (program headers past the first 832 bytes), clone (glibc's fallback
// when clone3 fails with ENOSYS, which container runtimes arrange), futex
// (a contended loader or malloc lock), restart_syscall (a sleep the
// borrowed thread was in, resumed by the kernel after we restore it).

namespace {

SyscallArg
k(uint64_t v) {
    return SyscallArg::known(v);
}
const SyscallArg u = SyscallArg::unknown();

uint64_t
neg(int64_t v) {
    return static_cast<uint64_t>(v); // an int argument as the kernel sees it, sign-extended
}

PlannedSyscall
call(long nr, const char* name, const char* cause, std::initializer_list<SyscallArg> args,
     int toleratedErrno = 0) {
    PlannedSyscall s;
    s.nr = nr;
    s.name = name;
    s.cause = cause;
    size_t i = 0;
    for (const auto& a : args) {
        s.args[i++] = a;
    }
    s.toleratedErrno = toleratedErrno;
    return s;
}

using List = std::vector<PlannedSyscall>;

void
append(List& to, const List& from) {
    to.insert(to.end(), from.begin(), from.end());
}

const char* const kRemote = "memtap's remote syscall on the borrowed thread";
const char* const kDlopen = "the target's dlopen of memtap's agent";
const char* const kStart = "the agent's start on the borrowed thread";
const char* const kThread = "pthread_create of the agent's thread";
const char* const kAgentThread = "the agent's own thread, which inherits the filter";

List
scratchPageSyscalls() {
    return {
        // The scratch: at a hint with MAP_FIXED_NOREPLACE, else anywhere
        // (remote_call.cpp createScratchOrThrow); the return stub's marker.
        call(SYS_mmap, "mmap", kRemote,
             {u, u, k(PROT_READ | PROT_EXEC),
              SyscallArg::oneOf(
                  {MAP_PRIVATE | MAP_ANONYMOUS, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE}),
              k(neg(-1)), k(0)}),
        call(SYS_mmap, "mmap", kRemote,
             {u, u, k(PROT_READ | PROT_WRITE), k(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED), k(neg(-1)),
              k(0)}),
        call(SYS_getpid, "getpid", kRemote, {}),
    };
}

List
dlopenSyscalls() {
    const uint64_t cloexec = O_RDONLY | O_CLOEXEC;
    return {
        call(SYS_openat, "openat", kDlopen, {k(neg(AT_FDCWD)), u, k(cloexec)}),
        call(SYS_open, "open", kDlopen, {u, k(cloexec)}),
        call(SYS_read, "read", kDlopen, {}),
        call(SYS_pread64, "pread64", kDlopen, {}),
        call(SYS_newfstatat, "newfstatat", kDlopen, {u, u, u, k(AT_EMPTY_PATH)}),
        call(SYS_fstat, "fstat", kDlopen, {}),
        call(SYS_mmap, "mmap", kDlopen,
             {u, u, SyscallArg::oneOf({PROT_READ, PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE}),
              SyscallArg::oneOf({MAP_PRIVATE | MAP_DENYWRITE, MAP_PRIVATE | MAP_FIXED | MAP_DENYWRITE,
                                 MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS})}),
        // RELRO, and PROT_NONE for the holes between segments.
        call(SYS_mprotect, "mprotect", kDlopen, {u, u, SyscallArg::oneOf({PROT_READ, PROT_NONE})}),
        call(SYS_munmap, "munmap", kDlopen, {}),
        call(SYS_close, "close", kDlopen, {}),
        // malloc inside the loader.
        call(SYS_brk, "brk", kDlopen, {}),
        call(SYS_getrandom, "getrandom", kDlopen, {u, u, k(GRND_NONBLOCK)}, kAnyErrno),
        call(SYS_mmap, "mmap", kDlopen,
             {k(0), u, k(PROT_READ | PROT_WRITE), k(MAP_PRIVATE | MAP_ANONYMOUS), k(neg(-1)), k(0)}),
        call(SYS_futex, "futex", kDlopen, {}),
    };
}

List
agentStartSyscalls() {
    // glibc's flags for a thread (sysdeps/unix/sysv/linux/createthread.c), as strace showed.
    const uint64_t threadFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                                 CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID |
                                 CLONE_CHILD_CLEARTID;
    const SyscallArg how = SyscallArg::oneOf({SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK});
    return {
        call(SYS_socket, "socket", kStart, {k(AF_UNIX), k(SOCK_STREAM | SOCK_CLOEXEC), k(0)}),
        call(SYS_newfstatat, "newfstatat", kStart, {k(neg(AT_FDCWD)), u, u, k(AT_SYMLINK_NOFOLLOW)}),
        call(SYS_lstat, "lstat", kStart, {}),
        call(SYS_unlink, "unlink", kStart, {}),
        call(SYS_bind, "bind", kStart, {}),
        call(SYS_chmod, "chmod", kStart, {u, k(0600)}),
        call(SYS_listen, "listen", kStart, {u, k(8)}),
        call(SYS_mmap, "mmap", kStart,
             {k(0), u, k(PROT_READ | PROT_WRITE), k(MAP_PRIVATE | MAP_ANONYMOUS), k(neg(-1)), k(0)}),
        call(SYS_close, "close", kStart, {}),
        // Signal 33 (the kernel's SIGRTMIN + 1) is glibc's SIGSETXID (nptl/pthreadP.h),
        // set up by the first pthread_create; 8 is sizeof(kernel sigset_t).
        call(SYS_rt_sigaction, "rt_sigaction", kThread, {k(33), u, u, k(8)}),
        call(SYS_rt_sigprocmask, "rt_sigprocmask", kThread, {how, u, u, k(8)}),
        call(SYS_mmap, "mmap", kThread,
             {k(0), u, k(PROT_NONE), k(MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK), k(neg(-1)), k(0)}),
        call(SYS_mprotect, "mprotect", kThread, {u, u, k(PROT_READ | PROT_WRITE)}),
        // glibc falls back to clone when clone3 fails with ENOSYS
        // (sysdeps/unix/sysv/linux/clone-internal.c).
        call(SYS_clone3, "clone3", kThread, {u, u}, ENOSYS),
        call(SYS_clone, "clone", kThread, {k(threadFlags)}),
        call(SYS_futex, "futex", kThread, {}),
    };
}

List
agentThreadSyscalls() {
    const SyscallArg how = SyscallArg::oneOf({SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK});
    return {
        // glibc's start_thread ignores both failing (nptl/pthread_create.c).
        call(SYS_rseq, "rseq", kAgentThread, {u, u, k(0), u}, kAnyErrno),
        call(SYS_set_robust_list, "set_robust_list", kAgentThread, {u, u}, kAnyErrno),
        call(SYS_rt_sigprocmask, "rt_sigprocmask", kAgentThread, {how, u, u, k(8)}),
        // The agent ignores its result (src/agent/control.cpp).
        call(SYS_prctl, "prctl", kAgentThread, {k(PR_SET_NAME), u, k(0), k(0), k(0)}, kAnyErrno),
        call(SYS_poll, "poll", kAgentThread, {u, k(1), u}),
        call(SYS_accept4, "accept4", kAgentThread, {u, k(0), k(0), k(SOCK_CLOEXEC)}),
        call(SYS_getsockopt, "getsockopt", kAgentThread, {u, k(SOL_SOCKET), k(SO_PEERCRED), u, u}),
        call(SYS_recvfrom, "recvfrom", kAgentThread, {u, u, u, k(0), k(0), k(0)}),
        call(SYS_sendto, "sendto", kAgentThread, {u, u, u, k(MSG_NOSIGNAL), k(0), k(0)}),
        call(SYS_clock_gettime, "clock_gettime", kAgentThread, {}),
        call(SYS_mmap, "mmap", kAgentThread,
             {k(0), u, SyscallArg::oneOf({PROT_NONE, PROT_READ | PROT_WRITE}),
              SyscallArg::oneOf(
                  {MAP_PRIVATE | MAP_ANONYMOUS, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE}),
              k(neg(-1)), k(0)}),
        call(SYS_mprotect, "mprotect", kAgentThread, {u, u, k(PROT_READ | PROT_WRITE)}),
        call(SYS_munmap, "munmap", kAgentThread, {}),
        call(SYS_madvise, "madvise", kAgentThread, {u, u, k(MADV_DONTNEED)}, kAnyErrno),
        call(SYS_unlink, "unlink", kAgentThread, {}),
        call(SYS_close, "close", kAgentThread, {}),
        call(SYS_futex, "futex", kAgentThread, {}),
        call(SYS_exit, "exit", kAgentThread, {k(0)}),
    };
}

List
buildPlan(AttachRoute delivery) {
    List plan = scratchPageSyscalls();
    if (delivery == AttachRoute::Memfd) {
        plan.push_back(call(SYS_memfd_create, "memfd_create", kRemote, {u, k(MFD_CLOEXEC)}));
        append(plan, dlopenSyscalls());
        plan.push_back(call(SYS_close, "close", kRemote, {}));
    } else if (delivery == AttachRoute::File) {
        // memtap writes and unlinks the file from outside (agent_loader.cpp):
        // the target only dlopens it.
        append(plan, dlopenSyscalls());
    }
    append(plan, agentStartSyscalls());
    append(plan, agentThreadSyscalls());
    plan.push_back(call(SYS_munmap, "munmap", kRemote, {}));
    plan.push_back(call(SYS_restart_syscall, "restart_syscall",
                        "the kernel resuming the borrowed thread's sleep", {}));
    return plan;
}

} // namespace

const std::vector<PlannedSyscall>&
plannedAttachSyscalls(AttachRoute delivery) {
    static const List memfd = buildPlan(AttachRoute::Memfd);
    static const List file = buildPlan(AttachRoute::File);
    static const List loaded = buildPlan(AttachRoute::AlreadyLoaded);
    switch (delivery) {
    case AttachRoute::Memfd:
        return memfd;
    case AttachRoute::File:
        return file;
    case AttachRoute::AlreadyLoaded:
        return loaded;
    }
    return memfd;
}

} // namespace memtap::inject
