#include "agent/thread_names.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace memtap_agent {
namespace {

// Names seen by earlier snapshots, direct-mapped by tid: a thread whose slot
// was taken by another since is reported exited without a name. 256 slots
// cover the thread counts of ordinary servers; 5 KiB of static memory.
constexpr unsigned kCacheSlots = 256;

struct CachedName {
    uint32_t tid; // 0: empty
    char text[16];
};

constinit CachedName g_cache[kCacheSlots] = {};

CachedName&
slotOf(uint32_t tid) {
    return g_cache[tid % kCacheSlots];
}

// "/proc/self/task/TID/comm" into path (which holds 48 bytes).
void
commPath(uint32_t tid, char* path) {
    constexpr char kPrefix[] = "/proc/self/task/";
    std::memcpy(path, kPrefix, sizeof(kPrefix) - 1);
    char* p = path + sizeof(kPrefix) - 1;
    char digits[12];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + tid % 10);
        tid /= 10;
    } while (tid != 0);
    while (n > 0) {
        *p++ = digits[--n];
    }
    std::memcpy(p, "/comm", 6);
}

} // namespace

void
readThreadName(uint32_t tid, ThreadName* out) noexcept {
    out->text[0] = '\0';
    out->state = ThreadLife::kUnknown;
    if (tid == 0) {
        return;
    }
    char path[48];
    commPath(tid, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        // ENOENT with /proc mounted: the thread is gone. Anything else
        // (no /proc in this mount namespace, EACCES) says nothing.
        bool gone = errno == ENOENT && access("/proc/self/task", F_OK) == 0;
        if (gone) {
            out->state = ThreadLife::kExited;
            const CachedName& cached = slotOf(tid);
            if (cached.tid == tid) {
                std::memcpy(out->text, cached.text, sizeof(out->text));
            }
        }
        return;
    }
    ssize_t got = read(fd, out->text, sizeof(out->text) - 1);
    close(fd);
    if (got < 0) {
        return;
    }
    // The kernel ends comm with '\n' (fs/proc/base.c, comm_show).
    size_t length = static_cast<size_t>(got);
    while (length > 0 && (out->text[length - 1] == '\n' || out->text[length - 1] == '\0')) {
        --length;
    }
    out->text[length] = '\0';
    out->state = ThreadLife::kRunning;
    CachedName& slot = slotOf(tid);
    slot.tid = tid;
    std::memcpy(slot.text, out->text, sizeof(slot.text));
}

} // namespace memtap_agent
