#include "agent/malloc_info.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

namespace memtap_agent {
namespace {

// glibc's struct mallinfo2 (malloc.h, glibc >= 2.33) and the older struct
// mallinfo with int members. Declared here and resolved with dlsym so the
// agent loads on any glibc and the call never needs a newer symbol version.
struct MallInfo2 {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct MallInfo {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

template <typename Info>
MallocFigures
figuresOf(const Info& info, uint64_t (*widen)(decltype(info.arena))) {
    MallocFigures f{};
    f.known = true;
    f.heapBytes = widen(info.arena);
    f.mmapBytes = widen(info.hblkhd);
    f.inUseBytes = widen(info.uordblks) + widen(info.hblkhd);
    f.freeBytes = widen(info.fordblks);
    f.topBytes = widen(info.keepcost);
    return f;
}

} // namespace

MallocFigures
readMallocFigures() noexcept {
    using Info2Fn = MallInfo2 (*)();
    using InfoFn = MallInfo (*)();
    if (auto fn = reinterpret_cast<Info2Fn>(dlsym(RTLD_DEFAULT, "mallinfo2"))) {
        return figuresOf(
            fn(), +[](size_t v) -> uint64_t { return v; });
    }
    if (auto fn = reinterpret_cast<InfoFn>(dlsym(RTLD_DEFAULT, "mallinfo"))) {
        // The int members wrap past 2 GiB; reading them as unsigned is the
        // best the old interface offers.
        return figuresOf(
            fn(), +[](int v) -> uint64_t { return static_cast<unsigned>(v); });
    }
    return MallocFigures{};
}

uint64_t
ownRssBytes() noexcept {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char buf[128];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    const char* p = buf;
    while (*p != '\0' && *p != ' ') {
        ++p;
    }
    uint64_t pages = 0;
    for (++p; *p >= '0' && *p <= '9'; ++p) {
        pages = pages * 10 + static_cast<uint64_t>(*p - '0');
    }
    long pageSize = sysconf(_SC_PAGESIZE);
    return pages * static_cast<uint64_t>(pageSize > 0 ? pageSize : 4096);
}

void
formatMallocTrim(Text& out) noexcept {
    using TrimFn = int (*)(size_t);
    auto trim = reinterpret_cast<TrimFn>(dlsym(RTLD_DEFAULT, "malloc_trim"));
    uint64_t rssBefore = ownRssBytes();
    MallocFigures before = readMallocFigures();
    // malloc_trim(0): return the free pages of every arena, not only the top
    // (glibc >= 2.8 also madvises whole free pages inside the heap).
    int result = trim != nullptr ? trim(0) : -1;
    MallocFigures after = readMallocFigures();
    uint64_t rssAfter = ownRssBytes();
    out.append("trim_result ");
    out.appendI64(result);
    out.append('\n');
    appendKeyValue(out, "rss_before_bytes", rssBefore);
    appendKeyValue(out, "rss_after_bytes", rssAfter);
    appendKeyValue(out, "malloc_free_before_bytes", before.freeBytes);
    appendKeyValue(out, "malloc_free_after_bytes", after.freeBytes);
}

} // namespace memtap_agent
