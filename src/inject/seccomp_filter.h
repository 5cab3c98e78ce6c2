// What a thread's seccomp filter would do with the syscalls memtap is about
// to issue (or cause) on it, decided before any of them is issued.
//
// Why: a target whose filter kills on, say, memfd_create (systemd's
// SystemCallFilter= does that with SECCOMP_RET_KILL_PROCESS) is killed by
// an attach that just tries. memtap must never be the reason a process dies,
// so it reads the borrowed thread's filters and runs them itself, here, on
// the seccomp_data each planned syscall will present to the kernel.
//
// How, in four layers (each usable alone):
//  1. readSeccompModeOrThrow: "Seccomp:" in /proc/PID/task/TID/status
//     (0 none, 1 strict, 2 filter; proc(5)).
//  2. tryReadSeccompFiltersOrThrow: the thread's classic-BPF programs via
//     PTRACE_SECCOMP_GET_FILTER (ptrace(2)); needs CAP_SYS_ADMIN, memtap not
//     itself under seccomp, and the thread ptrace-stopped by us.
//  3. evaluateSeccompProgram / evaluateSeccompFilters: a classic-BPF
//     interpreter for exactly the instructions kernel/seccomp.c
//     (seccomp_check_filter) accepts, and the kernel's rule for a stack of
//     filters (seccomp_run_filters: every filter runs, the lowest
//     ACTION_ONLY value wins). Anything the kernel would have rejected
//     (bad opcode, load past seccomp_data, jump past the end) evaluates to
//     SECCOMP_RET_KILL_PROCESS: when in doubt, the answer that refuses.
//  4. judgeSyscalls: a verdict over a list of PlannedSyscall, and the lists
//     memtap's attach needs (plannedAttachSyscalls).
//
// Arguments memtap cannot know in advance (pointers and lengths glibc picks
// inside dlopen, the registers a remote syscall leaves untouched) are
// "unknown": the evaluator then follows BOTH branches of every jump whose
// outcome depends on them, and the result is the most restrictive action
// over all the paths it could take. That is conservative (it may see a path
// no real value takes) but never optimistic. Arguments with a few plausible
// values (mmap's prot in dlopen) are given as a set and each is tried. This
// is deliberately simple: no value-range tracking beyond "known or not".
#pragma once

#include <linux/filter.h>  // sock_filter
#include <linux/seccomp.h> // seccomp_data, SECCOMP_RET_*
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace memtap::inject {

// --- 1. the mode -----------------------------------------------------------

enum class SeccompMode { None = 0, Strict = 1, Filter = 2 };

struct SeccompStatus {
    SeccompMode mode = SeccompMode::None;
    std::optional<int> filterCount; // "Seccomp_filters:" (Linux >= 5.9), if present
};

// Parses the text of /proc/PID/task/TID/status. A kernel without
// CONFIG_SECCOMP has no "Seccomp:" line: that is SeccompMode::None.
// Error(NotSupported) for a mode number this code does not know.
SeccompStatus parseSeccompStatus(std::string_view statusText);

// Error(NoSuchProcess) if the thread is gone.
SeccompMode readSeccompModeOrThrow(pid_t pid, pid_t tid);

// --- 2. reading the filters -----------------------------------------------

using SeccompProgram = std::vector<sock_filter>;

// The filters of thread `tid`, in the order PTRACE_SECCOMP_GET_FILTER
// indexes them: index 0 is the OLDEST (first installed) filter
// (kernel/seccomp.c get_nth_filter). Empty if the thread has none.
//
// PRECONDITION: `tid` is ptrace-stopped by this process (seized and in an
// interrupt or signal stop, e.g. through attach::TracedThread); otherwise
// the kernel answers ESRCH, which is thrown as Error(Failure).
//
// std::nullopt when the kernel will not tell (so the caller can refuse with
// a clear message); *unavailableErrno, if given, then says why:
//   EACCES      memtap lacks CAP_SYS_ADMIN, or runs under seccomp itself
//   EINVAL      the thread is not in filter mode
//   EIO         kernel built without CONFIG_CHECKPOINT_RESTORE
//   EMEDIUMTYPE a filter that is not classic BPF
// Error(NoSuchProcess) if the thread exited meanwhile.
std::optional<std::vector<SeccompProgram>> tryReadSeccompFiltersOrThrow(pid_t tid,
                                                                        int* unavailableErrno = nullptr);

// --- 3. evaluating ----------------------------------------------------------

// The SECCOMP_RET_* value `program` returns for `data`. Out-of-range loads,
// scratch indexes or jumps, an unknown opcode, falling off the end, an empty
// or over-long (> BPF_MAXINSNS) program: SECCOMP_RET_KILL_PROCESS.
// Division by a zero X returns 0 (SECCOMP_RET_KILL_THREAD), as the kernel's
// cBPF-to-eBPF conversion does (net/core/filter.c, bpf_convert_filter).
uint32_t evaluateSeccompProgram(std::span<const sock_filter> program, const seccomp_data& data);

// Bit i set = 32-bit word i of seccomp_data (offset 4*i) is unknown:
// word 0 nr, 1 arch, 2-3 instruction_pointer, 4+2n / 5+2n args[n] low/high.
using UnknownWords = uint16_t;
inline constexpr UnknownWords kUnknownInstructionPointer = 0x000c;
inline constexpr UnknownWords
unknownArg(int n) {
    return static_cast<UnknownWords>(0x3u << (4 + 2 * n));
}

// Same, with the words in `unknown` taking any value: the most restrictive
// result over every path the program could take. Gives up (returns
// SECCOMP_RET_KILL_PROCESS) past a budget of executed instructions.
uint32_t evaluateSeccompProgram(std::span<const sock_filter> program, const seccomp_data& data,
                                UnknownWords unknown);

// A stack of filters, oldest first (as tryReadSeccompFiltersOrThrow returns
// them). Runs each, newest first as the kernel does, and keeps the most
// restrictive result; between equal actions (two ERRNO values, say) the
// newest filter's wins, as in seccomp_run_filters. No filter: ALLOW.
uint32_t evaluateSeccompFilters(std::span<const SeccompProgram> filters, const seccomp_data& data,
                                UnknownWords unknown = 0);

// The kernel's precedence (kernel/seccomp.c, ACTION_ONLY, a signed compare
// of ret & SECCOMP_RET_ACTION_FULL): KILL_PROCESS > KILL_THREAD > TRAP >
// ERRNO > USER_NOTIF > TRACE > LOG > ALLOW. True if `a` strictly beats `b`.
bool isMoreRestrictive(uint32_t a, uint32_t b);

enum class SeccompAction { Allow, Log, Trace, UserNotif, Errno, Trap, KillThread, KillProcess };

// Unknown action values are killed by the kernel (__seccomp_filter's
// default case): KillProcess.
SeccompAction classifySeccompAction(uint32_t ret);

// Human words for a SECCOMP_RET_* value: "kill the process", "fail with
// EPERM", "send SIGSYS", ...
std::string describeSeccompAction(uint32_t ret);

// The errno a syscall fails with under `ret`, for Errno (the 16-bit data,
// clamped to MAX_ERRNO 4095 as the kernel does) and Trace (ENOSYS: memtap
// never sets PTRACE_O_TRACESECCOMP, and the agent's thread is not traced);
// 0 otherwise.
int seccompErrno(uint32_t ret);

// --- 4. judging what memtap will do ------------------------------------------

// One argument of a planned syscall: a known value, one of a few values, or
// unknown (the default: anything the register may hold).
struct SyscallArg {
    std::vector<uint64_t> values; // empty = unknown

    static SyscallArg unknown() { return {}; }
    static SyscallArg known(uint64_t v) { return SyscallArg{{v}}; }
    static SyscallArg oneOf(std::initializer_list<uint64_t> vs) { return SyscallArg{vs}; }
    bool isUnknown() const { return values.empty(); }
};

// Marks a syscall whose failure with any errno is harmless (glibc or the
// agent ignores it, e.g. rseq registration in a new thread).
inline constexpr int kAnyErrno = -1;

struct PlannedSyscall {
    long nr = -1;
    std::string name;
    std::array<SyscallArg, 6> args{}; // default: all unknown
    std::string cause;                // "memtap's remote syscall", "dlopen", "pthread_create", ...
    int toleratedErrno = 0; // 0: failure matters; an errno (ENOSYS for clone3) or kAnyErrno: harmless
    SyscallArg instructionPointer{}; // unknown unless given (memtap's own come from libc's syscall())
};

struct SyscallVerdict {
    long nr = -1;
    std::string name;
    std::string cause;
    uint32_t action = SECCOMP_RET_ALLOW; // the most restrictive SECCOMP_RET_* over the values tried
};

struct SeccompVerdict {
    enum class Kind {
        NoFilter,          // seccomp off for this thread: everything is allowed
        Judged,            // strict mode, or filters read and evaluated
        FiltersUnreadable, // filter mode, but the kernel would not show the filters
    } kind = Kind::NoFilter;
    SeccompMode mode = SeccompMode::None;
    int unreadableErrno = 0;              // for FiltersUnreadable (see tryReadSeccompFiltersOrThrow)
    size_t filterCount = 0;               // filters evaluated
    std::vector<SyscallVerdict> verdicts; // one per planned syscall, same order (Judged only)
    // The first planned syscall the filter would kill the thread or process
    // for, trap (SIGSYS) or hand to a user-space supervisor (USER_NOTIF: it
    // may do anything, including never answer). memtap must not go on.
    std::optional<SyscallVerdict> fatal;
    // Planned syscalls that would fail with an errno that is not tolerated
    // (ERRNO, or TRACE -> ENOSYS): memtap can fall back (file delivery
    // instead of memfd_create) or refuse cleanly.
    std::vector<SyscallVerdict> failing;

    // Nothing fatal, nothing failing, nothing unknown.
    bool allClear() const {
        return kind == Kind::NoFilter || (kind == Kind::Judged && !fatal && failing.empty());
    }
};

// The action for one planned syscall against `filters` (oldest first):
// every combination of its argument value sets, unknown words followed both
// ways; the most restrictive result.
uint32_t judgeSyscall(std::span<const SeccompProgram> filters, const PlannedSyscall& syscall);

// Pure: the verdict for `mode` and its filters (ignored unless mode is
// Filter). Strict mode allows read, write, exit and rt_sigreturn only and
// kills the thread on anything else (kernel/seccomp.c, mode1_syscalls).
SeccompVerdict judgeSyscallsWith(SeccompMode mode, std::span<const SeccompProgram> filters,
                                 std::span<const PlannedSyscall> planned);

// Reads the mode of thread `tid` of `pid` and, in filter mode, its filters,
// then judges `planned`. Same precondition as tryReadSeccompFiltersOrThrow
// (the thread ptrace-stopped by us) when the thread is in filter mode.
SeccompVerdict judgeSyscalls(pid_t pid, pid_t tid, std::span<const PlannedSyscall> planned);

// How memtap gets its agent into the target; each needs its own syscalls.
enum class AttachRoute {
    Memfd,         // memfd_create + dlopen("/proc/self/fd/N") (today's attach)
    File,          // the fallback: a file written by the borrowed thread, then dlopen'ed
    AlreadyLoaded, // the agent is mapped from an earlier attach: only its entry is called
};

// Every syscall an attach issues or causes on the borrowed thread and, since
// the agent's thread inherits that thread's filters, on the agent's thread,
// in the order they happen. See seccomp_filter.cpp for what strace showed.
const std::vector<PlannedSyscall>& plannedAttachSyscalls(AttachRoute delivery);

// The Error an attach should throw for `verdict`, or nullopt if it may go
// on. Fatal and unreadable verdicts refuse (NotSupported, with a hint);
// failing syscalls refuse too unless the caller has a fallback and passes
// `failuresHandled`.
std::optional<Error> seccompRefusal(pid_t pid, pid_t tid, const SeccompVerdict& verdict,
                                    bool failuresHandled = false);

} // namespace memtap::inject
