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
    for (const char* bad : {"0 0\n", "0 0 x\n", "a 0 1\n", "0 0 1 7\n", "0 0 0\n", "-1 0 1\n",
                            "4294967295 0 2\n"}) {
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
