// The tracing engine: what the hooks record and what status/snapshot read.
//
// Hot-path functions are called from the allocator hooks (hooks.cpp) on any
// thread, with or without the GIL, with g_thread busy (isBusy) so that nothing they
// do is recorded again. Control functions run on the agent thread (or on the
// hijacked thread during start) and are serialized by the entry/agent thread.
#ifndef MEMTAP_AGENT_ENGINE_H
#define MEMTAP_AGENT_ENGINE_H

#include "agent/thread_state.h"

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace memtap_agent {

// True while attached: the hooks record; false: pure pass-through.
extern std::atomic<bool> g_recording;

struct EngineConfig {
    uint32_t mode;        // enum memtap_mode
    uint32_t frames;      // 1..MEMTAP_MAX_FRAMES
    uint64_t sampleBytes; // mean sampling interval (sampled mode)
    bool captureFrames;   // python_frames is usable for this interpreter
};

// Maps the tables and starts recording. False if the tables cannot be mapped.
bool engineStart(const EngineConfig& config) noexcept;
// Stops recording and frees every table. Hooks still in flight find the
// engine stopped under the lock and return without touching the tables.
void engineStop() noexcept;
// While recording: drops every trace and starts again with empty tables, as
// engineStart does (agent thread only: snapshot rows point into the tables).
// Used when the hooks were out of a domain's chain for a while, so frees were
// missed. False if not recording or the tables could not be mapped again
// (then nothing is traced until detach).
bool engineRestartTraces() noexcept;

// Hooks.
void engineOnAlloc(ThreadState& t, void* ptr, size_t size) noexcept;
void engineOnFree(ThreadState& t, void* ptr) noexcept;
void engineOnRealloc(ThreadState& t, void* oldPtr, void* newPtr, size_t size) noexcept;
// PyTraceMalloc_Track / _Untrack (tracked_calls.h): a block of another
// domain, sampled and kept like the PyMem ones, keyed by (domain, ptr) as
// tracemalloc keys it. Up to kTrackedDomains distinct domains; a block of
// one more is not traced (engineUntracedDomainCalls counts them).
inline constexpr uint32_t kTrackedDomains = 15;
void engineOnTracked(ThreadState& t, unsigned int domain, uintptr_t ptr, size_t size) noexcept;
void engineOnUntracked(ThreadState& t, unsigned int domain, uintptr_t ptr) noexcept;
uint64_t engineUntracedDomainCalls() noexcept;
// --native (native_calls.h): a block native module number `module` took
// from libc (mapped: an anonymous mmap), in domain kNativeDomainBase +
// module; a free from any native module finds it.
void engineOnNativeAlloc(ThreadState& t, uint32_t module, void* ptr, size_t size, bool mapped) noexcept;
void engineOnNativeFree(ThreadState& t, void* ptr, bool mapped) noexcept;

struct EngineTotals {
    uint64_t allocationsSeen;
    uint64_t tracedBytes; // estimate in sampled mode
    uint64_t tracedCount; // estimate in sampled mode
    // Of tracedBytes (engineTotals only): blocks reported through
    // PyTraceMalloc_Track, and native modules' malloc blocks and mappings.
    uint64_t trackedBytes;
    uint64_t nativeHeapBytes;
    uint64_t nativeMappedBytes;
};
EngineTotals engineTotals() noexcept;

// The traced high-water mark since the tables started or the last reset
// (engine.cpp "Peak" for how the breakdown is kept and its accuracy bound).
struct EnginePeak {
    uint64_t peakBytes;      // exact high-water mark of traced bytes
    uint64_t peakUnixMs;     // wall clock when it was reached, 0 if never
    uint64_t capturedBytes;  // traced bytes when the peak breakdown was copied
    uint64_t capturedUnixMs; // when that was
};
EnginePeak enginePeak() noexcept;
// The peak becomes what is traced now (agent thread).
void engineResetPeak() noexcept;

// Snapshot support, agent thread only. A row is one traceback with live
// memory; frames point into tables that stay valid until engineStop(), which
// only the agent thread calls, so rows can be formatted after the lock is
// released.
struct Frame;
struct InternedString;
struct SnapshotRow {
    int64_t bytes;
    int64_t countFp; // fixed point, traces.h kCountOne
    const Frame* frames;
    uint32_t nframes;
    uint32_t tid;    // the allocating thread's gettid(); 0: unknown
    uint32_t domain; // 0: PyMem; else a PyTraceMalloc_Track domain
    int64_t records; // live records (samples, in sampled mode)
};
// An upper bound for the rows a copy made now would return (plus new ones).
size_t engineTracebackCount() noexcept;
enum class SnapshotKind { kNow, kPeak };
// Copies at most capacity rows under the engine lock; returns how many.
// kPeak: the breakdown at the peak, with totals of that moment.
size_t engineCopyTracebacks(SnapshotRow* rows, size_t capacity, EngineTotals* totals,
                            SnapshotKind kind) noexcept;
const InternedString& engineString(uint32_t id) noexcept;

// The heap walk (heap_walk.h), on a thread holding the GIL inside a hook.
// The traced PyMem block at ptr: its size and traceback id. False if the
// block is not traced (in sampled mode: not sampled).
bool engineFindBlock(const void* ptr, uint64_t* size, uint32_t* trace) noexcept;
// Sets marks[id] = 1 for each traceback id < cap whose most recent frame is
// at `line` of `file` (the frame's file equal to it, or ending in "/" file);
// adds their live records and traced bytes to *records and *bytes. Returns
// how many tracebacks matched.
size_t engineMarkSite(const char* file, int line, uint8_t* marks, size_t cap, int64_t* records,
                      int64_t* bytes) noexcept;

// The most recent frame of traceback `trace`: its file (NUL-terminated,
// cut to cap - 1 bytes) and line. False for an unknown id or no frame.
bool engineTopFrame(uint32_t trace, char* file, size_t cap, int* line) noexcept;

// fork() in the target: the child has no agent thread, so it must not keep
// recording into tables whose lock another thread may have held at fork.
void engineForkPrepare() noexcept;
void engineForkParent() noexcept;
void engineForkChild() noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_ENGINE_H
