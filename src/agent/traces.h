// Tracebacks and the names in them: interned, with per-traceback aggregates.
//
// A traceback is kept as resolved names (string ids) and lines, not as code
// object pointers: code objects die and their addresses are reused, and the
// snapshot must be formatted on the agent thread without the GIL. So names
// are copied out when a frame is first seen (the hook holds the GIL then),
// through a cache keyed by code pointer and validated with codeIdentity().
// All functions here run under the engine lock.
#ifndef MEMTAP_AGENT_TRACES_H
#define MEMTAP_AGENT_TRACES_H

#include "agent/protocol.h"
#include "agent/python_frames.h"
#include "agent/tables.h"

#include <cstdint>

namespace memtap_agent {

struct Frame {
    uint32_t file; // string id
    uint32_t func; // string id
    int32_t line;
};

struct Traceback {
    uint64_t hash;
    int64_t bytes;   // live bytes attributed here (estimate in sampled mode)
    int64_t countFp; // live count, fixed point (kCountOne = 1 allocation)
    const Frame* frames;
    uint32_t nframes;
    // Native id (gettid) of the allocating thread: part of the key, so each
    // thread has its own aggregates for the same frames; 0 when unknown
    // (id 0, the table-full fallback).
    uint32_t tid;
    // 0 for the PyMem domains, else the domain a PyTraceMalloc_Track caller
    // gave (tracked_calls.h): part of the key too.
    uint32_t domain;
    // The peak table (engine.cpp, "Peak"): bytes and count here at the last
    // capture of the breakdown at the traced high-water mark.
    int64_t peakBytes;
    int64_t peakCountFp;
    int64_t peakRecords;
    int64_t records; // live records here: the samples behind the estimate (sampled mode)
};

inline constexpr int64_t kCountOne = int64_t{1} << 20;

struct InternedString {
    const char* text;
    uint32_t length;
    uint64_t hash;
};

class Traces {
public:
    bool init() noexcept;
    void reset() noexcept;

    // Interns the traceback of raw frames (most recent first) allocated on
    // thread tid, in domain (0: PyMem). Returns its id; 0 (the empty
    // traceback of no thread) if a table is full. Needs the GIL when n > 0.
    uint32_t intern(const RawFrame* raw, int n, uint32_t tid, uint32_t domain) noexcept;

    Traceback& traceback(uint32_t id) noexcept { return tracebacks_.at(id); }
    size_t tracebackCount() const noexcept { return tracebacks_.size(); }
    // Stable until reset(): safe to read after the lock is released.
    const InternedString& string(uint32_t id) const noexcept { return strings_.at(id); }

private:
    struct CodeEntry {
        const void* code; // nullptr: empty slot
        const void* filename;
        const void* name;
        int firstLine;
        uint32_t file;
        uint32_t func;
    };
    uint32_t internString(const char* text) noexcept;
    bool resolveCode(const void* code, uint32_t* file, uint32_t* func) noexcept;
    bool growCodeCache() noexcept;

    Pool pool_; // string bytes and frame arrays
    ChunkedArray<InternedString> strings_;
    IdIndex stringIndex_;
    ChunkedArray<Traceback> tracebacks_;
    IdIndex tracebackIndex_;
    Mapping codeMap_;
    CodeEntry* codes_ = nullptr;
    size_t codeMask_ = 0;
    size_t codeCount_ = 0;
};

} // namespace memtap_agent

#endif // MEMTAP_AGENT_TRACES_H
