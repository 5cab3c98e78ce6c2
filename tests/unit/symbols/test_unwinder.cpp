// The unwinder against real interpreters stopped with ptrace, the way the
// attach layer will hand threads to it. Tagged [ptrace]: run as its own ctest
// entry, which exits 77 (skipped) where ptrace is not permitted.
#include <catch2/catch.hpp>

#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "base/error.h"
#include "spawned_process.h"
#include "symbols/unwinder.h"
#include "test_pythons.h"

using memtap::test::SpawnedProcess;
using namespace memtap::symbols;

namespace {

// Exit 77 (ctest SKIP_RETURN_CODE) when this environment forbids ptrace, e.g.
// a container without CAP_SYS_PTRACE or Yama's ptrace_scope = 3.
void
skipUnlessPtraceAllowed() {
    SpawnedProcess probe({"/bin/sh", "-c", "echo ready; exec sleep 100"});
    REQUIRE(probe.waitReady());
    if (::ptrace(PTRACE_SEIZE, probe.pid(), nullptr, nullptr) != 0) {
        int err = errno;
        std::fprintf(stderr, "SKIP: %s\n",
                     memtap::describeErrno("PTRACE_SEIZE not permitted", err).c_str());
        probe.killAndReap();
        std::exit(77);
    }
    // Killing the probe ends the tracing as well.
}

// Owns a ptrace-stopped thread: PTRACE_SEIZE + PTRACE_INTERRUPT, detached on scope exit.
class StoppedThread {
public:
    explicit StoppedThread(pid_t tid) : tid_(tid) {
        REQUIRE(::ptrace(PTRACE_SEIZE, tid_, nullptr, nullptr) == 0);
        seized_ = true;
        REQUIRE(::ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) == 0);
        // Bounded wait for the stop (5 s).
        for (int i = 0; i < 500; ++i) {
            int status = 0;
            pid_t r = ::waitpid(tid_, &status, WNOHANG | __WALL);
            REQUIRE(r >= 0);
            if (r == tid_) {
                REQUIRE(WIFSTOPPED(status));
                REQUIRE(::ptrace(PTRACE_GETREGS, tid_, nullptr, &regs_) == 0);
                return;
            }
            ::usleep(10000);
        }
        FAIL("thread " << tid_ << " did not stop within 5 s");
    }
    StoppedThread(const StoppedThread&) = delete;
    StoppedThread& operator=(const StoppedThread&) = delete;
    ~StoppedThread() {
        if (seized_) {
            ::ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
        }
    }
    const user_regs_struct& regs() const { return regs_; }

private:
    pid_t tid_;
    bool seized_ = false;
    user_regs_struct regs_{};
};

std::string
describe(const UnwindResult& result) {
    std::string text;
    for (const NativeFrame& frame : result.frames) {
        text += fmt::format("  {} {} ({})\n", frame.pc, frame.function.empty() ? "??" : frame.function,
                            frame.module);
    }
    return text + (result.complete ? "  complete\n" : "  incomplete: " + result.error + "\n");
}

bool
hasFunction(const UnwindResult& result, std::string_view part) {
    for (const NativeFrame& frame : result.frames) {
        if (frame.function.find(part) != std::string::npos) {
            return true;
        }
    }
    return false;
}

void
checkParkedPython(const std::string& python, const std::string& label) {
    INFO(label << " at " << python);
    SpawnedProcess child(memtap::test::parkedPython(python));
    REQUIRE(child.waitReady());
    REQUIRE(child.waitInSyscall(memtap::test::sleepSyscalls()));

    auto t0 = std::chrono::steady_clock::now();
    Unwinder unwinder = Unwinder::createOrThrow(child.pid());
    auto t1 = std::chrono::steady_clock::now();
    StoppedThread stopped(child.pid());
    UnwindResult first = unwinder.unwind(child.pid(), stopped.regs());
    auto t2 = std::chrono::steady_clock::now();
    constexpr int kRepeats = 20;
    UnwindResult again;
    for (int i = 0; i < kRepeats; ++i) {
        again = unwinder.unwind(child.pid(), stopped.regs());
    }
    auto t3 = std::chrono::steady_clock::now();

    using us = std::chrono::microseconds;
    std::cout << fmt::format(
        "unwind {}: create {} us, first unwind {} us, then {} us/unwind, {} frames\n", label,
        std::chrono::duration_cast<us>(t1 - t0).count(), std::chrono::duration_cast<us>(t2 - t1).count(),
        std::chrono::duration_cast<us>(t3 - t2).count() / kRepeats, first.frames.size());
    INFO(describe(first));
    CHECK(first.complete); // parked in sleep: every frame has CFI down to _start
    CHECK(first.frames.size() >= 3);
    CHECK(first.frames.front().pc.value() == stopped.regs().rip);
    CHECK(hasFunction(first, "sleep"));
    CHECK(hasFunction(first, "PyEval"));
    // Unwinding again gives the same stack (no state leaks between calls).
    CHECK(again.frames.size() == first.frames.size());
    CHECK(again.complete == first.complete);

    UnwindResult limited = unwinder.unwind(child.pid(), stopped.regs(), 2);
    CHECK(limited.frames.size() == 2);
    CHECK_FALSE(limited.complete);
    CHECK_FALSE(limited.error.empty());
}

} // namespace

TEST_CASE("Unwinder: pyenv 3.11.7 parked in time.sleep", "[ptrace][unwind]") {
    skipUnlessPtraceAllowed();
    const std::string python = "/root/.pyenv/versions/3.11.7/bin/python3";
    if (::access(python.c_str(), X_OK) != 0) {
        WARN("no " << python);
        return;
    }
    checkParkedPython(python, "3.11.7");
}

TEST_CASE("Unwinder: Debian's static, stripped python3.11", "[ptrace][unwind]") {
    skipUnlessPtraceAllowed();
    const std::string python = "/usr/bin/python3.11";
    if (::access(python.c_str(), X_OK) != 0) {
        WARN("no " << python);
        return;
    }
    checkParkedPython(python, "debian-python3.11");
}

TEST_CASE("Unwinder: every test interpreter", "[ptrace][unwind]") {
    skipUnlessPtraceAllowed();
    for (const TestPython& python : testPythons()) {
        checkParkedPython(python.path, python.name);
    }
}

TEST_CASE("Unwinder::createOrThrow reports a missing process", "[ptrace][unwind]") {
    CHECK_THROWS_AS(Unwinder::createOrThrow(5'000'000), memtap::Error); // above PID_MAX_LIMIT
}
