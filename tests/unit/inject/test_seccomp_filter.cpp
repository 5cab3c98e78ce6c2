// The seccomp-filter evaluator on hand-assembled classic-BPF programs, the
// kernel's precedence for stacked filters, the verdict over memtap's planned
// syscalls, and the evaluator checked against the real kernel: a forked
// child installs each program and issues the syscall, and what happened to
// it must be what the evaluator predicted.
#include "inject/seccomp_filter.h"

#include <linux/audit.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstddef>
#include <vector>

using namespace memtap::inject;

namespace {

constexpr uint32_t kNrOffset = offsetof(seccomp_data, nr);
constexpr uint32_t kArchOffset = offsetof(seccomp_data, arch);
constexpr uint32_t
argLow(int n) {
    return offsetof(seccomp_data, args) + 8 * n; // little-endian: the low word first
}

seccomp_data
dataFor(long nr, std::array<uint64_t, 6> args = {}, uint32_t arch = AUDIT_ARCH_X86_64) {
    seccomp_data d{};
    d.nr = static_cast<int>(nr);
    d.arch = arch;
    for (int i = 0; i < 6; ++i) {
        d.args[i] = args[i];
    }
    return d;
}

SeccompProgram
allowAll() {
    return {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
}

// The shape libseccomp and systemd emit: check the arch, then the number.
SeccompProgram
actionOn(long nr, uint32_t action) {
    return {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArchOffset),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNrOffset),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
}

// Errno EACCES for `nr` when args[arg] has any bit of `mask` set.
SeccompProgram
jsetOnArg(long nr, int arg, uint32_t mask) {
    return {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNrOffset),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argLow(arg)),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, mask, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
}

// Scratch memory, X, the ALU and RET A: for `nr`, returns ERRNO with data
// (args[0] * 3 + 1) & 0xff if args[1] >= args[0] (JGE X), else ALLOW. M[5]
// holds args[0] across the reloads; NEG twice and TAX/TXA round-trip it.
SeccompProgram
scratchArithmetic(long nr) {
    return {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNrOffset),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argLow(0)),
        BPF_STMT(BPF_ST, 5),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argLow(1)),
        BPF_STMT(BPF_LDX | BPF_MEM, 5),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_X, 0, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_MEM, 5),
        BPF_STMT(BPF_ALU | BPF_NEG, 0),
        BPF_STMT(BPF_ALU | BPF_NEG, 0),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_ALU | BPF_ADD | BPF_X, 0), // 2 * a0
        BPF_STMT(BPF_ALU | BPF_ADD | BPF_X, 0), // 3 * a0
        BPF_STMT(BPF_ALU | BPF_ADD | BPF_K, 1),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xff),
        BPF_STMT(BPF_STX, 0),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_IMM, SECCOMP_RET_ERRNO),
        BPF_STMT(BPF_ALU | BPF_OR | BPF_X, 0),
        BPF_STMT(BPF_RET | BPF_A, 0),
    };
}

// ERRNO(E2BIG) when args[0] > 100 (JGT K), via a JA over a dead RET.
SeccompProgram
jgtWithJa(long nr) {
    return {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNrOffset),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 4),
        BPF_STMT(BPF_JMP | BPF_JA, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS), // jumped over
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argLow(0)),
        BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, 100, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | E2BIG),
    };
}

uint32_t
eval(const SeccompProgram& p, const seccomp_data& d) {
    return evaluateSeccompProgram(p, d);
}

} // namespace

TEST_CASE("allow-all allows everything", "[seccomp]") {
    for (long nr : {long(SYS_read), long(SYS_memfd_create), long(SYS_exit_group), 1000L}) {
        CHECK(eval(allowAll(), dataFor(nr)) == SECCOMP_RET_ALLOW);
    }
}

TEST_CASE("kill on memfd_create", "[seccomp]") {
    auto p = actionOn(SYS_memfd_create, SECCOMP_RET_KILL_PROCESS);
    CHECK(eval(p, dataFor(SYS_memfd_create)) == SECCOMP_RET_KILL_PROCESS);
    CHECK(eval(p, dataFor(SYS_mmap)) == SECCOMP_RET_ALLOW);
    CHECK(classifySeccompAction(eval(p, dataFor(SYS_memfd_create))) == SeccompAction::KillProcess);
    CHECK(describeSeccompAction(SECCOMP_RET_KILL_PROCESS) == "kill the process");
}

TEST_CASE("errno on memfd_create", "[seccomp]") {
    auto p = actionOn(SYS_memfd_create, SECCOMP_RET_ERRNO | EPERM);
    uint32_t ret = eval(p, dataFor(SYS_memfd_create));
    CHECK(ret == (SECCOMP_RET_ERRNO | EPERM));
    CHECK(classifySeccompAction(ret) == SeccompAction::Errno);
    CHECK(seccompErrno(ret) == EPERM);
    CHECK(describeSeccompAction(ret) == "fail it with EPERM");
    CHECK(seccompErrno(SECCOMP_RET_ERRNO | 0xffff) == 4095); // clamped to MAX_ERRNO
    CHECK(seccompErrno(SECCOMP_RET_TRACE) == ENOSYS);
    CHECK(eval(p, dataFor(SYS_openat)) == SECCOMP_RET_ALLOW);
}

TEST_CASE("the arch check kills a foreign arch", "[seccomp]") {
    auto p = actionOn(SYS_memfd_create, SECCOMP_RET_ERRNO | EPERM);
    CHECK(eval(p, dataFor(SYS_mmap, {}, AUDIT_ARCH_I386)) == SECCOMP_RET_KILL_PROCESS);
    CHECK(eval(p, dataFor(SYS_mmap, {}, AUDIT_ARCH_X86_64)) == SECCOMP_RET_ALLOW);
}

TEST_CASE("JSET on an argument", "[seccomp]") {
    auto p = jsetOnArg(SYS_mmap, 2, PROT_EXEC);
    CHECK(eval(p, dataFor(SYS_mmap, {0, 4096, PROT_READ})) == SECCOMP_RET_ALLOW);
    CHECK(eval(p, dataFor(SYS_mmap, {0, 4096, PROT_READ | PROT_EXEC})) == (SECCOMP_RET_ERRNO | EACCES));
    // The high word of the argument is not looked at.
    CHECK(eval(p, dataFor(SYS_mmap, {0, 4096, 0x100000000ull | PROT_READ})) == SECCOMP_RET_ALLOW);
    CHECK(eval(p, dataFor(SYS_munmap, {0, 4096, PROT_EXEC})) == SECCOMP_RET_ALLOW);
    SECTION("JSET with X") {
        SeccompProgram q = {
            BPF_STMT(BPF_LDX | BPF_IMM, 0x4),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argLow(0)),
            BPF_JUMP(BPF_JMP | BPF_JSET | BPF_X, 0, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        CHECK(eval(q, dataFor(SYS_read, {5})) == SECCOMP_RET_TRAP);
        CHECK(eval(q, dataFor(SYS_read, {3})) == SECCOMP_RET_ALLOW);
    }
}

TEST_CASE("unknown arguments are followed both ways", "[seccomp]") {
    auto p = jsetOnArg(SYS_mmap, 2, PROT_EXEC);
    auto d = dataFor(SYS_mmap, {0, 4096, PROT_READ});
    CHECK(evaluateSeccompProgram(p, d, unknownArg(2)) == (SECCOMP_RET_ERRNO | EACCES));
    CHECK(evaluateSeccompProgram(p, d, unknownArg(0) | unknownArg(1)) == SECCOMP_RET_ALLOW);
    // An unknown nr reaches every action in the program.
    auto kill = actionOn(SYS_memfd_create, SECCOMP_RET_KILL_PROCESS);
    CHECK(evaluateSeccompProgram(kill, dataFor(SYS_mmap), 0x1) == SECCOMP_RET_KILL_PROCESS);
    // RET A with an unknown A is the worst case.
    SeccompProgram retA = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argLow(0)), BPF_STMT(BPF_RET | BPF_A, 0)};
    CHECK(evaluateSeccompProgram(retA, dataFor(SYS_read), unknownArg(0)) == SECCOMP_RET_KILL_PROCESS);
    // A & 0 is known whatever A was.
    SeccompProgram masked = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argLow(0)),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    CHECK(evaluateSeccompProgram(masked, dataFor(SYS_read), unknownArg(0)) == SECCOMP_RET_ALLOW);
}

TEST_CASE("scratch memory, X, ALU and RET A", "[seccomp]") {
    auto p = scratchArithmetic(SYS_getppid);
    CHECK(eval(p, dataFor(SYS_getppid, {7, 7})) == (SECCOMP_RET_ERRNO | 22));     // 7*3+1
    CHECK(eval(p, dataFor(SYS_getppid, {7, 100})) == (SECCOMP_RET_ERRNO | 22));   // JGE X true
    CHECK(eval(p, dataFor(SYS_getppid, {7, 6})) == SECCOMP_RET_ALLOW);            // JGE X false
    CHECK(eval(p, dataFor(SYS_getppid, {100, 200})) == (SECCOMP_RET_ERRNO | 45)); // 301 & 0xff
    CHECK(eval(p, dataFor(SYS_getpid, {7, 7})) == SECCOMP_RET_ALLOW);
    auto q = jgtWithJa(SYS_getppid);
    CHECK(eval(q, dataFor(SYS_getppid, {100})) == SECCOMP_RET_ALLOW);
    CHECK(eval(q, dataFor(SYS_getppid, {101})) == (SECCOMP_RET_ERRNO | E2BIG));
    SECTION("the other ALU operations") {
        // ((((a0 - 2) * 4) / 2) << 3 >> 1) ^ 0xf0 | 0x1, and LEN is sizeof(seccomp_data).
        SeccompProgram r = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argLow(0)),
            BPF_STMT(BPF_ALU | BPF_SUB | BPF_K, 2),
            BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 4),
            BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 2),
            BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 3),
            BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 1),
            BPF_STMT(BPF_ALU | BPF_XOR | BPF_K, 0xf0),
            BPF_STMT(BPF_ALU | BPF_OR | BPF_K, 0x1),
            BPF_STMT(BPF_MISC | BPF_TAX, 0),
            BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
            BPF_STMT(BPF_ALU | BPF_ADD | BPF_X, 0),
            BPF_STMT(BPF_MISC | BPF_TAX, 0),
            BPF_STMT(BPF_MISC | BPF_TXA, 0),
            BPF_STMT(BPF_ALU | BPF_AND | BPF_K, SECCOMP_RET_DATA),
            BPF_STMT(BPF_ALU | BPF_OR | BPF_K, SECCOMP_RET_ERRNO),
            BPF_STMT(BPF_RET | BPF_A, 0),
        };
        uint32_t a = 12;
        uint32_t expected = (((((a - 2) * 4) / 2) << 3 >> 1) ^ 0xf0) | 0x1;
        expected = (expected + 64) & SECCOMP_RET_DATA;
        CHECK(eval(r, dataFor(SYS_read, {a})) == (SECCOMP_RET_ERRNO | expected));
    }
}

TEST_CASE("stacked filters: the kernel's precedence", "[seccomp]") {
    const uint32_t order[] = {SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP,
                              SECCOMP_RET_ERRNO | 1,    SECCOMP_RET_USER_NOTIF,  SECCOMP_RET_TRACE,
                              SECCOMP_RET_LOG,          SECCOMP_RET_ALLOW};
    for (size_t i = 0; i < std::size(order); ++i) {
        for (size_t j = 0; j < std::size(order); ++j) {
            INFO(i << " vs " << j);
            CHECK(isMoreRestrictive(order[i], order[j]) == (i < j));
            std::vector<SeccompProgram> stack = {actionOn(SYS_memfd_create, order[i]),
                                                 actionOn(SYS_memfd_create, order[j])};
            CHECK(evaluateSeccompFilters(stack, dataFor(SYS_memfd_create)) == order[std::min(i, j)]);
        }
    }
    SECTION("equal actions: the newest filter's data wins") {
        std::vector<SeccompProgram> stack = {actionOn(SYS_memfd_create, SECCOMP_RET_ERRNO | EPERM),
                                             actionOn(SYS_memfd_create, SECCOMP_RET_ERRNO | EACCES)};
        CHECK(evaluateSeccompFilters(stack, dataFor(SYS_memfd_create)) == (SECCOMP_RET_ERRNO | EACCES));
    }
    SECTION("each filter decides its own syscalls") {
        std::vector<SeccompProgram> stack = {actionOn(SYS_memfd_create, SECCOMP_RET_ERRNO | EPERM),
                                             actionOn(SYS_getpid, SECCOMP_RET_KILL_PROCESS)};
        CHECK(evaluateSeccompFilters(stack, dataFor(SYS_memfd_create)) == (SECCOMP_RET_ERRNO | EPERM));
        CHECK(evaluateSeccompFilters(stack, dataFor(SYS_getpid)) == SECCOMP_RET_KILL_PROCESS);
        CHECK(evaluateSeccompFilters(stack, dataFor(SYS_mmap)) == SECCOMP_RET_ALLOW);
    }
    CHECK(evaluateSeccompFilters({}, dataFor(SYS_memfd_create)) == SECCOMP_RET_ALLOW);
    CHECK(classifySeccompAction(0x00010000) == SeccompAction::KillProcess); // unknown action
}

TEST_CASE("what the kernel would reject evaluates to KILL_PROCESS", "[seccomp]") {
    auto d = dataFor(SYS_read, {0, 5});
    const uint32_t kill = SECCOMP_RET_KILL_PROCESS;
    CHECK(eval({}, d) == kill);
    CHECK(eval(SeccompProgram(BPF_MAXINSNS + 1, BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)), d) ==
          kill);
    // Jumps past the end.
    CHECK(eval({BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_read, 5, 0), BPF_STMT(BPF_RET | BPF_K, 0)}, d) ==
          kill);
    CHECK(eval({BPF_STMT(BPF_JMP | BPF_JA, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)}, d) ==
          kill);
    CHECK(eval({BPF_STMT(BPF_JMP | BPF_JA, 0xffffffffu), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)},
               d) == kill);
    // Falling off the end.
    CHECK(eval({BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0)}, d) == kill);
    // Loads past seccomp_data, unaligned, or of a size seccomp forbids.
    CHECK(eval({BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 64), BPF_STMT(BPF_RET | BPF_K, 0x7fff0000)}, d) ==
          kill);
    CHECK(eval({BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 2), BPF_STMT(BPF_RET | BPF_K, 0x7fff0000)}, d) ==
          kill);
    CHECK(eval({BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0), BPF_STMT(BPF_RET | BPF_K, 0x7fff0000)}, d) ==
          kill);
    CHECK(eval({BPF_STMT(BPF_LD | BPF_W | BPF_IND, 0), BPF_STMT(BPF_RET | BPF_K, 0x7fff0000)}, d) ==
          kill);
    // Scratch slot 16 does not exist; slot 0 unwritten is unknown.
    CHECK(eval({BPF_STMT(BPF_ST, 16), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)}, d) == kill);
    CHECK(eval({BPF_STMT(BPF_LD | BPF_MEM, 0), BPF_STMT(BPF_RET | BPF_A, 0)}, d) == kill);
    // Constant divisor 0 and shifts >= 32 are rejected; X == 0 at run time returns 0.
    CHECK(eval({BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)},
               d) == kill);
    CHECK(eval({BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 32), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)},
               d) == kill);
    CHECK(eval({BPF_STMT(BPF_LDX | BPF_IMM, 0), BPF_STMT(BPF_ALU | BPF_DIV | BPF_X, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)},
               d) == SECCOMP_RET_KILL_THREAD);
    // BPF_MOD is not on seccomp's list (seccomp_check_filter).
    CHECK(eval({BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, 3), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)},
               d) == kill);
}

TEST_CASE("the Seccomp: line of /proc/PID/task/TID/status", "[seccomp]") {
    auto s = parseSeccompStatus(
        "Name:\tpython3\nSeccomp:\t2\nSeccomp_filters:\t3\nSpeculation_Store_Bypass:\tx\n");
    CHECK(s.mode == SeccompMode::Filter);
    CHECK(s.filterCount == 3);
    CHECK(parseSeccompStatus("Seccomp:\t1\n").mode == SeccompMode::Strict);
    CHECK(parseSeccompStatus("Seccomp:\t0\n").mode == SeccompMode::None);
    CHECK_FALSE(parseSeccompStatus("Seccomp:\t0\n").filterCount.has_value());
    CHECK(parseSeccompStatus("Name:\tx\n").mode == SeccompMode::None); // no CONFIG_SECCOMP
    CHECK_THROWS_AS(parseSeccompStatus("Seccomp:\t7\n"), memtap::Error);
    // This process: whatever its mode, it is read; a thread that does not exist is an error.
    CHECK_NOTHROW(readSeccompModeOrThrow(getpid(), static_cast<pid_t>(syscall(SYS_gettid))));
    try {
        readSeccompModeOrThrow(getpid(), 0x3fffffff);
        FAIL("no error for a missing thread");
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::NoSuchProcess);
    }
}

TEST_CASE("verdicts over memtap's planned syscalls", "[seccomp]") {
    const auto& memfd = plannedAttachSyscalls(AttachRoute::Memfd);
    const auto& file = plannedAttachSyscalls(AttachRoute::File);
    const auto& loaded = plannedAttachSyscalls(AttachRoute::AlreadyLoaded);
    auto has = [](const std::vector<PlannedSyscall>& list, long nr) {
        return std::any_of(list.begin(), list.end(), [nr](const auto& s) { return s.nr == nr; });
    };
    CHECK(has(memfd, SYS_memfd_create));
    CHECK_FALSE(has(file, SYS_memfd_create));
    CHECK_FALSE(has(file, SYS_fchmod)); // memtap writes the file from outside
    CHECK(has(file, SYS_openat));       // the target only dlopens it
    CHECK_FALSE(has(loaded, SYS_openat));
    for (long nr : {SYS_mmap, SYS_clone3, SYS_clone, SYS_rseq, SYS_socket, SYS_bind, SYS_exit}) {
        CHECK(has(loaded, nr));
    }

    SECTION("no filter") {
        auto v = judgeSyscallsWith(SeccompMode::None, {}, memfd);
        CHECK(v.kind == SeccompVerdict::Kind::NoFilter);
        CHECK(v.allClear());
        CHECK_FALSE(seccompRefusal(1, 1, v).has_value());
    }
    SECTION("strict mode kills the thread on mmap") {
        auto v = judgeSyscallsWith(SeccompMode::Strict, {}, memfd);
        REQUIRE(v.fatal);
        CHECK(v.fatal->name == "mmap");
        CHECK(v.fatal->action == SECCOMP_RET_KILL_THREAD);
    }
    SECTION("kill on memfd_create: the memfd route is fatal, the file route is clear") {
        std::vector<SeccompProgram> filters = {actionOn(SYS_memfd_create, SECCOMP_RET_KILL_PROCESS)};
        auto v = judgeSyscallsWith(SeccompMode::Filter, filters, memfd);
        REQUIRE(v.fatal);
        CHECK(v.fatal->name == "memfd_create");
        CHECK(v.filterCount == 1);
        auto refusal = seccompRefusal(42, 43, v);
        REQUIRE(refusal);
        CHECK(refusal->code() == memtap::ExitCode::NotSupported);
        CHECK_THAT(refusal->what(), Catch::Contains("kill the process on memfd_create"));
        CHECK(judgeSyscallsWith(SeccompMode::Filter, filters, file).allClear());
    }
    SECTION("errno on memfd_create fails, and is handled when there is a fallback") {
        std::vector<SeccompProgram> filters = {actionOn(SYS_memfd_create, SECCOMP_RET_ERRNO | EPERM)};
        auto v = judgeSyscallsWith(SeccompMode::Filter, filters, memfd);
        CHECK_FALSE(v.fatal);
        REQUIRE(v.failing.size() == 1);
        CHECK(v.failing[0].name == "memfd_create");
        CHECK(seccompRefusal(1, 1, v).has_value());
        CHECK_FALSE(seccompRefusal(1, 1, v, true).has_value());
    }
    SECTION("clone3 failing with ENOSYS is tolerated (glibc falls back to clone), EPERM is not") {
        std::vector<SeccompProgram> enosys = {actionOn(SYS_clone3, SECCOMP_RET_ERRNO | ENOSYS)};
        CHECK(judgeSyscallsWith(SeccompMode::Filter, enosys, loaded).allClear());
        std::vector<SeccompProgram> eperm = {actionOn(SYS_clone3, SECCOMP_RET_ERRNO | EPERM)};
        auto v = judgeSyscallsWith(SeccompMode::Filter, eperm, loaded);
        REQUIRE(v.failing.size() == 1);
        CHECK(v.failing[0].name == "clone3");
    }
    SECTION("a rule on a known argument is decided; on an unknown one, the worst is taken") {
        // socket() only for AF_UNIX, as systemd's RestrictAddressFamilies=AF_UNIX does with
        // EAFNOSUPPORT.
        SeccompProgram unixOnly = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNrOffset),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 4),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argLow(0)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        std::vector<SeccompProgram> filters = {unixOnly};
        CHECK(judgeSyscallsWith(SeccompMode::Filter, filters, loaded).allClear());
        PlannedSyscall anySocket;
        anySocket.nr = SYS_socket;
        anySocket.name = "socket";
        CHECK(judgeSyscall(filters, anySocket) == (SECCOMP_RET_ERRNO | EAFNOSUPPORT));
        // A value set: every value is tried.
        anySocket.args[0] = SyscallArg::oneOf({AF_UNIX, AF_INET});
        CHECK(judgeSyscall(filters, anySocket) == (SECCOMP_RET_ERRNO | EAFNOSUPPORT));
        anySocket.args[0] = SyscallArg::known(AF_UNIX);
        CHECK(judgeSyscall(filters, anySocket) == SECCOMP_RET_ALLOW);
    }
    SECTION("MemoryDenyWriteExecute-style mmap rule does not trip dlopen") {
        // ERRNO(EPERM) for mmap with PROT_WRITE and PROT_EXEC together.
        SeccompProgram wx = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNrOffset),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 4),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argLow(2)),
            BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        std::vector<SeccompProgram> filters = {wx};
        CHECK(judgeSyscallsWith(SeccompMode::Filter, filters, memfd).allClear());
    }
}

// --- against the kernel -----------------------------------------------------

namespace {

enum class Outcome { Allowed, Errno, Killed, NotRun };

struct Observed {
    Outcome outcome = Outcome::NotRun;
    int err = 0;
};

// In a child: install `program`, issue getppid with `args` (getppid ignores
// its arguments, but the filter sees them), report through the exit status.
Observed
runInKernel(const SeccompProgram& program, std::array<uint64_t, 6> args) {
    pid_t child = ::fork();
    if (child == 0) {
        rlimit noCore{0, 0}; // a SIGSYS death would otherwise dump core
        ::setrlimit(RLIMIT_CORE, &noCore);
        sock_fprog fprog{static_cast<unsigned short>(program.size()),
                         const_cast<sock_filter*>(program.data())};
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
            ::_exit(255);
        }
        long r = ::syscall(SYS_getppid, args[0], args[1], args[2], args[3], args[4], args[5]);
        // Exit codes: 0 allowed, 1..254 the errno. _exit is on every filter's allow path below.
        ::_exit(r >= 0 ? 0 : (errno > 0 && errno < 255 ? errno : 254));
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    if (WIFSIGNALED(status)) {
        return {WTERMSIG(status) == SIGSYS ? Outcome::Killed : Outcome::NotRun, 0};
    }
    int code = WEXITSTATUS(status);
    if (code == 255) {
        return {Outcome::NotRun, 0};
    }
    return code == 0 ? Observed{Outcome::Allowed, 0} : Observed{Outcome::Errno, code};
}

Observed
predicted(const SeccompProgram& program, std::array<uint64_t, 6> args) {
    uint32_t ret = evaluateSeccompProgram(program, dataFor(SYS_getppid, args));
    switch (classifySeccompAction(ret)) {
    case SeccompAction::Allow:
    case SeccompAction::Log:
        return {Outcome::Allowed, 0};
    case SeccompAction::Errno:
        return {Outcome::Errno, seccompErrno(ret)};
    case SeccompAction::KillProcess:
    case SeccompAction::KillThread:
    case SeccompAction::Trap: // SIGSYS's default action ends the process too
        return {Outcome::Killed, 0};
    default:
        return {Outcome::NotRun, 0};
    }
}

} // namespace

TEST_CASE("the evaluator agrees with the kernel", "[seccomp][kernel]") {
    struct Case {
        const char* name;
        SeccompProgram program;
        std::vector<std::array<uint64_t, 6>> args;
    };
    std::vector<Case> cases = {
        {"kill", actionOn(SYS_getppid, SECCOMP_RET_KILL_PROCESS), {{}}},
        {"errno", actionOn(SYS_getppid, SECCOMP_RET_ERRNO | EPERM), {{}}},
        {"trap", actionOn(SYS_getppid, SECCOMP_RET_TRAP), {{}}},
        {"jset",
         jsetOnArg(SYS_getppid, 2, PROT_EXEC),
         {{0, 0, PROT_READ}, {0, 0, PROT_EXEC | PROT_READ}}},
        {"scratch", scratchArithmetic(SYS_getppid), {{7, 7}, {7, 6}, {100, 200}, {3, 0xffffffff}}},
        {"jgt+ja", jgtWithJa(SYS_getppid), {{100}, {101}, {0xffffffff}}},
    };
    int ran = 0;
    for (const auto& c : cases) {
        for (const auto& args : c.args) {
            Observed kernel = runInKernel(c.program, args);
            if (kernel.outcome == Outcome::NotRun) {
                WARN("could not install seccomp filter " << c.name << " in a child here");
                continue;
            }
            ++ran;
            Observed ours = predicted(c.program, args);
            INFO(c.name << " args " << args[0] << "," << args[1] << "," << args[2]);
            CHECK(static_cast<int>(ours.outcome) == static_cast<int>(kernel.outcome));
            CHECK(ours.err == kernel.err);
        }
    }
    CHECK(ran > 0);
}
