// glibc malloc's own figures (mallinfo2) and malloc_trim, for the "status"
// and "malloc-trim" commands. Agent thread only: both take malloc's arena
// locks, which an allocator hook must never wait on.
#ifndef MEMTAP_AGENT_MALLOC_INFO_H
#define MEMTAP_AGENT_MALLOC_INFO_H

#include "agent/text.h"

#include <cstdint>

namespace memtap_agent {

struct MallocFigures {
    bool known;          // mallinfo2 (or mallinfo) was found
    uint64_t heapBytes;  // arena: taken from the OS with brk and for non-main arenas
    uint64_t mmapBytes;  // hblkhd: large chunks mmapped one by one
    uint64_t inUseBytes; // uordblks + hblkhd
    uint64_t freeBytes;  // fordblks: free inside the arenas (fast bins included)
    uint64_t topBytes;   // keepcost: the top chunk, what a trim surely returns
};

MallocFigures readMallocFigures() noexcept;

// The process's resident bytes: field 2 of /proc/self/statm (proc(5)), read
// with plain syscalls into a stack buffer. 0 if unreadable.
uint64_t ownRssBytes() noexcept;

// "malloc-trim": malloc_trim(0) and the figures before and after (protocol.h).
void formatMallocTrim(Text& out) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_MALLOC_INFO_H
