#include "inject/seccomp_filter.h"

#include <fcntl.h>
#include <linux/audit.h> // AUDIT_ARCH_X86_64
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include "attach/proc.h"

namespace memtap::inject {

namespace {

constexpr uint32_t kKillProcess = SECCOMP_RET_KILL_PROCESS;
constexpr size_t kDataWords = sizeof(seccomp_data) / sizeof(uint32_t);
static_assert(sizeof(seccomp_data) == 64, "include/uapi/linux/seccomp.h: nr, arch, ip, args[6]");
static_assert(kDataWords <= 16, "UnknownWords has one bit per word");

// Total instructions one evaluation may execute over all the paths it forks
// into. A real filter is a few hundred instructions with a handful of
// argument checks per syscall; past this, assume the worst.
constexpr size_t kInstructionBudget = size_t(1) << 20;

// include/linux/err.h: the kernel clamps SECCOMP_RET_ERRNO's data to this.
constexpr int kMaxErrno = 4095;

struct Reg {
    uint32_t value = 0;
    bool unknown = false;
};

struct Machine {
    size_t pc = 0;
    Reg a;
    Reg x;
    // Unknown until stored: the kernel rejects a program that reads a slot
    // before writing it (net/core/filter.c, check_load_and_stores), so a
    // valid program never sees this, and an invalid one gets the worst.
    std::array<Reg, BPF_MEMWORDS> mem;
    Machine() { mem.fill(Reg{0, true}); }
};

struct Worst {
    std::optional<uint32_t> ret;
    void add(uint32_t r) {
        if (!ret || isMoreRestrictive(r, *ret)) {
            ret = r;
        }
    }
};

// One step of ALU: false if the kernel would have rejected the instruction.
// `endsWithZero` is set when the operation may divide by zero, which ends
// the program with 0 (bpf_convert_filter emits "if X == 0 return 0").
bool
applyAlu(uint16_t op, Reg& a, Reg b, bool fromK, bool& endsWithZero) {
    endsWithZero = false;
    bool unknown = a.unknown || b.unknown;
    uint32_t v = 0;
    switch (op) {
    case BPF_ADD:
        v = a.value + b.value;
        break;
    case BPF_SUB:
        v = a.value - b.value;
        break;
    case BPF_MUL:
        v = a.value * b.value;
        if ((!a.unknown && a.value == 0) || (!b.unknown && b.value == 0)) {
            unknown = false;
            v = 0;
        }
        break;
    case BPF_DIV:
        if (fromK && b.value == 0) {
            return false; // bpf_check_classic rejects a constant zero divisor
        }
        if (b.unknown || b.value == 0) {
            endsWithZero = true;
            if (!b.unknown) {
                return true;
            }
        }
        v = b.value == 0 ? 0 : a.value / b.value;
        break;
    case BPF_AND:
        v = a.value & b.value;
        if ((!a.unknown && a.value == 0) || (!b.unknown && b.value == 0)) {
            unknown = false;
            v = 0;
        }
        break;
    case BPF_OR:
        v = a.value | b.value;
        break;
    case BPF_XOR:
        v = a.value ^ b.value;
        break;
    case BPF_LSH:
    case BPF_RSH:
        if (fromK && b.value >= 32) {
            return false; // bpf_check_classic: shift by a constant >= 32
        }
        // A shift by X is an eBPF ALU32 shift, which takes the count mod 32.
        v = op == BPF_LSH ? a.value << (b.value & 31) : a.value >> (b.value & 31);
        break;
    default:
        return false;
    }
    a = Reg{v, unknown};
    return true;
}

bool
jumpCondition(uint16_t op, uint32_t a, uint32_t b) {
    switch (op) {
    case BPF_JEQ:
        return a == b;
    case BPF_JGT:
        return a > b;
    case BPF_JGE:
        return a >= b;
    default: // BPF_JSET
        return (a & b) != 0;
    }
}

// The interpreter. Each Machine in `pending` is one path still to run; a
// jump on an unknown value forks. Returns the most restrictive result.
uint32_t
run(std::span<const sock_filter> program, const seccomp_data& data, UnknownWords unknown) {
    if (program.empty() || program.size() > BPF_MAXINSNS) {
        return kKillProcess;
    }
    uint32_t words[kDataWords];
    std::memcpy(words, &data, sizeof(words));

    Worst worst;
    size_t budget = kInstructionBudget;
    std::vector<Machine> pending(1);
    while (!pending.empty()) {
        Machine m = pending.back();
        pending.pop_back();
        for (bool done = false; !done;) {
            if (budget-- == 0) {
                return kKillProcess;
            }
            if (m.pc >= program.size()) { // fell off the end, or jumped past it
                worst.add(kKillProcess);
                break;
            }
            const sock_filter& in = program[m.pc];
            const uint32_t k = in.k;
            ++m.pc;
            switch (in.code) {
            // seccomp_check_filter's list, verbatim; anything else is rejected.
            case BPF_LD | BPF_W | BPF_ABS:
                if (k >= sizeof(seccomp_data) || (k & 3) != 0) {
                    worst.add(kKillProcess);
                    done = true;
                } else {
                    m.a = Reg{words[k / 4], ((unknown >> (k / 4)) & 1) != 0};
                }
                break;
            case BPF_LD | BPF_W | BPF_LEN: // the kernel rewrites it to LD IMM sizeof(seccomp_data)
                m.a = Reg{sizeof(seccomp_data), false};
                break;
            case BPF_LDX | BPF_W | BPF_LEN:
                m.x = Reg{sizeof(seccomp_data), false};
                break;
            case BPF_LD | BPF_IMM:
                m.a = Reg{k, false};
                break;
            case BPF_LDX | BPF_IMM:
                m.x = Reg{k, false};
                break;
            case BPF_LD | BPF_MEM:
            case BPF_LDX | BPF_MEM:
            case BPF_ST:
            case BPF_STX:
                if (k >= BPF_MEMWORDS) {
                    worst.add(kKillProcess);
                    done = true;
                } else if (in.code == (BPF_LD | BPF_MEM)) {
                    m.a = m.mem[k];
                } else if (in.code == (BPF_LDX | BPF_MEM)) {
                    m.x = m.mem[k];
                } else {
                    m.mem[k] = in.code == BPF_ST ? m.a : m.x;
                }
                break;
            case BPF_MISC | BPF_TAX:
                m.x = m.a;
                break;
            case BPF_MISC | BPF_TXA:
                m.a = m.x;
                break;
            case BPF_ALU | BPF_NEG:
                m.a.value = 0u - m.a.value;
                break;
            case BPF_ALU | BPF_ADD | BPF_K:
            case BPF_ALU | BPF_ADD | BPF_X:
            case BPF_ALU | BPF_SUB | BPF_K:
            case BPF_ALU | BPF_SUB | BPF_X:
            case BPF_ALU | BPF_MUL | BPF_K:
            case BPF_ALU | BPF_MUL | BPF_X:
            case BPF_ALU | BPF_DIV | BPF_K:
            case BPF_ALU | BPF_DIV | BPF_X:
            case BPF_ALU | BPF_AND | BPF_K:
            case BPF_ALU | BPF_AND | BPF_X:
            case BPF_ALU | BPF_OR | BPF_K:
            case BPF_ALU | BPF_OR | BPF_X:
            case BPF_ALU | BPF_XOR | BPF_K:
            case BPF_ALU | BPF_XOR | BPF_X:
            case BPF_ALU | BPF_LSH | BPF_K:
            case BPF_ALU | BPF_LSH | BPF_X:
            case BPF_ALU | BPF_RSH | BPF_K:
            case BPF_ALU | BPF_RSH | BPF_X: {
                bool fromK = BPF_SRC(in.code) == BPF_K;
                bool endsWithZero = false;
                if (!applyAlu(BPF_OP(in.code), m.a, fromK ? Reg{k, false} : m.x, fromK, endsWithZero)) {
                    worst.add(kKillProcess);
                    done = true;
                } else if (endsWithZero) {
                    worst.add(0); // SECCOMP_RET_KILL_THREAD
                    done = !m.x.unknown;
                }
                break;
            }
            case BPF_JMP | BPF_JA:
                m.pc += k; // forward only: k is unsigned, so no loops
                break;
            case BPF_JMP | BPF_JEQ | BPF_K:
            case BPF_JMP | BPF_JEQ | BPF_X:
            case BPF_JMP | BPF_JGE | BPF_K:
            case BPF_JMP | BPF_JGE | BPF_X:
            case BPF_JMP | BPF_JGT | BPF_K:
            case BPF_JMP | BPF_JGT | BPF_X:
            case BPF_JMP | BPF_JSET | BPF_K:
            case BPF_JMP | BPF_JSET | BPF_X: {
                Reg b = BPF_SRC(in.code) == BPF_K ? Reg{k, false} : m.x;
                uint16_t op = BPF_OP(in.code);
                if (m.a.unknown || b.unknown) {
                    Machine other = m;
                    other.pc += in.jf;
                    pending.push_back(other);
                    m.pc += in.jt;
                    if (op == BPF_JEQ && !b.unknown) {
                        m.a = b; // on the "equal" branch, A is known
                    }
                } else {
                    m.pc += jumpCondition(op, m.a.value, b.value) ? in.jt : in.jf;
                }
                break;
            }
            case BPF_RET | BPF_K:
                worst.add(k);
                done = true;
                break;
            case BPF_RET | BPF_A:
                worst.add(m.a.unknown ? kKillProcess : m.a.value);
                done = true;
                break;
            default:
                worst.add(kKillProcess);
                done = true;
                break;
            }
        }
    }
    return worst.ret.value_or(kKillProcess);
}

std::string
errnoName(int err) {
    const char* name = strerrorname_np(err);
    return name != nullptr ? name : fmt::format("errno {}", err);
}

} // namespace

// --- 1 -----------------------------------------------------------------------

SeccompStatus
parseSeccompStatus(std::string_view text) {
    SeccompStatus status;
    auto field = [&](std::string_view key) -> std::optional<int> {
        for (size_t at = 0; at < text.size();) {
            size_t end = text.find('\n', at);
            std::string_view line =
                text.substr(at, end == std::string_view::npos ? text.npos : end - at);
            at = end == std::string_view::npos ? text.size() : end + 1;
            if (line.substr(0, key.size()) != key) {
                continue;
            }
            line.remove_prefix(key.size());
            while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
                line.remove_prefix(1);
            }
            int value = 0;
            auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), value);
            if (ec != std::errc()) {
                return std::nullopt;
            }
            return value;
        }
        return std::nullopt;
    };
    if (auto mode = field("Seccomp:")) {
        if (*mode < 0 || *mode > 2) {
            throw Error(ExitCode::NotSupported, fmt::format("unknown seccomp mode {} in /proc", *mode));
        }
        status.mode = static_cast<SeccompMode>(*mode);
    }
    status.filterCount = field("Seccomp_filters:");
    return status;
}

SeccompMode
readSeccompModeOrThrow(pid_t pid, pid_t tid) {
    auto text = attach::readWholeFile(fmt::format("/proc/{}/task/{}/status", pid, tid));
    if (!text) {
        throw Error(ExitCode::NoSuchProcess, fmt::format("thread {} of process {} is gone", tid, pid));
    }
    return parseSeccompStatus(*text).mode;
}

// --- 2 -----------------------------------------------------------------------

std::optional<std::vector<SeccompProgram>>
tryReadSeccompFiltersOrThrow(pid_t tid, int* unavailableErrno) {
    std::vector<SeccompProgram> filters;
    // The kernel caps a thread's stack of filters at MAX_INSNS_PER_PATH
    // (32768) instructions counting 4 of overhead each, so fewer than 8192.
    for (unsigned long index = 0; index < 8192; ++index) {
        // A null buffer asks for the length (kernel/seccomp.c, seccomp_get_filter).
        long count = ::ptrace(PTRACE_SECCOMP_GET_FILTER, tid, reinterpret_cast<void*>(index), nullptr);
        if (count >= 0 && (count == 0 || count > BPF_MAXINSNS)) {
            throw Error(
                ExitCode::Failure,
                fmt::format("PTRACE_SECCOMP_GET_FILTER on thread {}: {} instructions", tid, count));
        }
        SeccompProgram program;
        if (count > 0) {
            // A full-size buffer: the filter at an index never changes (new
            // ones get higher indexes), but the kernel copies its whole
            // length without looking at ours.
            program.resize(BPF_MAXINSNS);
            count =
                ::ptrace(PTRACE_SECCOMP_GET_FILTER, tid, reinterpret_cast<void*>(index), program.data());
        }
        if (count < 0) {
            int err = errno;
            if (err == ENOENT) {
                return filters; // past the newest filter
            }
            if (err == EACCES || err == EINVAL || err == EIO || err == EMEDIUMTYPE) {
                if (unavailableErrno != nullptr) {
                    *unavailableErrno = err;
                }
                return std::nullopt;
            }
            if (err == ESRCH && ::access(fmt::format("/proc/{}", tid).c_str(), F_OK) != 0) {
                throw Error(ExitCode::NoSuchProcess, fmt::format("thread {} exited", tid));
            }
            throw Error(ExitCode::Failure,
                        describeErrno(fmt::format("PTRACE_SECCOMP_GET_FILTER on thread {}", tid), err),
                        err == ESRCH ? "the thread must be ptrace-stopped by memtap first" : "");
        }
        program.resize(static_cast<size_t>(count));
        filters.push_back(std::move(program));
    }
    throw Error(ExitCode::Failure,
                fmt::format("thread {} reports more seccomp filters than Linux allows", tid));
}

// --- 3 -----------------------------------------------------------------------

uint32_t
evaluateSeccompProgram(std::span<const sock_filter> program, const seccomp_data& data) {
    return run(program, data, 0);
}

uint32_t
evaluateSeccompProgram(std::span<const sock_filter> program, const seccomp_data& data,
                       UnknownWords unknown) {
    return run(program, data, unknown);
}

uint32_t
evaluateSeccompFilters(std::span<const SeccompProgram> filters, const seccomp_data& data,
                       UnknownWords unknown) {
    uint32_t ret = SECCOMP_RET_ALLOW;
    for (auto it = filters.rbegin(); it != filters.rend(); ++it) { // newest first
        uint32_t current = run(*it, data, unknown);
        if (isMoreRestrictive(current, ret)) {
            ret = current;
        }
    }
    return ret;
}

bool
isMoreRestrictive(uint32_t a, uint32_t b) {
    return static_cast<int32_t>(a & SECCOMP_RET_ACTION_FULL) <
           static_cast<int32_t>(b & SECCOMP_RET_ACTION_FULL);
}

SeccompAction
classifySeccompAction(uint32_t ret) {
    switch (ret & SECCOMP_RET_ACTION_FULL) {
    case SECCOMP_RET_ALLOW:
        return SeccompAction::Allow;
    case SECCOMP_RET_LOG:
        return SeccompAction::Log;
    case SECCOMP_RET_TRACE:
        return SeccompAction::Trace;
    case SECCOMP_RET_USER_NOTIF:
        return SeccompAction::UserNotif;
    case SECCOMP_RET_ERRNO:
        return SeccompAction::Errno;
    case SECCOMP_RET_TRAP:
        return SeccompAction::Trap;
    case SECCOMP_RET_KILL_THREAD:
        return SeccompAction::KillThread;
    default:
        return SeccompAction::KillProcess;
    }
}

int
seccompErrno(uint32_t ret) {
    switch (classifySeccompAction(ret)) {
    case SeccompAction::Errno:
        return std::min(static_cast<int>(ret & SECCOMP_RET_DATA), kMaxErrno);
    case SeccompAction::Trace:
        return ENOSYS;
    default:
        return 0;
    }
}

std::string
describeSeccompAction(uint32_t ret) {
    switch (classifySeccompAction(ret)) {
    case SeccompAction::Allow:
        return "allow it";
    case SeccompAction::Log:
        return "allow and log it";
    case SeccompAction::Trace:
        return "fail it with ENOSYS (SECCOMP_RET_TRACE, no seccomp tracer)";
    case SeccompAction::UserNotif:
        return "hand it to a user-space supervisor (SECCOMP_RET_USER_NOTIF)";
    case SeccompAction::Errno:
        return fmt::format("fail it with {}", errnoName(seccompErrno(ret)));
    case SeccompAction::Trap:
        return "send SIGSYS";
    case SeccompAction::KillThread:
        return "kill the thread";
    case SeccompAction::KillProcess:
        return "kill the process";
    }
    return "kill the process";
}

// --- 4 -----------------------------------------------------------------------

uint32_t
judgeSyscall(std::span<const SeccompProgram> filters, const PlannedSyscall& syscall) {
    // Slots 0-5 are the arguments, slot 6 the instruction pointer.
    std::array<const SyscallArg*, 7> slots;
    UnknownWords unknown = 0;
    size_t combinations = 1;
    for (size_t i = 0; i < 7; ++i) {
        slots[i] = i < 6 ? &syscall.args[i] : &syscall.instructionPointer;
        if (slots[i]->isUnknown()) {
            unknown |= i < 6 ? unknownArg(static_cast<int>(i)) : kUnknownInstructionPointer;
        } else {
            combinations *= slots[i]->values.size();
        }
    }
    if (combinations > 4096) {
        throw std::invalid_argument(fmt::format("{}: too many argument combinations", syscall.name));
    }
    uint32_t worst = SECCOMP_RET_ALLOW;
    for (size_t c = 0; c < combinations; ++c) {
        seccomp_data data{};
        data.nr = static_cast<int>(syscall.nr);
        data.arch = AUDIT_ARCH_X86_64;
        size_t rest = c;
        for (size_t i = 0; i < 7; ++i) {
            uint64_t value = 0;
            if (!slots[i]->isUnknown()) {
                const auto& values = slots[i]->values;
                value = values[rest % values.size()];
                rest /= values.size();
            }
            if (i < 6) {
                data.args[i] = value;
            } else {
                data.instruction_pointer = value;
            }
        }
        uint32_t ret = evaluateSeccompFilters(filters, data, unknown);
        if (c == 0 || isMoreRestrictive(ret, worst)) {
            worst = ret;
        }
    }
    return worst;
}

SeccompVerdict
judgeSyscallsWith(SeccompMode mode, std::span<const SeccompProgram> filters,
                  std::span<const PlannedSyscall> planned) {
    SeccompVerdict verdict;
    verdict.mode = mode;
    verdict.kind =
        mode == SeccompMode::None ? SeccompVerdict::Kind::NoFilter : SeccompVerdict::Kind::Judged;
    verdict.filterCount = mode == SeccompMode::Filter ? filters.size() : 0;
    for (const auto& syscall : planned) {
        uint32_t action = SECCOMP_RET_ALLOW;
        if (mode == SeccompMode::Strict) {
            // kernel/seccomp.c mode1_syscalls; anything else: do_exit(SIGKILL) of the thread.
            bool allowed = syscall.nr == SYS_read || syscall.nr == SYS_write || syscall.nr == SYS_exit ||
                           syscall.nr == SYS_rt_sigreturn;
            action = allowed ? SECCOMP_RET_ALLOW : SECCOMP_RET_KILL_THREAD;
        } else if (mode == SeccompMode::Filter) {
            action = judgeSyscall(filters, syscall);
        }
        SyscallVerdict one{syscall.nr, syscall.name, syscall.cause, action};
        verdict.verdicts.push_back(one);
        switch (classifySeccompAction(action)) {
        case SeccompAction::Allow:
        case SeccompAction::Log:
            break;
        case SeccompAction::Errno:
        case SeccompAction::Trace:
            if (syscall.toleratedErrno != kAnyErrno && syscall.toleratedErrno != seccompErrno(action)) {
                verdict.failing.push_back(one);
            }
            break;
        case SeccompAction::UserNotif:
        case SeccompAction::Trap:
        case SeccompAction::KillThread:
        case SeccompAction::KillProcess:
            if (!verdict.fatal) {
                verdict.fatal = one;
            }
            break;
        }
    }
    return verdict;
}

SeccompVerdict
judgeSyscalls(pid_t pid, pid_t tid, std::span<const PlannedSyscall> planned) {
    SeccompMode mode = readSeccompModeOrThrow(pid, tid);
    if (mode != SeccompMode::Filter) {
        return judgeSyscallsWith(mode, {}, planned);
    }
    int err = 0;
    auto filters = tryReadSeccompFiltersOrThrow(tid, &err);
    if (!filters) {
        SeccompVerdict verdict;
        verdict.kind = SeccompVerdict::Kind::FiltersUnreadable;
        verdict.mode = mode;
        verdict.unreadableErrno = err;
        return verdict;
    }
    return judgeSyscallsWith(mode, *filters, planned);
}

std::optional<Error>
seccompRefusal(pid_t pid, pid_t tid, const SeccompVerdict& verdict, bool failuresHandled) {
    switch (verdict.kind) {
    case SeccompVerdict::Kind::NoFilter:
        return std::nullopt;
    case SeccompVerdict::Kind::FiltersUnreadable: {
        std::string why;
        std::string hint = "memtap does not attach blind: the filter could kill the process";
        switch (verdict.unreadableErrno) {
        case EACCES:
            why = "reading it needs CAP_SYS_ADMIN, and memtap must not run under seccomp itself";
            hint = "run memtap as root outside any seccomp sandbox, so it can check the filter first";
            break;
        case EIO:
            why = "the kernel was built without CONFIG_CHECKPOINT_RESTORE";
            break;
        case EMEDIUMTYPE:
            why = "the filter is not classic BPF";
            break;
        default:
            why = describeErrno("PTRACE_SECCOMP_GET_FILTER", verdict.unreadableErrno);
            break;
        }
        return Error(
            ExitCode::NotSupported,
            fmt::format("thread {} of process {} runs under a seccomp filter memtap cannot read ({})",
                        tid, pid, why),
            hint);
    }
    case SeccompVerdict::Kind::Judged:
        break;
    }
    const char* modeName =
        verdict.mode == SeccompMode::Strict ? "strict seccomp mode" : "seccomp filter";
    if (verdict.fatal) {
        const auto& f = *verdict.fatal;
        return Error(ExitCode::NotSupported,
                     fmt::format("process {}'s {} would {} on {} ({}); memtap did not attach", pid,
                                 modeName, describeSeccompAction(f.action), f.name, f.cause),
                     fmt::format("allow {} in the process's seccomp filter (systemd: SystemCallFilter=) "
                                 "to use memtap with it",
                                 f.name));
    }
    if (!verdict.failing.empty() && !failuresHandled) {
        const auto& f = verdict.failing.front();
        return Error(ExitCode::NotSupported,
                     fmt::format("process {}'s {} would {} on {} ({}); memtap did not attach", pid,
                                 modeName, describeSeccompAction(f.action), f.name, f.cause),
                     fmt::format("allow {} in the process's seccomp filter (systemd: SystemCallFilter=)",
                                 f.name));
    }
    return std::nullopt;
}

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
