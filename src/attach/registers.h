// A thread's complete user-visible CPU state on x86-64: general registers
// (NT_PRSTATUS) and the extended state (NT_X86_XSTATE: x87, SSE, AVX...), so a
// remote call that clobbers vector registers can be undone exactly.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <vector>

namespace memtap::attach {

struct ThreadRegisters {
    user_regs_struct general{};
    std::vector<uint8_t> xstate; // raw XSAVE area as the kernel gives it
};

// The thread must be in a ptrace-stop. Error(...) on failure, ESRCH -> NoSuchProcess.
ThreadRegisters fetchRegistersOrThrow(pid_t tid);
void storeRegistersOrThrow(pid_t tid, const ThreadRegisters& regs);
user_regs_struct fetchGeneralRegistersOrThrow(pid_t tid);
void storeGeneralRegistersOrThrow(pid_t tid, const user_regs_struct& regs);

// Kernel-internal syscall restart codes (include/linux/errno.h). A thread
// interrupted in a blocking syscall shows one of these in rax, with orig_rax
// holding the syscall number; on resume the kernel rewinds rip by 2 (the
// length of `syscall`) and re-issues it, which is what we rely on to put a
// hijacked thread back exactly where it was (CRIU restores threads this way).
inline constexpr long kErestartSys = 512;
inline constexpr long kErestartNoIntr = 513;
inline constexpr long kErestartNoHand = 514;
inline constexpr long kErestartRestartBlock = 516;

bool isRestartCode(long rax);

} // namespace memtap::attach
