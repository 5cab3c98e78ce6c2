// uid_map parsing and mapping (src/attach/user_namespace.h), on the contents
// the kernel writes for the cases memtap meets.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "attach/user_namespace.h"
#include "base/error.h"

using memtap::attach::mapUidInto;
using memtap::attach::parseUidMapOrThrow;

TEST_CASE("the initial namespace maps every uid to itself", "[userns]") {
    // The kernel pads the columns with %10u (kernel/user_namespace.c, uid_m_show).
    auto map = parseUidMapOrThrow("         0          0 4294967295\n");
    REQUIRE(map.size() == 1);
    CHECK(mapUidInto(map, 0) == 0u);
    CHECK(mapUidInto(map, 1000) == 1000u);
    CHECK(mapUidInto(map, 4294967294u) == 4294967294u);
}

TEST_CASE("unshare --map-root-user by nobody: only 65534 is mapped, to 0", "[userns]") {
    auto map = parseUidMapOrThrow("         0      65534          1\n");
    REQUIRE(map.size() == 1);
    CHECK(mapUidInto(map, 65534) == 0u);
    // Host root has no mapping: the agent sees it as the overflow uid.
    CHECK_FALSE(mapUidInto(map, 0).has_value());
    CHECK_FALSE(mapUidInto(map, 65535).has_value());
    CHECK_FALSE(mapUidInto(map, 65533).has_value());
}

TEST_CASE("a container with subuids: several ranges, ends exclusive", "[userns]") {
    auto map = parseUidMapOrThrow("         0       1000          1\n"
                                  "         1     100000      65536\n");
    REQUIRE(map.size() == 2);
    CHECK(mapUidInto(map, 1000) == 0u);
    CHECK(mapUidInto(map, 100000) == 1u);
    CHECK(mapUidInto(map, 165535) == 65536u);
    CHECK_FALSE(mapUidInto(map, 165536).has_value());
    CHECK_FALSE(mapUidInto(map, 99999).has_value());
    CHECK_FALSE(mapUidInto(map, 0).has_value());
}

TEST_CASE("an empty map (not written yet) maps nothing", "[userns]") {
    auto map = parseUidMapOrThrow("");
    CHECK(map.empty());
    CHECK_FALSE(mapUidInto(map, 0).has_value());
}

TEST_CASE("a sibling namespace's outside column reads as (uid_t)-1", "[userns]") {
    auto map = parseUidMapOrThrow("         0 4294967295      65536\n");
    REQUIRE(map.size() == 1);
    CHECK_FALSE(mapUidInto(map, 0).has_value());
    CHECK_FALSE(mapUidInto(map, 1000).has_value());
}

TEST_CASE("malformed uid_map lines are errors, not guesses", "[userns]") {
    for (const char* bad :
         {"0 0\n", "0 0 x\n", "a 0 1\n", "0 0 1 7\n", "0 0 0\n", "-1 0 1\n", "4294967295 0 2\n"}) {
        INFO(bad);
        CHECK_THROWS_AS(parseUidMapOrThrow(bad), memtap::Error);
    }
}

TEST_CASE("memtap's own process is in its own namespace: the euid itself", "[userns]") {
    auto identity = memtap::attach::peerIdentityInTargetOrThrow(::getpid(), ::geteuid());
    CHECK(identity.uid == ::geteuid());
    CHECK_FALSE(identity.unmapped);
    CHECK_THROWS_AS(memtap::attach::peerIdentityInTargetOrThrow(4194000, 0), memtap::Error);
}

// A real rootless namespace, when this machine lets nobody make one (Catch2
// v2 has no SKIP: the case passes with a warning otherwise).
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace {

std::string
commOf(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(in, comm);
    return comm;
}

} // namespace

TEST_CASE("host root is unmapped in a namespace mapped from nobody", "[userns]") {
    if (::geteuid() != 0) {
        WARN("not root: cannot start a process as nobody");
        return;
    }
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::execlp("setpriv", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "unshare",
                 "--user", "--map-root-user", "sleep", "30", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    // unshare writes the maps, then execs sleep: once it is "sleep", they are set.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    bool exited = false;
    while (commOf(child) != "sleep" && std::chrono::steady_clock::now() < deadline) {
        if (::waitpid(child, &status, WNOHANG) == child) {
            exited = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (exited || commOf(child) != "sleep") {
        if (!exited) {
            ::kill(child, SIGKILL);
            ::waitpid(child, &status, 0);
        }
        WARN("no unprivileged user namespace here (setpriv/unshare failed)");
        return;
    }
    auto root = memtap::attach::peerIdentityInTargetOrThrow(child, 0);
    auto nobody = memtap::attach::peerIdentityInTargetOrThrow(child, 65534);
    auto other = memtap::attach::peerIdentityInTargetOrThrow(child, 1234);
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    CHECK(root.unmapped);
    unsigned overflow = 0;
    std::ifstream("/proc/sys/kernel/overflowuid") >> overflow;
    CHECK(root.uid == overflow);
    CHECK_FALSE(nobody.unmapped);
    CHECK(nobody.uid == 0u);
    CHECK(other.unmapped);
}
