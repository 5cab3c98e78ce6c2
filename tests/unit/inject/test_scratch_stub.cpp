// The return stub and the padding stub: decoded with Capstone, so a wrong
// byte in the hand-assembled code shows here rather than in a target; and
// the register arithmetic that puts a thread back.
#include <sys/syscall.h>
#include <sys/user.h>

#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attach/registers.h"
#include "inject/code_scan.h"
#include "inject/scratch_stub.h"

using memtap::RemotePtr;
using namespace memtap::inject;

namespace {

bool
contains(const std::vector<std::string>& lines, const std::string& text) {
    for (const auto& line : lines) {
        if (line.find(text) != std::string::npos) {
            return true;
        }
    }
    return false;
}

} // namespace

TEST_CASE("the return stub decodes to syscall, landing, marker and a full restore", "[stub]") {
    StubEntries entries{};
    auto code = buildStubCode(entries);
    auto lines = disassembleAll(code, RemotePtr(0));
    INFO([&] {
        std::string all;
        for (const auto& l : lines) {
            all += l + "\n";
        }
        return all;
    }());
    CHECK_FALSE(contains(lines, "(undecodable)"));
    CHECK(lines.front() == "syscall ");
    CHECK(entries.syscallEntry == 0);
    CHECK(entries.landing == 2);
    // landing stores rax into the control block's result field.
    CHECK(lines[1] ==
          "mov qword ptr [rip + 0x" +
              fmt::format("{:x}", kScratchControlOffset + offsetof(ScratchControl, result) - 9) +
              "], rax");
    CHECK(lines[2] == "mov eax, 0x27"); // getpid
    CHECK(lines[3] == "syscall ");
    CHECK(entries.markerEnd == 2 + 7 + 5 + 2);
    CHECK(contains(lines, "xrstor64"));
    CHECK(contains(lines, "popfq"));
    for (const char* reg : {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11",
                            "r12", "r13", "r14", "r15", "rsp"}) {
        CHECK(contains(lines, std::string("mov ") + reg + ", qword ptr [rip + "));
    }
    CHECK(lines.back().rfind("jmp qword ptr [rip + ", 0) == 0);
    CHECK(code.size() <= kScratchControlOffset);
}

TEST_CASE("the padding stub is a syscall, then the register restore, then its data", "[stub]") {
    user_regs_struct regs{};
    regs.rip = 0x401000;
    regs.rsp = 0x7ffc0000f000;
    regs.rbx = 0x1234;
    regs.eflags = 0x246;
    regs.orig_rax = static_cast<unsigned long long>(-1);
    auto stub = buildPaddingStub(regs);
    REQUIRE(stub.size() == kPaddingStubBytes);
    ScratchControl control{};
    std::memcpy(&control, stub.data() + kPaddingControlOffset, sizeof(control));
    CHECK(control.rip == 0x401000);
    CHECK(control.rsp == 0x7ffc0000f000);
    CHECK(control.rbx == 0x1234);
    CHECK(control.rflags == 0x246);
    // Decode only the code part: it ends with the jmp, zero padding follows.
    auto lines = disassembleAll(std::span(stub).first(kPaddingControlOffset), RemotePtr(0));
    CHECK(lines.front() == "syscall ");
    CHECK(lines[1] == "lea rsp, [rsp - 0x100]"); // below the red zone
    CHECK(contains(lines, "jmp qword ptr [rip + "));
    CHECK_FALSE(contains(lines, "xrstor"));
}

TEST_CASE("resume registers re-issue an interrupted syscall as the kernel restarts it", "[stub]") {
    user_regs_struct blocked{};
    blocked.rip = 0x7f0000001234;
    blocked.orig_rax = SYS_read;
    SECTION("-ERESTARTSYS: rewind onto `syscall`, rax = the syscall number") {
        blocked.rax = static_cast<unsigned long long>(-memtap::attach::kErestartSys);
        auto r = resumeRegistersFor(blocked);
        CHECK(r.rip == 0x7f0000001232);
        CHECK(r.rax == SYS_read);
        CHECK(r.orig_rax == static_cast<unsigned long long>(-1));
    }
    SECTION("-ERESTART_RESTARTBLOCK: restart_syscall") {
        blocked.orig_rax = SYS_nanosleep;
        blocked.rax = static_cast<unsigned long long>(-memtap::attach::kErestartRestartBlock);
        auto r = resumeRegistersFor(blocked);
        CHECK(r.rip == 0x7f0000001232);
        CHECK(r.rax == 219);
    }
    SECTION("a completed syscall (-EINTR) returns its result where it stopped") {
        blocked.rax = static_cast<unsigned long long>(-4);
        auto r = resumeRegistersFor(blocked);
        CHECK(r.rip == 0x7f0000001234);
        CHECK(r.rax == static_cast<unsigned long long>(-4));
    }
    SECTION("user mode: everything as it was") {
        blocked.orig_rax = static_cast<unsigned long long>(-1);
        blocked.rax = 42;
        auto r = resumeRegistersFor(blocked);
        CHECK(r.rip == 0x7f0000001234);
        CHECK(r.rax == 42);
    }
}

TEST_CASE("the XRSTOR mask comes from the kernel's xfeatures, tile data only if saved", "[stub]") {
    std::vector<uint8_t> area(2700, 0);
    uint32_t magic1 = 0x46505853;
    uint64_t xfeatures = 0x602e7 | (1ull << 17) | (1ull << 18);
    uint64_t xstateBv = 0x7;
    std::memcpy(area.data() + 464, &magic1, 4);
    std::memcpy(area.data() + 472, &xfeatures, 8);
    std::memcpy(area.data() + 512, &xstateBv, 8);
    CHECK(xrstorMaskFor(area) == (xfeatures & ~(1ull << 18)));
    xstateBv |= 1ull << 18;
    std::memcpy(area.data() + 512, &xstateBv, 8);
    CHECK(xrstorMaskFor(area) == xfeatures);
    CHECK(xrstorMaskFor(std::vector<uint8_t>(100)) == 0); // no header: restore nothing
}
