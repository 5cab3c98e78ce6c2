// attach -> status -> detach against real interpreters parked in every state
// the safe-point rule must handle, checked from inside the target.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "attach/proc.h"
#include "base/error.h"
#include "cli/target_status.h"
#include "inject/injector.h"
#include "target_process.h"

using namespace std::chrono_literals;
using memtap::testing::TargetProcess;

namespace {

std::vector<std::string>
targetArgv(const std::string& mode) {
    return {memtap::testing::testPython(), "-u", memtap::testing::parkedTargetScript(), mode};
}

memtap::inject::AttachOptions
options() {
    memtap::inject::AttachOptions o;
    o.timeout = 10s;
    return o;
}

uint64_t
agentNumber(const memtap::cli::TargetStatus& status, const char* key) {
    auto it = status.agent.find(key);
    REQUIRE(it != status.agent.end());
    return std::stoull(it->second);
}

// The full cycle on one target, and the checks from inside it afterwards.
void
attachDetachAndVerify(TargetProcess& target, const std::map<std::string, std::string>& ready) {
    auto result = memtap::inject::attachOrThrow(target.pid(), options());
    CHECK_FALSE(result.alreadyAttached);
    INFO("attach took " << result.latency.count() << " us, longest stop "
                        << result.longestThreadStop.count() << " us");

    auto status = memtap::cli::readTargetStatusOrThrow(target.pid());
    REQUIRE(status.attached);
    CHECK(status.agent.at("hooks") == "installed");
    // The target answers while attached, and its answer (ctypes, listdir, a
    // sorted repr of 2000 items) makes thousands of allocator calls.
    auto during = target.check();
    CHECK(during.at("state") == ready.at("state"));
    CHECK(agentNumber(memtap::cli::readTargetStatusOrThrow(target.pid()), "allocations_seen") >= 64);

    memtap::inject::detachOrThrow(target.pid(), 10s);
    CHECK_FALSE(memtap::cli::readTargetStatusOrThrow(target.pid()).attached);

    auto after = target.check();
    CHECK(after.at("alloc") == ready.at("alloc")); // PyMem_GetAllocator, all three domains
    CHECK(after.at("threads") == ready.at("threads"));
    CHECK(after.at("fds") == ready.at("fds"));
    CHECK(after.at("state") == ready.at("state"));
    auto later = target.check();
    CHECK(std::stoull(later.at("counter")) >= std::stoull(after.at("counter"))); // still running
    CHECK(target.running());
}

} // namespace

TEST_CASE("attach and detach leave the target as it was, in every parked state", "[attach]") {
    for (const char* mode :
         {"sleep", "read", "select", "accept", "lockwait", "busy_c", "allocating", "spin"}) {
        DYNAMIC_SECTION("mode " << mode) {
            TargetProcess target(targetArgv(mode));
            auto ready = memtap::testing::parseFacts(target.waitForLine("ready ", 20s));
            attachDetachAndVerify(target, ready);
        }
    }
}

TEST_CASE("20 attach/detach cycles on one busy target, reusing the dormant agent", "[attach][cycles]") {
    TargetProcess target(targetArgv("allocating"));
    auto ready = memtap::testing::parseFacts(target.waitForLine("ready ", 20s));
    int reused = 0;
    for (int i = 0; i < 20; ++i) {
        auto result = memtap::inject::attachOrThrow(target.pid(), options());
        REQUIRE_FALSE(result.alreadyAttached);
        reused += result.reusedAgent ? 1 : 0;
        REQUIRE(memtap::cli::readTargetStatusOrThrow(target.pid()).attached);
        memtap::inject::detachOrThrow(target.pid(), 10s);
    }
    CHECK(reused == 19); // loaded once, restarted 19 times
    auto after = target.check();
    CHECK(after.at("alloc") == ready.at("alloc"));
    CHECK(after.at("threads") == ready.at("threads"));
    CHECK(after.at("fds") == ready.at("fds"));
    CHECK(after.at("state") == ready.at("state"));
}

TEST_CASE("a second attach reports the running agent and changes nothing", "[attach]") {
    TargetProcess target(targetArgv("sleep"));
    target.waitForLine("ready ", 20s);
    REQUIRE_FALSE(memtap::inject::attachOrThrow(target.pid(), options()).alreadyAttached);
    CHECK(memtap::inject::attachOrThrow(target.pid(), options()).alreadyAttached);
    memtap::inject::detachOrThrow(target.pid(), 10s);
}

TEST_CASE("a target whose threads all wait in futex times out and is left alone", "[attach][badinput]") {
    TargetProcess target(targetArgv("futexonly"));
    auto ready = memtap::testing::parseFacts(target.waitForLine("ready ", 20s));
    // "ready" is printed just before the futex wait: wait until it is in it (futex = 202).
    for (int i = 0;
         i < 500 && memtap::attach::readThreadSyscall(target.pid(), target.pid()).number != 202; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(memtap::attach::readThreadSyscall(target.pid(), target.pid()).number == 202);
    auto o = options();
    o.timeout = 1500ms;
    auto started = std::chrono::steady_clock::now();
    try {
        memtap::inject::attachOrThrow(target.pid(), o);
        FAIL("attach should have timed out");
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::Timeout);
        CHECK(std::string(e.what()).find("safe point") != std::string::npos);
    }
    CHECK(std::chrono::steady_clock::now() - started < 5s);
    CHECK(memtap::attach::readProcessInfoOrThrow(target.pid()).tracerPid == 0);
    CHECK(target.running());
}

TEST_CASE("a stopped process is refused and left stopped", "[attach][badinput]") {
    TargetProcess target(targetArgv("sleep"));
    target.waitForLine("ready ", 20s);
    ::kill(target.pid(), SIGSTOP);
    for (int i = 0; i < 200 && memtap::attach::readProcessInfoOrThrow(target.pid()).state != 'T'; ++i) {
        std::this_thread::sleep_for(5ms);
    }
    try {
        memtap::inject::attachOrThrow(target.pid(), options());
        FAIL("attach should refuse a stopped process");
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::NotSupported);
        CHECK(std::string(e.what()).find("stopped") != std::string::npos);
    }
    CHECK(memtap::attach::readProcessInfoOrThrow(target.pid()).state == 'T');
    ::kill(target.pid(), SIGCONT);
}

TEST_CASE("an unprivileged user gets permission denied with a hint", "[attach][badinput]") {
    TargetProcess target(targetArgv("sleep"));
    target.waitForLine("ready ", 20s);
    if (::geteuid() != 0) {
        SUCCEED("not root: cannot switch to another user here");
        return;
    }
    pid_t child = ::fork();
    if (child == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
            ::_exit(10);
        }
        try {
            memtap::inject::attachOrThrow(target.pid(), options());
            ::_exit(11);
        } catch (const memtap::Error& e) {
            bool hinted = e.hint().find("root") != std::string::npos;
            ::_exit(e.code() == memtap::ExitCode::PermissionDenied && hinted ? 0 : 12);
        } catch (...) {
            ::_exit(13);
        }
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(target.running());
}
