// The pure parts of src/inject: the safe-point rule, Capstone checks and the
// ABI of the remote call, without a target.
#include <sys/syscall.h>

#include <catch2/catch.hpp>
#include <vector>

#include "inject/code_scan.h"
#include "inject/remote_call.h"
#include "inject/safe_point.h"
#include "symbols/elf_file.h"

using memtap::RemotePtr;
using memtap::inject::judgeSafePoint;
using memtap::symbols::NativeFrame;
using memtap::symbols::UnwindResult;

namespace {

const std::vector<uint8_t> kSyscallTail = {0x48, 0x89, 0xc7, 0x0f, 0x05}; // mov rdi, rax; syscall

UnwindResult
stack(std::initializer_list<std::pair<const char*, const char*>> frames, bool complete = true) {
    UnwindResult result;
    for (auto [function, module] : frames) {
        result.frames.push_back(NativeFrame{RemotePtr(0x1000), function, module});
    }
    result.complete = complete;
    return result;
}

user_regs_struct
inSyscall(long number) {
    user_regs_struct regs{};
    regs.orig_rax = static_cast<unsigned long long>(number);
    regs.rax = static_cast<unsigned long long>(-memtap::attach::kErestartSys);
    return regs;
}

user_regs_struct
inUserMode() {
    user_regs_struct regs{};
    regs.orig_rax = static_cast<unsigned long long>(-1);
    return regs;
}

const char* kLibc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
const char* kPython = "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0";

} // namespace

TEST_CASE("a thread blocked in read with a clean stack is a safe point", "[safepoint]") {
    auto verdict = judgeSafePoint(inSyscall(SYS_read), kSyscallTail,
                                  stack({{"read", kLibc},
                                         {"_Py_read", kPython},
                                         {"_PyEval_EvalFrameDefault", kPython},
                                         {"Py_RunMain", kPython},
                                         {"__libc_start_call_main", kLibc},
                                         {"__libc_start_main@@GLIBC_2.34", kLibc},
                                         {"_start", "/root/.pyenv/versions/3.11.7/bin/python3.11"}}));
    CHECK(verdict.safe);
    CHECK(verdict.reason.empty());
}

TEST_CASE("a thread in a futex wait is never borrowed", "[safepoint]") {
    auto verdict =
        judgeSafePoint(inSyscall(SYS_futex), kSyscallTail,
                       stack({{"__futex_abstimed_wait_common", kLibc}, {"start_thread", kLibc}}));
    CHECK_FALSE(verdict.safe);
    CHECK(verdict.reason.find("syscall 202") != std::string::npos);
    CHECK_FALSE(memtap::inject::isPlainBlockingSyscall(SYS_futex));
    CHECK(memtap::inject::isPlainBlockingSyscall(SYS_epoll_wait));
    CHECK(memtap::inject::isPlainBlockingSyscall(SYS_clock_nanosleep));
}

TEST_CASE("the instruction before rip must be `syscall`", "[safepoint]") {
    std::vector<uint8_t> int80 = {0x90, 0xcd, 0x80}; // nop; int 0x80
    auto verdict = judgeSafePoint(inSyscall(SYS_read), int80, stack({{"read", kLibc}}));
    CHECK_FALSE(verdict.safe);
    CHECK(verdict.reason.find("syscall") != std::string::npos);
}

TEST_CASE("allocator and loader frames anywhere on the stack are unsafe", "[safepoint]") {
    for (const char* bad :
         {"malloc", "__libc_malloc", "_int_free", "free", "realloc", "dlopen", "_dl_open",
          "__GI___libc_free", "PyObject_Malloc", "_PyObject_Malloc", "PyMem_RawMalloc"}) {
        DYNAMIC_SECTION(bad) {
            auto verdict = judgeSafePoint(
                inUserMode(), {},
                stack({{bad, kLibc}, {"_PyEval_EvalFrameDefault", kPython}, {"start_thread", kLibc}}));
            CHECK_FALSE(verdict.safe);
        }
    }
}

TEST_CASE("an unknown libc function is unsafe; Python code in user mode is safe", "[safepoint]") {
    CHECK_FALSE(
        judgeSafePoint(inUserMode(), {}, stack({{"memcpy", kLibc}, {"start_thread", kLibc}})).safe);
    CHECK_FALSE(judgeSafePoint(inUserMode(), {}, stack({{"", kLibc}, {"start_thread", kLibc}})).safe);
    CHECK(judgeSafePoint(inUserMode(), {},
                         stack({{"_PyEval_EvalFrameDefault", kPython},
                                {"PyEval_EvalCode", kPython},
                                {"__libc_start_call_main", kLibc}}))
              .safe);
}

TEST_CASE("a stack that did not unwind completely proves nothing", "[safepoint]") {
    auto partial = stack({{"_PyEval_EvalFrameDefault", kPython}}, false);
    partial.error = "no CFI";
    auto verdict = judgeSafePoint(inUserMode(), {}, partial);
    CHECK_FALSE(verdict.safe);
    CHECK(verdict.reason.find("no CFI") != std::string::npos);
}

TEST_CASE("glibc alias names normalize to the public name", "[safepoint]") {
    CHECK(memtap::inject::normalizeLibcName("__GI___libc_read") == "read");
    CHECK(memtap::inject::normalizeLibcName("__libc_start_main@@GLIBC_2.34") == "start_main");
    CHECK(memtap::inject::normalizeLibcName("__select_nocancel") == "select");
    CHECK(memtap::inject::normalizeLibcName("pread64") == "pread64");
    CHECK(memtap::inject::normalizeLibcName("__clock_nanosleep") == "clock_nanosleep");
}

TEST_CASE("Capstone recognizes syscall and finds it in libc's syscall()", "[capstone]") {
    CHECK(memtap::inject::endsWithSyscallInstruction(kSyscallTail));
    CHECK_FALSE(memtap::inject::endsWithSyscallInstruction(std::vector<uint8_t>{0x0f}));
    CHECK_FALSE(memtap::inject::endsWithSyscallInstruction(std::vector<uint8_t>{0x90, 0xc3}));

    auto libc = memtap::symbols::ElfFile::openOrThrow("/lib/x86_64-linux-gnu/libc.so.6");
    auto symbol = libc.findSymbol("syscall");
    REQUIRE(symbol);
    auto code = libc.readAtVaddr(symbol->value, 64);
    REQUIRE(code);
    auto found = memtap::inject::findSyscallInstruction(*code, RemotePtr(symbol->value));
    REQUIRE(found);
    auto at = found->value() - symbol->value;
    CHECK((*code)[at] == 0x0f);
    CHECK((*code)[at + 1] == 0x05);
    CHECK(memtap::inject::describeInstruction(std::span(*code).subspan(at), *found) == "syscall ");
}

TEST_CASE("the remote call follows the x86-64 System V ABI", "[abi]") {
    for (uint64_t rsp : {0x7ffc0000f000ull, 0x7ffc0000f008ull, 0x7ffc0000effdull}) {
        DYNAMIC_SECTION("rsp " << rsp) {
            user_regs_struct interrupted{};
            interrupted.rsp = rsp;
            interrupted.rip = 0x401000;
            interrupted.orig_rax = SYS_read;
            interrupted.eflags = 0x246 | (1u << 10); // DF set by the interrupted code
            interrupted.r15 = 42;
            auto plan =
                memtap::inject::planCall(interrupted, RemotePtr(0x7f0000001000), {1, 2, 3, 4, 5, 6});
            CHECK(plan.regs.rsp == plan.returnAddressSlot.value());
            CHECK(plan.regs.rsp % 16 == 8);              // as after a `call`
            CHECK(plan.regs.rsp + 8 <= rsp - 128);       // red zone untouched
            CHECK(rsp - 128 - (plan.regs.rsp + 8) < 16); // and no more than alignment skipped
            CHECK(plan.regs.rip == 0x7f0000001000);
            CHECK(plan.regs.orig_rax == static_cast<unsigned long long>(-1)); // no syscall restart
            CHECK(plan.regs.rax == 0);
            CHECK((plan.regs.eflags & (1u << 10)) == 0);
            CHECK(plan.regs.rdi == 1);
            CHECK(plan.regs.rsi == 2);
            CHECK(plan.regs.rdx == 3);
            CHECK(plan.regs.rcx == 4);
            CHECK(plan.regs.r8 == 5);
            CHECK(plan.regs.r9 == 6);
            CHECK(plan.regs.r15 == 42); // callee-saved state passes through
        }
    }
    CHECK_THROWS(memtap::inject::planCall(user_regs_struct{}, RemotePtr(1), {1, 2, 3, 4, 5, 6, 7}));
}

TEST_CASE("a remote syscall puts its arguments where the kernel reads them", "[abi]") {
    user_regs_struct interrupted{};
    interrupted.rcx = 99;
    auto regs = memtap::inject::planSyscall(interrupted, RemotePtr(0x7f00000020aa), SYS_mmap,
                                            {1, 2, 3, 4, 5, 6});
    CHECK(regs.rax == SYS_mmap);
    CHECK(regs.rip == 0x7f00000020aa);
    CHECK(regs.rdi == 1);
    CHECK(regs.rsi == 2);
    CHECK(regs.rdx == 3);
    CHECK(regs.r10 == 4); // not rcx: `syscall` clobbers rcx with the return address
    CHECK(regs.r8 == 5);
    CHECK(regs.r9 == 6);
    CHECK(regs.orig_rax == static_cast<unsigned long long>(-1));
}
