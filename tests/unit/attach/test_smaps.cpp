// /proc/PID/smaps: parsing captured text and classifying a real process.
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <catch2/catch.hpp>

#include "attach/smaps.h"

using memtap::attach::classifyResidentMemory;
using memtap::attach::parseSmaps;
using memtap::attach::ThreadStackPointer;

namespace {

// Shaped like this kernel's (6.18) smaps, trimmed to the counters plus a few
// others that must be ignored. A thread stack (guard + rw), a malloc heap of
// a non-main arena (rw + PROT_NONE reserve above it), the agent's memfd, a
// shared anonymous mapping, a library with a written .data page.
constexpr const char* kCaptured =
    R"(55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234   /usr/bin/python3.11
Size:                  4 kB
Rss:                   4 kB
Pss:                   4 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
55d0c1000000-55d0c3000000 rw-p 00000000 00:00 0      [heap]
Size:              32768 kB
Rss:               30000 kB
Anonymous:         30000 kB
VmFlags: rd wr mr mw me ac sd
7f0000000000-7f0000800000 rw-p 00000000 00:00 0
Rss:                1000 kB
Anonymous:          1000 kB
7f0000800000-7f0004000000 ---p 00000000 00:00 0
Rss:                   0 kB
Anonymous:             0 kB
7f1000000000-7f1000001000 ---p 00000000 00:00 0
Rss:                   0 kB
Anonymous:             0 kB
7f1000001000-7f1000801000 rw-p 00000000 00:00 0
Rss:                  40 kB
Anonymous:            40 kB
7f2000000000-7f2000100000 rw-p 00000000 00:00 0
Rss:                1024 kB
Anonymous:          1024 kB
7f3000000000-7f3000010000 r-xp 00000000 00:01 77     /memfd:memtap-agent (deleted)
Rss:                  64 kB
Anonymous:             0 kB
7f3000100000-7f3000200000 rw-s 00000000 00:01 78     /dev/zero (deleted)
Rss:                 512 kB
Anonymous:             0 kB
7f4000000000-7f4000100000 r-xp 00000000 08:01 999    /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 800 kB
Anonymous:             0 kB
7f4000100000-7f4000104000 rw-p 00100000 08:01 999    /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                  16 kB
Anonymous:             8 kB
garbage line
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0      [stack]
Rss:                 132 kB
Anonymous:           132 kB
)";

} // namespace

TEST_CASE("smaps text parses into mappings with Rss and Anonymous", "[smaps]") {
    auto mappings = parseSmaps(kCaptured);
    REQUIRE(mappings.size() == 12);
    CHECK(mappings[0].path == "/usr/bin/python3.11");
    CHECK(mappings[0].rssBytes == 4096);
    CHECK(mappings[1].path == "[heap]");
    CHECK(mappings[1].start == 0x55d0c1000000);
    CHECK(mappings[1].anonymousBytes == 30000u * 1024);
    CHECK(std::string(mappings[3].perms) == "---p");
    CHECK(mappings[7].path == "/memfd:memtap-agent (deleted)");
    CHECK(!mappings[8].isPrivate());
    CHECK(mappings[11].path == "[stack]");
    CHECK(parseSmaps("").empty());
    CHECK(parseSmaps("Rss: 4 kB\n").empty()); // counters before any header belong to nothing
}

TEST_CASE("resident memory is split by where it lives, each page once", "[smaps]") {
    auto mappings = parseSmaps(kCaptured);
    SECTION("a thread whose stack pointer is known") {
        auto r = classifyResidentMemory(mappings, {{1, 0x7ffd00020000}, {2, 0x7f1000700000}});
        CHECK(r.rssBytes == (4 + 30000 + 1000 + 40 + 1024 + 64 + 512 + 800 + 16 + 132) * 1024u);
        CHECK(r.heapBytes == 30000 * 1024u);
        CHECK(r.stacks == 2);
        CHECK(r.stackBytes == (40 + 132) * 1024u);
        CHECK(r.otherAnonymousBytes == (1000 + 1024 + 8) * 1024u);
        CHECK(r.agentCodeBytes == 64 * 1024u);
        CHECK(r.shmemBytes == 512 * 1024u);
        CHECK(r.fileBytes == (4 + 800 + 8) * 1024u);
        CHECK(r.anonymousBytes == r.heapBytes + r.stackBytes + r.otherAnonymousBytes);
        CHECK(r.rssBytes == r.anonymousBytes + r.fileBytes + r.shmemBytes + r.agentCodeBytes);
    }
    SECTION("a running thread (no stack pointer) is matched by glibc's guard layout") {
        auto r = classifyResidentMemory(mappings, {{1, 0x7ffd00020000}, {2, std::nullopt}});
        CHECK(r.stacks == 2);
        CHECK(r.stackBytes == (40 + 132) * 1024u);
        // The non-main malloc heap right after a PROT_NONE reserve is not a stack.
        CHECK(r.otherAnonymousBytes == (1000 + 1024 + 8) * 1024u);
    }
    SECTION("no more guard-laid mappings count than threads lack a pointer") {
        auto r = classifyResidentMemory(mappings, {{1, 0x7ffd00020000}});
        CHECK(r.stacks == 1);
        CHECK(r.stackBytes == 132 * 1024u);
    }
}

namespace {

void*
parkThread(void*) {
    ::pause();
    return nullptr;
}

} // namespace

TEST_CASE("a real process: its heap, an anonymous mapping and its thread stacks", "[smaps]") {
    constexpr size_t kHeapBytes = 24u << 20;
    constexpr size_t kMappedBytes = 16u << 20;
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The brk heap grown directly: under ASan malloc does not use it.
        void* heap = ::sbrk(static_cast<intptr_t>(kHeapBytes));
        if (heap == reinterpret_cast<void*>(-1)) {
            ::_exit(1);
        }
        std::memset(heap, 1, kHeapBytes);
        void* mapped =
            ::mmap(nullptr, kMappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        std::memset(mapped, 1, kMappedBytes);
        pthread_t threads[2];
        for (auto& t : threads) {
            pthread_create(&t, nullptr, parkThread, nullptr);
        }
        ::usleep(100000); // until both threads sleep in pause()
        char byte = 'r';
        (void)!::write(ready[1], &byte, 1);
        ::pause();
        ::_exit(0);
    }
    ::close(ready[1]);
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    ::close(ready[0]);
    auto r = memtap::attach::tryReadResidentMemory(child);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    REQUIRE(r);
    CHECK(r->heapBytes >= kHeapBytes);
    CHECK(r->otherAnonymousBytes >= kMappedBytes);
    CHECK(r->stacks == 3);
    CHECK(r->stackBytes > 0);
    CHECK(r->stackBytes < (1u << 20));
    CHECK(r->fileBytes > 0);
    CHECK(r->rssBytes == r->anonymousBytes + r->fileBytes + r->shmemBytes + r->agentCodeBytes);
    CHECK(!memtap::attach::tryReadResidentMemory(4194000));
}
