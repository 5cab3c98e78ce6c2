#include <catch2/catch.hpp>

#include <unistd.h>

#include "base/error.h"
#include "symbols/proc_maps.h"

using memtap::RemotePtr;
using namespace memtap::symbols;

TEST_CASE("parseMaps reads file-backed, deleted, anonymous and special lines", "[maps]") {
    const char* text =
        "00400000-00420000 r--p 00000000 fd:01 1234                               /usr/bin/python3.11\n"
        "00420000-006a0000 r-xp 00020000 fd:01 1234                               /usr/bin/python3.11\n"
        "7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n"
        "7f1000000000-7f1000001000 r-xs 00001000 00:05 98765                      /tmp/my lib.so "
        "(deleted)\n"
        "7ffd1c5f0000-7ffd1c5f2000 r-xp 00000000 00:00 0                          [vdso]\n"
        "01e5e000-01f81000 rw-p 00000000 00:00 0                                  [heap]\n"
        "garbage line\n"
        "7f2000000000-7f2000001000 ---p 00000000 00:00 0";
    std::vector<MapEntry> maps = parseMaps(text);
    REQUIRE(maps.size() == 7);

    CHECK(maps[0].start == RemotePtr(0x400000));
    CHECK(maps[0].end == RemotePtr(0x420000));
    CHECK(maps[0].readable);
    CHECK_FALSE(maps[0].writable);
    CHECK_FALSE(maps[0].executable);
    CHECK(maps[0].isPrivate);
    CHECK(maps[0].inode == 1234);
    CHECK(maps[0].path == "/usr/bin/python3.11");
    CHECK_FALSE(maps[0].deleted);
    CHECK(maps[0].isFileBacked());

    CHECK(maps[1].executable);
    CHECK(maps[1].offset == 0x20000);

    CHECK(maps[2].path.empty());
    CHECK(maps[2].writable);
    CHECK_FALSE(maps[2].isFileBacked());

    CHECK(maps[3].path == "/tmp/my lib.so");
    CHECK(maps[3].deleted);
    CHECK_FALSE(maps[3].isPrivate);
    CHECK(maps[3].offset == 0x1000);

    CHECK(maps[4].path == "[vdso]");
    CHECK(maps[4].inode == 0);
    CHECK_FALSE(maps[4].isFileBacked());
    CHECK(maps[5].path == "[heap]");

    CHECK_FALSE(maps[6].readable);
    CHECK(maps[6].path.empty());
}

TEST_CASE("readMapsOrThrow reads our own maps", "[maps]") {
    std::vector<MapEntry> maps = readMapsOrThrow(::getpid());
    REQUIRE_FALSE(maps.empty());
    auto self = reinterpret_cast<uint64_t>(&readMapsOrThrow);
    bool found = false;
    for (const MapEntry& entry : maps) {
        if (entry.start.value() <= self && self < entry.end.value()) {
            found = entry.executable;
        }
    }
    CHECK(found);
}

TEST_CASE("readMapsOrThrow reports a missing process", "[maps]") {
    // Above the kernel's PID_MAX_LIMIT (4M, include/linux/threads.h): never a live PID.
    pid_t missing = 5'000'000;
    try {
        readMapsOrThrow(missing);
        FAIL("expected an error");
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::NoSuchProcess);
        CHECK(std::string(e.what()) == "no process with PID 5000000");
    }
}
