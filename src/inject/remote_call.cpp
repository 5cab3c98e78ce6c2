#include "inject/remote_call.h"

#include <signal.h>

#include <spdlog/spdlog.h>

#include "base/error.h"

namespace memtap::inject {
namespace {

constexpr uint64_t kRedZoneBytes = 128; // psABI 3.2.2
constexpr uint64_t kStackAlignment = 16;
constexpr uint64_t kDirectionFlag = 1u << 10; // EFLAGS.DF

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
    restore();
    thread_.detach();
}

void
HijackedThread::restore() noexcept {
    if (restored_ || !thread_.alive()) {
        return;
    }
    restored_ = true;
    try {
        attach::storeRegistersOrThrow(thread_.tid(), saved_);
    } catch (const std::exception& e) {
        spdlog::error("could not restore the registers of thread {}: {}", thread_.tid(), e.what());
    }
}

uint64_t
HijackedThread::callOrThrow(RemotePtr function, std::initializer_list<uint64_t> args,
                            std::chrono::milliseconds timeout, const char* what) {
    CallPlan plan = planCall(saved_.general, function, args);
    uint64_t sentinel = kReturnSentinel.value();
    memory_.writeOrThrow(plan.returnAddressSlot, &sentinel, sizeof(sentinel));
    attach::storeGeneralRegistersOrThrow(thread_.tid(), plan.regs);
    restored_ = false;

    attach::Stop stop = thread_.resumeAndWaitOrThrow(false, SIGSEGV, timeout);
    user_regs_struct after = attach::fetchGeneralRegistersOrThrow(thread_.tid());
    if (stop.kind != attach::Stop::Kind::Signal || after.rip != kReturnSentinel.value()) {
        throw Error(
            ExitCode::Failure,
            fmt::format("remote call to {} in thread {} faulted at {:#x}; the thread was restored", what,
                        thread_.tid(), after.rip));
    }
    spdlog::debug("remote {}() = {:#x}", what, after.rax);
    return after.rax;
}

int64_t
HijackedThread::syscallOrThrow(RemotePtr syscallInsn, long number,
                               std::initializer_list<uint64_t> args) {
    attach::storeGeneralRegistersOrThrow(thread_.tid(),
                                         planSyscall(saved_.general, syscallInsn, number, args));
    restored_ = false;
    attach::Stop stop = thread_.resumeAndWaitOrThrow(true, SIGTRAP, std::chrono::milliseconds(5000));
    user_regs_struct after = attach::fetchGeneralRegistersOrThrow(thread_.tid());
    if (stop.kind != attach::Stop::Kind::Signal || after.rip != syscallInsn.value() + 2) {
        throw Error(ExitCode::Failure,
                    fmt::format("remote syscall {} in thread {} did not complete (rip {:#x})", number,
                                thread_.tid(), after.rip));
    }
    spdlog::debug("remote syscall {} = {}", number, static_cast<int64_t>(after.rax));
    return static_cast<int64_t>(after.rax);
}

} // namespace memtap::inject
