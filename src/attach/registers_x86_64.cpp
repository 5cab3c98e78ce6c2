#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

#include <cerrno>

#include "attach/registers.h"
#include "base/error.h"

namespace memtap::attach {
namespace {

// Large enough for any XSAVE layout current CPUs define (AVX-512 is ~2.7 KiB,
// AMX tiles 8 KiB); the kernel shrinks iov_len to the real size.
constexpr size_t kMaxXstateBytes = 16384;

[[noreturn]] void
throwPtraceError(const char* what, pid_t tid, int err) {
    if (err == ESRCH) {
        throw Error(ExitCode::NoSuchProcess, fmt::format("thread {} vanished during {}", tid, what));
    }
    throw Error(ExitCode::Failure, describeErrno(fmt::format("{} on thread {}", what, tid), err));
}

} // namespace

user_regs_struct
fetchGeneralRegistersOrThrow(pid_t tid) {
    user_regs_struct regs{};
    iovec io{&regs, sizeof(regs)};
    if (::ptrace(PTRACE_GETREGSET, tid, NT_PRSTATUS, &io) != 0) {
        throwPtraceError("PTRACE_GETREGSET(NT_PRSTATUS)", tid, errno);
    }
    return regs;
}

void
storeGeneralRegistersOrThrow(pid_t tid, const user_regs_struct& regs) {
    iovec io{const_cast<user_regs_struct*>(&regs), sizeof(regs)};
    if (::ptrace(PTRACE_SETREGSET, tid, NT_PRSTATUS, &io) != 0) {
        throwPtraceError("PTRACE_SETREGSET(NT_PRSTATUS)", tid, errno);
    }
}

ThreadRegisters
fetchRegistersOrThrow(pid_t tid) {
    ThreadRegisters regs;
    regs.general = fetchGeneralRegistersOrThrow(tid);
    regs.xstate.resize(kMaxXstateBytes);
    iovec io{regs.xstate.data(), regs.xstate.size()};
    if (::ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &io) != 0) {
        throwPtraceError("PTRACE_GETREGSET(NT_X86_XSTATE)", tid, errno);
    }
    regs.xstate.resize(io.iov_len);
    return regs;
}

void
storeRegistersOrThrow(pid_t tid, const ThreadRegisters& regs) {
    if (!regs.xstate.empty()) {
        iovec io{const_cast<uint8_t*>(regs.xstate.data()), regs.xstate.size()};
        if (::ptrace(PTRACE_SETREGSET, tid, NT_X86_XSTATE, &io) != 0) {
            throwPtraceError("PTRACE_SETREGSET(NT_X86_XSTATE)", tid, errno);
        }
    }
    storeGeneralRegistersOrThrow(tid, regs.general);
}

bool
isRestartCode(long rax) {
    return rax == -kErestartSys || rax == -kErestartNoIntr || rax == -kErestartNoHand ||
           rax == -kErestartRestartBlock;
}

} // namespace memtap::attach
