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

} // namespace memtap::inject
