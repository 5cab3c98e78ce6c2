#include "inject/remote_call.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "attach/proc.h"
#include "base/error.h"
#include "inject/leftover_scratch.h"
#include "inject/scratch_stub.h"

namespace memtap::inject {
namespace {

constexpr uint64_t kRedZoneBytes = 128; // psABI 3.2.2
constexpr uint64_t kStackAlignment = 16;
constexpr uint64_t kDirectionFlag = 1u << 10; // EFLAGS.DF

// Fault injection for the kill tests (tests/integration/kill): with
// MEMTAP_TEST_KILL_AT=POINT memtap SIGKILLs itself at that point of the
// borrow, so each moment the stub must survive is exercised every run.
// Points: "mmap" (scratch mapped, not yet written), "scratch", "call:WHAT" (the thread is running the
// call), "marker:WHAT" (stopped at the call's marker), "putback".
void
dieHereIfAsked(const std::string& point) {
    static const char* wanted = std::getenv("MEMTAP_TEST_KILL_AT");
    if (wanted != nullptr && point == wanted) {
        ::kill(::getpid(), SIGKILL);
    }
}

} // namespace

CallPlan
planCall(const user_regs_struct& interrupted, RemotePtr function, std::initializer_list<uint64_t> args) {
    if (args.size() > 6) {
        throw Error(ExitCode::Failure, "remote call with more than 6 arguments");
    }
    CallPlan plan{interrupted, {}};
    user_regs_struct& regs = plan.regs;
    uint64_t sp = (regs.rsp - kRedZoneBytes) & ~(kStackAlignment - 1);
    sp -= 8; // the return address: rsp % 16 == 8 at the callee's entry
    plan.returnAddressSlot = RemotePtr(sp);
    regs.rsp = sp;
    regs.rip = function.value();
    regs.rax = 0;
    regs.orig_rax = static_cast<uint64_t>(-1);
    regs.eflags &= ~kDirectionFlag;
    unsigned long long* argRegs[] = {&regs.rdi, &regs.rsi, &regs.rdx, &regs.rcx, &regs.r8, &regs.r9};
    size_t i = 0;
    for (uint64_t arg : args) {
        *argRegs[i++] = arg;
    }
    return plan;
}

user_regs_struct
planSyscall(const user_regs_struct& interrupted, RemotePtr syscallInsn, long number,
            std::initializer_list<uint64_t> args) {
    if (args.size() > 6) {
        throw Error(ExitCode::Failure, "remote syscall with more than 6 arguments");
    }
    user_regs_struct regs = interrupted;
    regs.rip = syscallInsn.value();
    regs.rax = static_cast<uint64_t>(number);
    regs.orig_rax = static_cast<uint64_t>(-1);
    // Kernel syscall convention: rdi, rsi, rdx, r10, r8, r9 (psABI A.2.1).
    unsigned long long* argRegs[] = {&regs.rdi, &regs.rsi, &regs.rdx, &regs.r10, &regs.r8, &regs.r9};
    size_t i = 0;
    for (uint64_t arg : args) {
        *argRegs[i++] = arg;
    }
    return regs;
}

HijackedThread::HijackedThread(attach::TracedThread thread, const attach::RemoteMemory& memory)
    : thread_(std::move(thread)), memory_(memory), saved_(attach::fetchRegistersOrThrow(thread_.tid())) {
}

HijackedThread::~HijackedThread() {
    putBack();
}

template <typename T>
void
HijackedThread::writeControlField(size_t offset, const T& value) const {
    memory_.writeOrThrow(scratch_ + kScratchControlOffset + offset, &value, sizeof(value));
}

void
HijackedThread::writeControlOrThrow() {
    StubEntries entries{};
    auto code = buildStubCode(entries);
    landing_ = entries.landing;
    syscallEntry_ = entries.syscallEntry;
    markerEnd_ = entries.markerEnd;
    // Data first, code last: until the code is there nothing jumps into it.
    if (!saved_.xstate.empty()) {
        memory_.writeOrThrow(scratch_ + kScratchXstateOffset, saved_.xstate.data(),
                             saved_.xstate.size());
    }
    ScratchControl control = makeScratchControl(scratchSize_, saved_.general, saved_.xstate, ::getpid(),
                                                processStartTime(::getpid()));
    control.errnoAddress = errnoAddress_.value();
    control.savedErrno = savedErrno_;
    memory_.writeOrThrow(scratch_ + kScratchControlOffset, &control, sizeof(control));
    memory_.writeOrThrow(scratch_ + kScratchCodeOffset, code.data(), code.size());
}

// W^X, so that MemoryDenyWriteExecute= (a seccomp rule against mmap with
// PROT_WRITE|PROT_EXEC and any mprotect to PROT_EXEC) and PR_SET_MDWE allow
// it: the whole range is mapped read+execute, then everything after the code
// page is mapped again read+write over it (MAP_FIXED). The target never
// writes the code page; memtap does, through /proc/PID/mem (FOLL_FORCE).
void
HijackedThread::createScratchOrThrow() {
    uint64_t size = scratchBytesFor(saved_.xstate.size());
    int64_t result = -EEXIST;
    for (int slot = 0; slot <= kScratchHintSlots && result == -EEXIST; ++slot) {
        uint64_t hint = slot < kScratchHintSlots ? kScratchHint + slot * kScratchHintStride : 0;
        int fixed = hint != 0 ? MAP_FIXED_NOREPLACE : 0;
        result =
            paddingSyscallOrThrow(SYS_mmap, {hint, size, PROT_READ | PROT_EXEC,
                                             static_cast<uint64_t>(MAP_PRIVATE | MAP_ANONYMOUS | fixed),
                                             static_cast<uint64_t>(-1), 0});
        if (hint != 0 && result >= 0 && static_cast<uint64_t>(result) != hint) {
            // A kernel before 4.17 ignores MAP_FIXED_NOREPLACE: take what it gave.
            break;
        }
    }
    if (result < 0 && result > -4096) {
        throw Error(ExitCode::Failure, describeErrno("mmap of memtap's scratch page in the target",
                                                     static_cast<int>(-result)));
    }
    scratch_ = RemotePtr(static_cast<uint64_t>(result));
    scratchSize_ = size;
    dieHereIfAsked("mmap");
    mapScratchDataOrThrow();
    writeControlOrThrow();
    dieHereIfAsked("scratch");
}

void
HijackedThread::mapScratchDataOrThrow() {
    RemotePtr data = scratch_ + kScratchControlOffset;
    int64_t result = paddingSyscallOrThrow(
        SYS_mmap,
        {data.value(), scratchSize_ - kScratchControlOffset, PROT_READ | PROT_WRITE,
         static_cast<uint64_t>(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED), static_cast<uint64_t>(-1), 0});
    if (result != static_cast<int64_t>(data.value())) {
        paddingSyscallOrThrow(SYS_munmap, {scratch_.value(), scratchSize_});
        scratch_ = RemotePtr();
        throw Error(
            ExitCode::Failure,
            result < 0 && result > -4096
                ? describeErrno("mmap of memtap's scratch data in the target", static_cast<int>(-result))
                : std::string("mmap of memtap's scratch data landed elsewhere"));
    }
}

int64_t
HijackedThread::paddingSyscallOrThrow(long number, std::initializer_list<uint64_t> args) {
    if (!paddingSlot_) {
        throw Error(ExitCode::Failure, "no padding slot for memtap's stub in the target");
    }
    if (!paddingWritten_) {
        auto stub = buildPaddingStub(saved_.general);
        memory_.writeOrThrow(paddingSlot_, stub.data(), stub.size());
        paddingWritten_ = true;
    }
    // If memtap dies from here to the exit stop, the syscall completes and
    // the stub's restore path puts the thread back.
    attach::storeGeneralRegistersOrThrow(thread_.tid(),
                                         planSyscall(saved_.general, paddingSlot_, number, args));
    uint64_t after = paddingSlot_.value() + 2;
    bool entered = false;
    int deliver = 0;
    for (;;) {
        thread_.resumeOrThrow(attach::Resume::ToSyscall, deliver);
        deliver = 0;
        attach::Stop stop = thread_.waitForStopOrThrow(std::chrono::milliseconds(5000));
        if (stop.kind == attach::Stop::Kind::Exited) {
            throw Error(ExitCode::NoSuchProcess,
                        fmt::format("process {} exited during attach", thread_.pid()));
        }
        if (stop.kind == attach::Stop::Kind::Signal) {
            deliver = stop.signal; // nothing of ours runs here that could fault
            continue;
        }
        if (stop.kind == attach::Stop::Kind::Interrupt) {
            if (stop.signal != SIGTRAP) {
                thread_.recordGroupStop(stop.signal);
            }
            continue;
        }
        __ptrace_syscall_info info{};
        if (::ptrace(PTRACE_GET_SYSCALL_INFO, thread_.tid(), sizeof(info), &info) <= 0) {
            throw Error(ExitCode::Failure, describeErrno("PTRACE_GET_SYSCALL_INFO", errno));
        }
        if (info.instruction_pointer != after) {
            continue; // the exit stop of the marker we were stopped at, say
        }
        if (info.op == PTRACE_SYSCALL_INFO_ENTRY) {
            entered = info.entry.nr == static_cast<uint64_t>(number);
        } else if (info.op == PTRACE_SYSCALL_INFO_EXIT && entered) {
            attach::storeGeneralRegistersOrThrow(thread_.tid(), resumeRegistersFor(saved_.general));
            return info.exit.rval;
        }
    }
}

void
HijackedThread::adoptScratchOrThrow(const LeftoverScratch& leftover) {
    if (leftover.size < scratchBytesFor(saved_.xstate.size())) {
        throw Error(ExitCode::Failure, "the scratch left by an earlier memtap is too small");
    }
    scratch_ = leftover.base;
    scratchSize_ = leftover.size;
    if (!leftover.dataWritable) {
        mapScratchDataOrThrow(); // its memtap died between the two mmaps
    }
    writeControlOrThrow();
}

void
HijackedThread::saveErrnoOrThrow(RemotePtr errnoAddress) {
    savedErrno_ = memory_.readOrThrow<int>(errnoAddress);
    errnoAddress_ = errnoAddress;
    // Value before address: the stub restores errno once the address is set.
    writeControlField(offsetof(ScratchControl, savedErrno), savedErrno_);
    writeControlField(offsetof(ScratchControl, errnoAddress), errnoAddress_.value());
}

void
HijackedThread::runToMarkerOrThrow(std::chrono::milliseconds timeout, const char* what) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int deliver = 0;
    bool first = true;
    for (;;) {
        thread_.resumeOrThrow(attach::Resume::ToSyscall, deliver);
        if (first) {
            dieHereIfAsked(std::string("call:") + what);
            first = false;
        }
        deliver = 0;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        attach::Stop stop = thread_.waitForStopOrThrow(std::max(left, std::chrono::milliseconds(1)));
        switch (stop.kind) {
        case attach::Stop::Kind::Exited:
            throw Error(ExitCode::NoSuchProcess,
                        fmt::format("process {} exited during attach", thread_.pid()));
        case attach::Stop::Kind::Syscall: {
            __ptrace_syscall_info info{};
            if (::ptrace(PTRACE_GET_SYSCALL_INFO, thread_.tid(), sizeof(info), &info) <= 0) {
                throw Error(ExitCode::Failure, describeErrno("PTRACE_GET_SYSCALL_INFO", errno));
            }
            if (info.op == PTRACE_SYSCALL_INFO_ENTRY && info.entry.nr == kMarkerSyscall &&
                info.instruction_pointer == (scratch_ + markerEnd_).value()) {
                inCall_ = false;
                dieHereIfAsked(std::string("marker:") + what);
                return;
            }
            break; // a syscall of the callee's own
        }
        case attach::Stop::Kind::Signal: {
            siginfo_t si{};
            ::ptrace(PTRACE_GETSIGINFO, thread_.tid(), nullptr, &si);
            bool synchronous = stop.signal == SIGSEGV || stop.signal == SIGBUS ||
                               stop.signal == SIGILL || stop.signal == SIGFPE || stop.signal == SIGTRAP;
            if (synchronous && si.si_code > 0) {
                // Raised by the kernel for our call: not the target's to see.
                inCall_ = false;
                throw Error(ExitCode::Failure,
                            fmt::format("remote call to {} in thread {} faulted ({} at {:#x}); the "
                                        "thread was put back",
                                        what, thread_.tid(), strsignal(stop.signal),
                                        reinterpret_cast<uint64_t>(si.si_addr)));
            }
            deliver = stop.signal; // the target's own signal, delivered as without us
            break;
        }
        case attach::Stop::Kind::Interrupt:
            if (stop.signal != SIGTRAP) {
                thread_.recordGroupStop(stop.signal);
            }
            break;
        }
    }
}

uint64_t
HijackedThread::callOrThrow(RemotePtr function, std::initializer_list<uint64_t> args,
                            std::chrono::milliseconds timeout, const char* what) {
    CallPlan plan = planCall(saved_.general, function, args);
    uint64_t landing = (scratch_ + landing_).value();
    memory_.writeOrThrow(plan.returnAddressSlot, &landing, sizeof(landing));
    writeControlField(offsetof(ScratchControl, inCall), uint32_t{1});
    attach::storeGeneralRegistersOrThrow(thread_.tid(), plan.regs);
    inCall_ = true;
    runToMarkerOrThrow(timeout, what);
    auto result = memory_.readOrThrow<uint64_t>(scratch_ + kScratchControlOffset +
                                                offsetof(ScratchControl, result));
    spdlog::debug("remote {}() = {:#x}", what, result);
    return result;
}

int64_t
HijackedThread::syscallOrThrow(long number, std::initializer_list<uint64_t> args) {
    writeControlField(offsetof(ScratchControl, inCall), uint32_t{1});
    attach::storeGeneralRegistersOrThrow(
        thread_.tid(), planSyscall(saved_.general, scratch_ + syscallEntry_, number, args));
    inCall_ = true;
    runToMarkerOrThrow(std::chrono::milliseconds(5000), "syscall");
    auto result = memory_.readOrThrow<int64_t>(scratch_ + kScratchControlOffset +
                                               offsetof(ScratchControl, result));
    spdlog::debug("remote syscall {} = {}", number, result);
    return result;
}

bool
HijackedThread::putBack() noexcept {
    if (putBack_) {
        return true;
    }
    putBack_ = true;
    if (!thread_.alive()) {
        return false;
    }
    if (inCall_ || !thread_.stopped()) {
        // Still inside our call (it timed out): its registers are not ours to
        // change now. It returns into the stub, which puts it back.
        spdlog::debug("thread {} left to finish its call and put itself back", thread_.tid());
        thread_.detach();
        return false;
    }
    bool ok = true;
    dieHereIfAsked("putback");
    try {
        if (!saved_.xstate.empty()) {
            attach::ThreadRegisters regs = saved_;
            regs.general = resumeRegistersFor(saved_.general);
            attach::storeRegistersOrThrow(thread_.tid(), regs);
        } else {
            attach::storeGeneralRegistersOrThrow(thread_.tid(), resumeRegistersFor(saved_.general));
        }
        if (errnoAddress_) {
            memory_.writeOrThrow(errnoAddress_, &savedErrno_, sizeof(savedErrno_));
        }
        if (scratch_) {
            writeControlField(offsetof(ScratchControl, inCall), uint32_t{0});
        }
    } catch (const std::exception& e) {
        ok = false;
        if (thread_.alive() && ::kill(thread_.pid(), 0) == 0) {
            spdlog::error("could not put thread {} back: {}", thread_.tid(), e.what());
        }
    }
    thread_.detach();
    return ok;
}

void
HijackedThread::unmapScratchOrThrow() {
    if (!scratch_) {
        return;
    }
    if (inCall_ || !thread_.stopped()) {
        throw Error(ExitCode::Failure, "the borrowed thread is still inside a call");
    }
    // errno and the extended state first: the munmap's own restore path
    // (memtap gone) puts back only what a syscall can change.
    if (!saved_.xstate.empty()) {
        attach::ThreadRegisters regs = saved_;
        regs.general = attach::fetchGeneralRegistersOrThrow(thread_.tid());
        attach::storeRegistersOrThrow(thread_.tid(), regs);
    }
    if (errnoAddress_) {
        memory_.writeOrThrow(errnoAddress_, &savedErrno_, sizeof(savedErrno_));
    }
    if (paddingSyscallOrThrow(SYS_munmap, {scratch_.value(), scratchSize_}) != 0) {
        throw Error(ExitCode::Failure,
                    fmt::format("munmap of the scratch in thread {} failed", thread_.tid()));
    }
    scratch_ = RemotePtr();
    scratchSize_ = 0;
}

void
HijackedThread::setFdToCloseOrThrow(int fd, bool closeNextResult) {
    if (closeNextResult) {
        // Not an fd until the syscall stores its result: the stub skips -1.
        writeControlField(offsetof(ScratchControl, result), static_cast<uint64_t>(-1));
    }
    writeControlField(offsetof(ScratchControl, fdToClosePlusOne), static_cast<int32_t>(fd + 1));
    writeControlField(offsetof(ScratchControl, closeResultFd), uint32_t{closeNextResult ? 1u : 0u});
}

} // namespace memtap::inject
