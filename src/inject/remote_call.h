// A borrowed target thread that runs functions and syscalls for us, and is
// put back exactly as it was when this object goes away, on every path.
//
// The x86-64 System V ABI, as applied at the call (psABI 1.0, section 3.2):
//  - arguments in rdi, rsi, rdx, rcx, r8, r9; rax = 0 (no vector args for a
//    variadic callee); result in rax;
//  - the stack pointer skips the 128-byte red zone below the interrupted rsp
//    (a leaf function may keep live data there) and is aligned to 16 bytes
//    before the return address is pushed, so rsp % 16 == 8 at entry;
//  - the return address is `landing` in the scratch mapping (scratch_stub.h),
//    which reports the result through a marker syscall that the host
//    catches at its entry stop (PTRACE_SYSCALL), and which puts the thread
//    back by itself if memtap is gone;
//  - DF is cleared (the ABI requires it on entry);
//  - orig_rax = -1, so the kernel does not apply syscall-restart logic to
//    our registers when the thread resumes into the call.
// Putting back writes the XSTATE, errno and resumeRegistersFor(saved) at a
// stop and detaches: a syscall the thread was blocked in is re-issued the way
// the kernel restarts one. Signals that reach the thread while it runs our
// calls are delivered at once (its handlers are async-signal-safe by
// contract); a fault in our call (SIGSEGV etc. raised by the kernel) is not
// delivered: the call fails and the thread is put back.
//
// The scratch mapping cannot hold the stub that creates and removes it: that
// one lives in a padding slot (buildPaddingStub) after a module's code, found
// by the caller, written before use and restored to the file's bytes after.
// If memtap dies between the mmap and the first write of the scratch, a few
// zeroed pages stay mapped; the thread is unharmed at every moment.
#pragma once

#include <chrono>
#include <initializer_list>
#include <optional>
#include <vector>

#include "attach/registers.h"
#include "attach/remote_memory.h"
#include "attach/traced_thread.h"
#include "base/remote_ptr.h"

namespace memtap::inject {

// The registers for calling `function(args...)` from a thread stopped with
// `interrupted`, and where the return address goes. Pure, so the ABI
// rules above are unit-tested without a target.
struct CallPlan {
    user_regs_struct regs;
    RemotePtr returnAddressSlot; // == regs.rsp
};
CallPlan planCall(const user_regs_struct& interrupted, RemotePtr function,
                  std::initializer_list<uint64_t> args);
user_regs_struct planSyscall(const user_regs_struct& interrupted, RemotePtr syscallInsn, long number,
                             std::initializer_list<uint64_t> args);

struct LeftoverScratch; // leftover_scratch.h

class HijackedThread {
public:
    // Saves the complete register state of the stopped thread.
    HijackedThread(attach::TracedThread thread, const attach::RemoteMemory& memory);
    HijackedThread(const HijackedThread&) = delete;
    HijackedThread& operator=(const HijackedThread&) = delete;
    // Puts the thread back (putBack) and detaches; never throws.
    ~HijackedThread();

    // Where the padding stub goes (at least kPaddingStubBytes of padding).
    void setPaddingSlot(RemotePtr slot) { paddingSlot_ = slot; }
    // Creates the scratch mapping with one mmap through the padding stub and
    // fills it (stub, control block, saved XSTATE). The thread's registers
    // are back to resume state the moment the mmap returns.
    void createScratchOrThrow();
    // Takes over a scratch mapping a killed memtap left (findLeftoverScratch).
    void adoptScratchOrThrow(const LeftoverScratch& leftover);
    RemotePtr scratch() const { return scratch_; }
    uint64_t scratchSize() const { return scratchSize_; }

    // Calls `function(args...)` on the thread and returns rax. Throws if the
    // call faults (the thread is put back by the destructor all the same) or
    // times out (the thread is then left to finish the call and put itself
    // back through the stub; the scratch stays until a later attach).
    uint64_t callOrThrow(RemotePtr function, std::initializer_list<uint64_t> args,
                         std::chrono::milliseconds timeout, const char* what);

    // Executes one syscall through the stub. Returns the raw result (-errno).
    int64_t syscallOrThrow(long number, std::initializer_list<uint64_t> args);

    // errno of the thread, put back on every path from now on.
    void saveErrnoOrThrow(RemotePtr errnoAddress);

    const attach::ThreadRegisters& saved() const { return saved_; }
    attach::TracedThread& thread() { return thread_; }
    std::chrono::microseconds stoppedFor() const { return thread_.stoppedFor(); }

    // Puts the thread back where it was and detaches it (idempotent; the
    // destructor calls it). Returns false when the thread could not be put
    // back by us (gone, or still inside a call that timed out: the stub then
    // does it).
    bool putBack() noexcept;
    // Puts errno and the extended state back, then unmaps the scratch with
    // one munmap through the padding stub. Needs the thread stopped at a
    // marker (not inside a call).
    void unmapScratchOrThrow();
    // Tells the stub which memfd of ours to close if memtap dies (-1: none);
    // with `closeNextResult`, the fd the next syscall returns.
    void setFdToCloseOrThrow(int fd, bool closeNextResult = false);

private:
    void writeControlOrThrow();
    // Maps the data part (everything after the code page) read+write.
    void mapScratchDataOrThrow();
    // One syscall through the padding stub (no scratch needed), the thread
    // back in resume state at its exit stop.
    int64_t paddingSyscallOrThrow(long number, std::initializer_list<uint64_t> args);
    template <typename T> void writeControlField(size_t offset, const T& value) const;
    // Resumes with PTRACE_SYSCALL until the marker's entry stop.
    void runToMarkerOrThrow(std::chrono::milliseconds timeout, const char* what);

    attach::TracedThread thread_;
    const attach::RemoteMemory& memory_;
    attach::ThreadRegisters saved_;
    RemotePtr paddingSlot_;
    bool paddingWritten_ = false;
    RemotePtr scratch_;
    uint64_t scratchSize_ = 0;
    uint64_t landing_ = 0, syscallEntry_ = 0, markerEnd_ = 0; // offsets in the scratch
    RemotePtr errnoAddress_;
    int savedErrno_ = 0;
    bool inCall_ = false; // running our code and not back at the marker
    bool putBack_ = false;
};

} // namespace memtap::inject
