// Plain data for one heap snapshot and its wire format (the text format
// specified in src/agent/protocol.h). Everything in src/report works on these
// types only, so the reporters can be tested from fixed data without a target.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace memtap::report {

struct Frame {
    std::string file;
    int line = 0;
    std::string function;

    bool operator==(const Frame&) const = default;
};

struct Trace {
    std::vector<Frame> frames; // most recent call first
    int64_t size = 0;
    int64_t count = 0;
    int64_t samples = -1; // live records behind size/count; -1: unknown (format version 1)
    int64_t tid = 0;      // native id of the allocating thread; 0: unknown (version 1 and 2)
    // 0: the PyMem allocators; else the domain an extension reported the block
    // in through PyTraceMalloc_Track (389047: numpy's array data). Version 4.
    uint32_t domain = 0;
};

// numpy's tracemalloc domain (NPY_TRACE_DOMAIN, numpy/core/include/numpy/ndarraytypes.h).
inline constexpr uint32_t kNumpyDomain = 389047;
// "numpy" for kNumpyDomain, "domain N" for another, "" for 0 (PyMem).
std::string domainName(uint32_t domain);

// What the agent knew of a thread when it took the snapshot ("thread" lines).
struct ThreadInfo {
    std::string name;              // OS name (comm); may be empty
    std::string state = "running"; // "running" | "exited" | "unknown"

    bool operator==(const ThreadInfo&) const = default;
};

struct Snapshot {
    std::string mode = "exact";    // "exact" | "sampled"
    uint64_t sampleBytes = 0;      // mean sampling interval; meaningful in sampled mode
    uint64_t attachedAtUnixMs = 0; // the attach session it came from; 0: unknown (version 1)
    int64_t tracedBytes = 0;       // estimate in sampled mode
    int64_t tracedCount = 0;
    std::map<int64_t, ThreadInfo> threads; // by tid; empty before version 3
    // "domain" lines (version 4): what a domain's blocks are, e.g. "native
    // libfoo.so" for a native module's (attach --native).
    std::map<uint32_t, std::string> domains;
    std::vector<Trace> traces;
};

// What the snapshots' "domain" lines call it, else domainName.
std::string domainLabel(uint32_t domain, const Snapshot& older, const Snapshot& newer);

// Parses the protocol.h text format. Throws memtap::Error (ExitCode::Failure)
// naming the 1-based line on any malformed input; nothing is guessed, because
// a half-read snapshot would produce a plausible but wrong report.
Snapshot parseSnapshotOrThrow(std::string_view text);

// Writes exactly the protocol.h text format; parseSnapshotOrThrow reads it back.
std::string serializeSnapshot(const Snapshot& snapshot);

} // namespace memtap::report
