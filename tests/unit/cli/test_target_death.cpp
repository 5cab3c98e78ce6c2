// How a watched target died, from a wait status and from /proc/PID/stat text;
// and the same read from a real zombie child of this test.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "attach/proc.h"
#include "cli/target_death.h"

using namespace memtap::cli;

namespace {

// A /proc/PID/stat line: pid, (comm), state, then fields 4..52 where field 52
// (exit_code) is `exitCode`.
std::string
statLine(const std::string& comm, char state, int exitCode, int fields = 52) {
    std::string line = "1234 (" + comm + ") " + state;
    for (int field = 4; field <= fields; ++field) {
        line += " " + std::to_string(field == 52 ? exitCode : field);
    }
    return line + "\n";
}

} // namespace

TEST_CASE("a wait status in words", "[target_death]") {
    CHECK(describeWaitStatus(SIGKILL) == "killed by signal 9 (SIGKILL)");
    CHECK(describeWaitStatus(3 << 8) == "exited with code 3");
    CHECK(describeWaitStatus(0) == "exited with code 0");
    CHECK(describeWaitStatus(SIGSEGV | 0x80) == "killed by signal 11 (SIGSEGV), core dumped");
}

TEST_CASE("a zombie's wait status is field 52 of /proc/PID/stat", "[target_death]") {
    CHECK(zombieWaitStatus(statLine("python3", 'Z', 9)) == 9);
    // The command name may hold spaces and parentheses.
    CHECK(zombieWaitStatus(statLine("my (odd) name) Z", 'Z', 768)) == 768);
    // Running, or a kernel without field 52: nothing to read.
    CHECK(!zombieWaitStatus(statLine("python3", 'S', 9)));
    CHECK(!zombieWaitStatus(statLine("python3", 'Z', 9, 44)));
    CHECK(!zombieWaitStatus("garbage"));
}

TEST_CASE("the death of a real child, read before it is reaped", "[target_death]") {
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    auto start = memtap::attach::tryReadProcessStartTime(child);
    REQUIRE(start);
    CHECK(!tryDescribeDeath(child, *start)); // alive
    kill(child, SIGKILL);
    // Wait until it is a zombie, without reaping it.
    siginfo_t info{};
    REQUIRE(waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) == 0);
    CHECK(tryDescribeDeath(child, *start) == std::string("killed by signal 9 (SIGKILL)"));
    // Another start time: a reused PID, not our process.
    CHECK(tryDescribeDeath(child, *start + 1) == std::string("exited (status unknown to memtap)"));
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(tryDescribeDeath(child, *start) == std::string("exited (status unknown to memtap)"));
}
