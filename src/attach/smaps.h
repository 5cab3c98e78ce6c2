// Where a process's resident memory lives, from /proc/PID/smaps, read
// without ptrace (proc(5), "/proc/pid/smaps"). The figures are what the
// kernel counts at the moment of the read; the process runs on meanwhile.
//
// Why smaps and not smaps_rollup: the rollup is the sum of the same
// per-mapping counters (fs/proc/task_mmu.c, show_smaps_rollup), so it says
// nothing the per-mapping read does not, and a second, later read would
// disagree with the first by whatever changed in between. Nor does the
// rollup give shared memory's RSS (this kernel, 6.18, prints Rss, Pss_Shmem
// and Anonymous, not Shmem), which the per-mapping paths tell apart.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace memtap::attach {

// One mapping of /proc/PID/smaps: the maps(5) header line and the two
// per-mapping counters the breakdown needs ("Rss:" and "Anonymous:", in kB
// in the file, bytes here).
struct SmapsMapping {
    uint64_t start = 0;
    uint64_t end = 0;
    char perms[5] = "----"; // "rw-p": read, write, execute, p(rivate) or s(hared)
    uint64_t inode = 0;
    std::string path; // as printed: "", "[heap]", "[stack]", "/usr/lib/...", "/memfd:x (deleted)"
    uint64_t rssBytes = 0;
    uint64_t anonymousBytes = 0;

    bool isPrivate() const { return perms[3] == 'p'; }
    bool isInaccessible() const { return perms[0] == '-' && perms[1] == '-' && perms[2] == '-'; }
    uint64_t size() const { return end - start; }
};

// Malformed lines (only tests or a truncated read make them) are skipped.
std::vector<SmapsMapping> parseSmaps(std::string_view text);

// Resident memory by where it lives. Every resident page is counted once:
// rssBytes == anonymousBytes + fileBytes + shmemBytes + agentCodeBytes, and
// anonymousBytes == heapBytes + stackBytes + otherAnonymousBytes.
struct ResidentMemory {
    uint64_t rssBytes = 0;
    // Private pages not backed by a file ("Anonymous:"): what allocators hand
    // out. Includes the copy-on-write pages of file mappings (a library's
    // written .data), which sit in otherAnonymousBytes.
    uint64_t anonymousBytes = 0;
    // Page-cache pages of mapped files: code, read-only data, mmapped files.
    // The kernel can drop the clean ones under pressure.
    uint64_t fileBytes = 0;
    // Resident pages of shared anonymous, tmpfs and memfd mappings (shmem),
    // except the agent's own memfd.
    uint64_t shmemBytes = 0;
    // memtap's agent code (its "/memfd:memtap-agent" mappings); its tables
    // are anonymous mappings the agent reports as agent_bytes.
    uint64_t agentCodeBytes = 0;

    uint64_t heapBytes = 0;           // "[heap]": glibc malloc's main arena (brk)
    uint64_t stackBytes = 0;          // the main "[stack]" and the thread stacks found
    int stacks = 0;                   // how many mappings stackBytes covers
    uint64_t otherAnonymousBytes = 0; // pymalloc arenas, other malloc arenas, mmaps, ...
};

// A thread's stack pointer, when /proc/PID/task/TID/syscall shows one (a
// thread that is running has none).
struct ThreadStackPointer {
    pid_t tid = 0;
    std::optional<uint64_t> sp;
};

// How thread stacks are found (each rule has its own reason):
//  1. "[stack]" is the main thread's stack (the kernel names it).
//  2. The mapping that holds a thread's stack pointer is that thread's stack.
//     The pointer comes from /proc/PID/task/TID/syscall, which a blocked
//     thread fills in without being stopped; it is exact when known.
//  3. For each thread whose pointer is unknown (running), one more mapping
//     laid out as glibc lays out a thread stack (nptl/allocate_stack.c: one
//     anonymous mapping, PROT_NONE guard at its low end, the rest rw) counts:
//     a private rw anonymous mapping right after an inaccessible private
//     anonymous one of at most kMaxGuardBytes. glibc's non-main malloc heaps
//     are the other way round (rw low, PROT_NONE reserve above: malloc/arena.c
//     new_heap), so they only look alike when a heap's reserve is nearly used
//     up; the guard bound keeps that rare, and rule 3 never counts more
//     mappings than there are threads without a pointer.
inline constexpr uint64_t kMaxGuardBytes = 1u << 20;
ResidentMemory classifyResidentMemory(const std::vector<SmapsMapping>& mappings,
                                      const std::vector<ThreadStackPointer>& threads);

// Reads /proc/PID/smaps and the threads' stack pointers. nullopt when the
// process is gone or its smaps cannot be read (permission): the breakdown is
// then left out, the rest of a report still stands.
std::optional<ResidentMemory> tryReadResidentMemory(pid_t pid);

} // namespace memtap::attach
