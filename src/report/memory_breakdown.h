// RSS explained: where a process's resident memory lives and which allocator
// holds it, from figures gathered elsewhere (smaps by the host, mallinfo2 and
// pymalloc's own statistics by the agent), plus at most a few one-line
// diagnoses where the figures make the answer plain. Plain data in, text
// and JSON out; nothing here reads /proc or talks to the agent.
//
// How the figures relate (and where they overlap):
//   RSS = anonymous + file-backed + shared memory + memtap's code (smaps).
//   Anonymous RSS is split, in this order, into
//     stacks            (smaps: "[stack]" and each thread's stack mapping);
//     memtap's tables   (agent_bytes: mapped, an upper bound on resident);
//     pymalloc's arenas (arenas * arena size, _PyObject_DebugMallocStats).
//                       CPython maps them itself (Objects/obmalloc.c,
//                       _PyObject_ArenaMmap), never through malloc, so they
//                       are not in malloc's figures. Taken whole: the pools
//                       of a fresh arena that were never touched are not yet
//                       resident, so this can overstate what is;
//     glibc malloc in use (uordblks + hblkhd of mallinfo2): the interpreter's
//                       raw allocations, PyMem/PyObject blocks over 512 bytes
//                       (pymalloc's SMALL_REQUEST_THRESHOLD), extensions'
//                       malloc calls. A large chunk is counted whole even if
//                       part of it was never touched;
//     glibc malloc free (fordblks), up to what is left: after a trim glibc
//                       still counts the bytes as free but their pages are no
//                       longer resident (madvise), so only the part that the
//                       rest of anonymous RSS can hold is counted as resident;
//     unexplained       what is left: native memory outside both allocators
//                       (an extension's own mmaps or allocator), or pymalloc's
//                       arenas when they could not be read.
//   pymalloc's and malloc's figures are the allocators' whole state, not
//   since the attach, so memory from before the attach is in them too; what
//   is unexplained is outside both allocators, whenever it was allocated.
//   Traced bytes (since attach) are not a part of this sum: they are the
//   live blocks memtap saw allocated since the attach, inside pymalloc's
//   used blocks and malloc's in-use bytes. RSS at attach says how much
//   predates tracing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "report/json.h"

namespace memtap::report {

// smaps figures (src/attach/smaps.h, ResidentMemory), copied by the caller.
struct ResidentFigures {
    int64_t rssBytes = 0;
    int64_t anonymousBytes = 0;
    int64_t fileBytes = 0;
    int64_t shmemBytes = 0;
    int64_t agentCodeBytes = 0;
    int64_t heapBytes = 0;
    int64_t stackBytes = 0;
    int stacks = 0;
    int64_t otherAnonymousBytes = 0;
};

// The agent's mallinfo2 keys; -1 for a key an older agent does not send.
struct MallocFigures {
    int64_t heapBytes = -1;       // malloc_heap_bytes: arena (brk heap + non-main arenas)
    int64_t mmapBytes = -1;       // malloc_mmap_bytes: hblkhd, chunks mmapped one by one
    int64_t inUseBytes = -1;      // malloc_in_use_bytes: uordblks + hblkhd
    int64_t freeBytes = -1;       // malloc_free_bytes: fordblks
    int64_t releasableBytes = -1; // malloc_releasable_bytes: keepcost, the top chunk
};

enum class PymallocState {
    NotAttached, // no agent: nothing read
    OldAgent,    // the agent does not know the command
    NotRead,     // asked, but the interpreter did not run the read before the deadline
    Disabled,    // the interpreter does not use pymalloc (PYTHONMALLOC=malloc, ...)
    Read,
};

struct PymallocFigures {
    PymallocState state = PymallocState::NotAttached;
    // NotRead: why, in plain words. Read: empty, or how old the figures are
    // when they come from an earlier read (the new one did not run in time).
    std::string notReadReason;
    uint64_t readUnixMs = 0; // wall clock of the read (Read)
    int64_t arenas = 0;
    int64_t arenaBytes = 0;      // arenas * bytes per arena
    int64_t allocatedBytes = 0;  // bytes in allocated blocks
    int64_t availableBytes = 0;  // free blocks in pools in use
    int64_t unusedPoolBytes = 0; // empty pools inside arenas
    int64_t overheadBytes = 0;   // pool headers, quantization, arena alignment
};

struct BreakdownInput {
    int pid = 0;
    bool attached = false;
    int64_t rssBytes = 0; // statm, used when smaps could not be read
    std::optional<ResidentFigures> resident;
    MallocFigures malloc;
    PymallocFigures pymalloc;
    int64_t agentBytes = -1; // agent_bytes: the agent's own mappings
    uint64_t nowUnixMs = 0;
    // Traced blocks from outside PyMem (-1: an agent that does not say):
    // what PyTraceMalloc_Track callers reported (numpy's arrays: inside
    // malloc's in-use bytes), and with --native the native modules' malloc
    // blocks (inside malloc's in-use bytes too) and anonymous mappings
    // (outside both allocators: taken out of what is unexplained).
    int64_t trackedBytes = -1;
    int64_t nativeHeapBytes = -1;
    int64_t nativeMappedBytes = -1;
};

// Below kDiagnosisMinBytes nothing is named: a fresh interpreter holds a few
// MiB in its own arenas and heap, and tens of MiB of slack are nothing a
// user acts on. A figure must also be kDiagnosisMinShareOfRss of RSS (an
// eighth): less is noise next to the rest of the process, while an eighth
// is worth an action (a trim, a change of what the code keeps). More than
// one figure can pass: a process after two kinds of burst gets two lines.
inline constexpr int64_t kDiagnosisMinBytes = 32ll << 20;
inline constexpr double kDiagnosisMinShareOfRss = 0.125;
// pymalloc's free bytes at least this many times its allocated ones: the
// arenas are held open by few live objects (fragmentation) rather than full.
inline constexpr int64_t kFewLiveObjectsRatio = 4;

struct MemoryBreakdown {
    bool haveResident = false;
    int64_t pymallocFreeBytes = -1;       // available + unused pools (Read only)
    int64_t mallocResidentFreeBytes = -1; // fordblks, bounded by what anonymous RSS can hold
    int64_t unexplainedBytes = -1;        // -1: not computable (old agent, no smaps)
    int64_t nativeMappedBytes = -1;       // the part of the rest explained by --native's mmaps
    std::vector<std::string> diagnoses;
};

MemoryBreakdown explainMemory(const BreakdownInput& input);

// Lines for `memtap status`, labels padded to 18 columns like its others.
std::string renderBreakdownText(const BreakdownInput& input, const MemoryBreakdown& breakdown);
// Keys written into an open JSON object: "rss" {...}, "pymalloc" {...},
// "glibc_malloc" {...}, "unexplained_bytes", "diagnoses" [...].
void writeBreakdownJson(JsonWriter& json, const BreakdownInput& input, const MemoryBreakdown& breakdown);
// One line for diff's and watch's headers: "anon 1.38 GiB, file 9.1 MiB;
// pymalloc 1.37 GiB in 1401 arenas (1.4 GiB free); malloc 2 MiB in use,
// 268 KiB free; unexplained 1 MiB".
std::string renderBreakdownShort(const BreakdownInput& input, const MemoryBreakdown& breakdown);
// "waiting for ..." / "not read: ..." words for a pymalloc state other than Read.
std::string describePymallocState(const PymallocFigures& pymalloc);

} // namespace memtap::report
