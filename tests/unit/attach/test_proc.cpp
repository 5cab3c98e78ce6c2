// /proc parsing of src/attach.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "attach/proc.h"
#include "base/error.h"

using memtap::attach::ThreadSyscall;

TEST_CASE("/proc/PID/task/TID/syscall lines parse into their three kinds", "[proc]") {
    auto running = memtap::attach::parseThreadSyscall("running\n");
    CHECK(running.kind == ThreadSyscall::Kind::Running);

    auto blocked = memtap::attach::parseThreadSyscall(
        "232 0x3 0x7ffd1 0x80 0xffffffff 0x0 0x8 0x7ffd2e5a0ad8 0x7f3c1a2f4e2e\n");
    CHECK(blocked.kind == ThreadSyscall::Kind::InSyscall);
    CHECK(blocked.number == 232);
    CHECK(blocked.stackPointer.value() == 0x7ffd2e5a0ad8);
    CHECK(blocked.programCounter.value() == 0x7f3c1a2f4e2e);

    auto outside = memtap::attach::parseThreadSyscall("-1 0x7ffd2e5a0ad8 0x7f3c1a2f4e2e\n");
    CHECK(outside.kind == ThreadSyscall::Kind::BlockedOutsideSyscall);

    CHECK(memtap::attach::parseThreadSyscall("").kind == ThreadSyscall::Kind::Unknown);
}

TEST_CASE("process facts come from /proc/PID/status", "[proc]") {
    auto self = memtap::attach::readProcessInfoOrThrow(::getpid());
    CHECK(self.pid == ::getpid());
    CHECK(self.state == 'R');
    CHECK(self.effectiveUid == ::geteuid());
    CHECK(self.threads >= 1);
    CHECK(memtap::attach::listThreads(::getpid()).size() == static_cast<size_t>(self.threads));
    CHECK(memtap::attach::countOpenFds(::getpid()) >= 3);
}

TEST_CASE("a PID that does not exist is NoSuchProcess", "[proc]") {
    try {
        memtap::attach::readProcessInfoOrThrow(4194000);
        FAIL("expected an error");
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::NoSuchProcess);
        CHECK(std::string(e.what()) == "no process with PID 4194000");
    }
}
