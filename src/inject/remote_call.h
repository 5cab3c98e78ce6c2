// A borrowed target thread that runs functions and syscalls for us, and is
// put back exactly as it was when this object goes away, on every path.
//
// The x86-64 System V ABI, as applied at the call (psABI 1.0, section 3.2):
//  - arguments in rdi, rsi, rdx, rcx, r8, r9; rax = 0 (no vector args for a
//    variadic callee); result in rax;
//  - the stack pointer skips the 128-byte red zone below the interrupted rsp
//    (a leaf function may keep live data there) and is aligned to 16 bytes
//    before the return address is pushed, so rsp % 16 == 8 at entry;
//  - the return address is a sentinel in page zero (never mappable: vm.mmap_min_addr),
//    so the callee's `ret` faults with rip == sentinel and we know it returned;
//  - DF is cleared (the ABI requires it on entry);
//  - orig_rax = -1, so the kernel does not apply syscall-restart logic to
//    our registers when the thread resumes into the call.
// Restore writes back the saved general and XSTATE registers; if the thread
// was interrupted inside a blocking syscall, the saved rax holds -ERESTART*
// and orig_rax the syscall number, and the kernel re-issues the syscall on
// resume (the approach CRIU takes for restored threads). errno is the
// caller's business (Injector saves and restores it around everything).
#pragma once

#include <chrono>
#include <initializer_list>
#include <optional>

#include "attach/registers.h"
#include "attach/remote_memory.h"
#include "attach/traced_thread.h"
#include "base/remote_ptr.h"

namespace memtap::inject {

inline constexpr RemotePtr kReturnSentinel{0x3e7}; // page zero: unmappable

// The registers for calling `function(args...)` from a thread stopped with
// `interrupted`, and where the sentinel return address goes. Pure, so the ABI
// rules above are unit-tested without a target.
struct CallPlan {
    user_regs_struct regs;
    RemotePtr returnAddressSlot; // == regs.rsp
};
CallPlan planCall(const user_regs_struct& interrupted, RemotePtr function,
                  std::initializer_list<uint64_t> args);
user_regs_struct planSyscall(const user_regs_struct& interrupted, RemotePtr syscallInsn, long number,
                             std::initializer_list<uint64_t> args);

class HijackedThread {
public:
    // Saves the complete register state of the stopped thread.
    HijackedThread(attach::TracedThread thread, const attach::RemoteMemory& memory);
    HijackedThread(const HijackedThread&) = delete;
    HijackedThread& operator=(const HijackedThread&) = delete;
    // Puts the registers back and detaches; never throws.
    ~HijackedThread();

    // Calls `function(args...)` on the thread and returns rax. Throws if the
    // call faults (the thread is restored by the destructor all the same).
    uint64_t callOrThrow(RemotePtr function, std::initializer_list<uint64_t> args,
                         std::chrono::milliseconds timeout, const char* what);

    // Executes one syscall through the `syscall` instruction at `syscallInsn`,
    // single-stepping over it. Returns the raw result (-errno on failure).
    int64_t syscallOrThrow(RemotePtr syscallInsn, long number, std::initializer_list<uint64_t> args);

    const attach::ThreadRegisters& saved() const { return saved_; }
    attach::TracedThread& thread() { return thread_; }
    std::chrono::microseconds stoppedFor() const { return thread_.stoppedFor(); }

    // Restore now (idempotent); the destructor calls it.
    void restore() noexcept;

private:
    attach::TracedThread thread_;
    const attach::RemoteMemory& memory_;
    attach::ThreadRegisters saved_;
    bool restored_ = false;
};

} // namespace memtap::inject
