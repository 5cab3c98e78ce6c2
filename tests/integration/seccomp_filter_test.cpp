// Real targets under real seccomp filters: a Python parked target started by
// tests/targets/seccomp_launcher, one of its threads seized, its filters read
// back with PTRACE_SECCOMP_GET_FILTER and judged; the target must still be
// alive (and, where it may call getpid, answer) afterwards.
// Exits 77 where ptrace or PTRACE_SECCOMP_GET_FILTER is refused.
#define CATCH_CONFIG_RUNNER
#include <linux/audit.h>
#include <sys/syscall.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "attach/proc.h"
#include "attach/traced_thread.h"
#include "base/error.h"
#include "inject/seccomp_filter.h"
#include "target_process.h"

using namespace std::chrono_literals;
using memtap::attach::TracedThread;
using memtap::testing::TargetProcess;
namespace mi = memtap::inject;

namespace {

std::string
launcher() {
    const char* path = std::getenv("MEMTAP_TEST_SECCOMP_LAUNCHER");
    return path ? path : "seccomp_launcher";
}

std::vector<std::string>
underFilter(const std::string& modes) {
    return {launcher(), modes,
            "--",       memtap::testing::testPython(),
            "-u",       memtap::testing::parkedTargetScript(),
            "sleep"};
}

mi::PlannedSyscall
planned(long nr, const char* name, std::initializer_list<mi::SyscallArg> args = {}) {
    mi::PlannedSyscall s;
    s.nr = nr;
    s.name = name;
    s.cause = "test";
    size_t i = 0;
    for (const auto& a : args) {
        s.args[i++] = a;
    }
    return s;
}

// memfd_create(name, MFD_CLOEXEC) and an anonymous mmap, as memtap issues them.
std::vector<mi::PlannedSyscall>
memfdAndMmap() {
    using A = mi::SyscallArg;
    return {planned(SYS_memfd_create, "memfd_create", {A::unknown(), A::known(1)}),
            planned(SYS_mmap, "mmap",
                    {A::known(0), A::known(4096), A::known(3), A::known(0x22), A::known(~0ull),
                     A::known(0)})};
}

struct Expect {
    size_t filters;
    mi::SeccompAction memfd;
    int memfdErrno;
};

// Seizes `tid`, reads and judges; returns the verdicts of memfdAndMmap() and
// the full memfd route. Detaches before returning.
void
judgeUnderPtrace(pid_t pid, pid_t tid, const Expect& expect, const std::string& fatalOnMemfdRoute) {
    auto thread = TracedThread::seizeAndStopOrThrow(pid, tid, 5000ms);
    auto filters = mi::tryReadSeccompFiltersOrThrow(tid);
    REQUIRE(filters.has_value());
    CHECK(filters->size() == expect.filters);
    for (const auto& f : *filters) {
        CHECK(f.size() == 6); // the launcher's program, read back whole
    }
    auto status = memtap::attach::readWholeFile(fmt::format("/proc/{}/task/{}/status", pid, tid));
    REQUIRE(status);
    auto parsed = mi::parseSeccompStatus(*status);
    if (parsed.filterCount) {
        CHECK(static_cast<size_t>(*parsed.filterCount) == filters->size());
    }

    auto plan = memfdAndMmap();
    auto v = mi::judgeSyscalls(pid, tid, plan);
    REQUIRE(v.kind == mi::SeccompVerdict::Kind::Judged);
    REQUIRE(v.verdicts.size() == 2);
    CHECK(mi::classifySeccompAction(v.verdicts[0].action) == expect.memfd);
    CHECK(mi::seccompErrno(v.verdicts[0].action) == expect.memfdErrno);
    CHECK(v.verdicts[1].action == SECCOMP_RET_ALLOW);

    auto route = mi::judgeSyscalls(pid, tid, mi::plannedAttachSyscalls(mi::AttachRoute::Memfd));
    if (fatalOnMemfdRoute.empty()) {
        CHECK_FALSE(route.fatal);
    } else {
        REQUIRE(route.fatal);
        CHECK(route.fatal->name == fatalOnMemfdRoute);
        auto refusal = mi::seccompRefusal(pid, tid, route);
        REQUIRE(refusal);
        INFO(refusal->what());
        CHECK_THAT(refusal->what(), Catch::Contains(fatalOnMemfdRoute));
    }
    thread.detach();
}

void
requireAliveAndAnswering(TargetProcess& target, const std::map<std::string, std::string>& ready,
                         bool mayCallGetpid) {
    std::this_thread::sleep_for(100ms); // a kill would land at once; give it the chance
    REQUIRE(target.running());
    if (mayCallGetpid) { // the SIGUSR1 answer calls os.getpid()
        auto after = target.check();
        CHECK(after.at("state") == ready.at("state"));
        CHECK(std::stoull(after.at("counter")) > std::stoull(ready.at("counter")));
    }
}

} // namespace

TEST_CASE("kill on memfd_create: memfd_create kills, mmap is allowed", "[seccomp]") {
    TargetProcess target(underFilter("kill-memfd"));
    auto ready = memtap::testing::parseFacts(target.waitForLine("ready ", 20s));
    pid_t pid = target.pid();
    CHECK(mi::readSeccompModeOrThrow(pid, pid) == mi::SeccompMode::Filter);
    judgeUnderPtrace(pid, pid, {1, mi::SeccompAction::KillProcess, 0}, "memfd_create");
    requireAliveAndAnswering(target, ready, true);
}

TEST_CASE("errno on memfd_create: memfd_create fails with EPERM, nothing is fatal", "[seccomp]") {
    TargetProcess target(underFilter("errno-memfd"));
    auto ready = memtap::testing::parseFacts(target.waitForLine("ready ", 20s));
    pid_t pid = target.pid();
    judgeUnderPtrace(pid, pid, {1, mi::SeccompAction::Errno, EPERM}, "");
    requireAliveAndAnswering(target, ready, true);
}

TEST_CASE("kill on getpid, and another thread than the main one", "[seccomp]") {
    TargetProcess target(underFilter("kill-getpid"));
    auto ready = memtap::testing::parseFacts(target.waitForLine("ready ", 20s));
    pid_t pid = target.pid();
    pid_t other = 0;
    for (pid_t tid : memtap::attach::listThreads(pid)) {
        if (tid != pid) {
            other = tid;
        }
    }
    REQUIRE(other != 0); // the ticker thread inherited the filter too
    judgeUnderPtrace(pid, other, {1, mi::SeccompAction::Allow, 0}, "getpid");
    requireAliveAndAnswering(target, ready, false);
}

TEST_CASE("stacked filters are read oldest first and combined", "[seccomp]") {
    TargetProcess target(underFilter("errno-memfd,kill-getpid,allow"));
    auto ready = memtap::testing::parseFacts(target.waitForLine("ready ", 20s));
    pid_t pid = target.pid();
    {
        auto thread = TracedThread::seizeAndStopOrThrow(pid, pid, 5000ms);
        auto filters = mi::tryReadSeccompFiltersOrThrow(pid);
        REQUIRE(filters);
        REQUIRE(filters->size() == 3);
        seccomp_data memfd{};
        memfd.nr = SYS_memfd_create;
        memfd.arch = AUDIT_ARCH_X86_64;
        seccomp_data getpid = memfd;
        getpid.nr = SYS_getpid;
        // Index 0 is the first installed (errno-memfd), 2 the newest (allow).
        CHECK(mi::evaluateSeccompProgram((*filters)[0], memfd) == (SECCOMP_RET_ERRNO | EPERM));
        CHECK(mi::evaluateSeccompProgram((*filters)[1], getpid) == SECCOMP_RET_KILL_PROCESS);
        CHECK(mi::evaluateSeccompProgram((*filters)[2], memfd) == SECCOMP_RET_ALLOW);
        CHECK(mi::evaluateSeccompFilters(*filters, memfd) == (SECCOMP_RET_ERRNO | EPERM));
        CHECK(mi::evaluateSeccompFilters(*filters, getpid) == SECCOMP_RET_KILL_PROCESS);
        auto file = mi::judgeSyscalls(pid, pid, mi::plannedAttachSyscalls(mi::AttachRoute::File));
        REQUIRE(file.fatal);
        CHECK(file.fatal->name == "getpid");
        thread.detach();
    }
    requireAliveAndAnswering(target, ready, false);
}

TEST_CASE("the filters of a thread not stopped by us cannot be read", "[seccomp]") {
    TargetProcess target(underFilter("errno-memfd"));
    auto ready = memtap::testing::parseFacts(target.waitForLine("ready ", 20s));
    try {
        mi::tryReadSeccompFiltersOrThrow(target.pid());
        FAIL("PTRACE_SECCOMP_GET_FILTER worked on a thread we do not trace");
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::Failure);
        CHECK_THAT(e.hint(), Catch::Contains("ptrace-stopped"));
    }
    requireAliveAndAnswering(target, ready, true);
}

TEST_CASE("no filter: nothing to read, everything allowed", "[seccomp]") {
    TargetProcess target(
        {memtap::testing::testPython(), "-u", memtap::testing::parkedTargetScript(), "sleep"});
    target.waitForLine("ready ", 20s);
    pid_t pid = target.pid();
    if (mi::readSeccompModeOrThrow(getpid(), getpid()) != mi::SeccompMode::None) {
        WARN("this test runs under seccomp itself; its children inherit the filter");
        return;
    }
    CHECK(mi::readSeccompModeOrThrow(pid, pid) == mi::SeccompMode::None);
    auto v = mi::judgeSyscalls(pid, pid, mi::plannedAttachSyscalls(mi::AttachRoute::Memfd));
    CHECK(v.kind == mi::SeccompVerdict::Kind::NoFilter);
    CHECK(v.allClear());
}

// Can this process read a seccomp filter at all? Asked of a real filtered
// target, so the answer is the one the tests would get. Anything but the
// kernel's refusal (no launcher, no ready line) is a failure, not a skip.
static int
probeFilters() {
    try {
        TargetProcess target(underFilter("allow"));
        target.waitForLine("ready ", 20s);
        auto thread = TracedThread::seizeAndStopOrThrow(target.pid(), target.pid(), 5000ms);
        int err = 0;
        if (!mi::tryReadSeccompFiltersOrThrow(target.pid(), &err)) {
            std::fprintf(stderr,
                         "SKIP: PTRACE_SECCOMP_GET_FILTER refused: %s (needs CAP_SYS_ADMIN, memtap "
                         "outside seccomp, CONFIG_CHECKPOINT_RESTORE)\n",
                         std::strerror(err));
            return 77;
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "FAIL: could not start or seize a filtered target: %s\n", e.what());
        return 1;
    }
}

int
main(int argc, char** argv) {
    if (!memtap::testing::ptraceIsPermitted()) {
        std::fprintf(stderr, "SKIP: ptrace is not permitted here (need root or CAP_SYS_PTRACE)\n");
        return 77;
    }
    if (int probe = probeFilters(); probe != 0) {
        return probe;
    }
    return Catch::Session().run(argc, argv);
}
