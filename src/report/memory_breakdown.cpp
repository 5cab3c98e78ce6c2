#include "report/memory_breakdown.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "report/text_report.h"

namespace memtap::report {

namespace {

std::string
size(int64_t bytes) {
    return formatSize(static_cast<double>(std::max<int64_t>(0, bytes)), false);
}

bool
known(int64_t value) {
    return value >= 0;
}

// Whether a figure is large enough, alone, to explain the process's size.
bool
decides(int64_t bytes, int64_t rss) {
    return bytes >= kDiagnosisMinBytes &&
           static_cast<double>(bytes) >= kDiagnosisMinShareOfRss * static_cast<double>(rss);
}

int64_t
rssOf(const BreakdownInput& input) {
    return input.resident ? input.resident->rssBytes : input.rssBytes;
}

} // namespace

std::string
describePymallocState(const PymallocFigures& pymalloc) {
    switch (pymalloc.state) {
    case PymallocState::NotAttached:
        return "not read (memtap is not attached)";
    case PymallocState::OldAgent:
        return "not read (the agent in the process predates this memtap; detach and attach again)";
    case PymallocState::NotRead:
        return fmt::format("not read: {}", pymalloc.notReadReason);
    case PymallocState::Disabled:
        return "not used by this interpreter (PYTHONMALLOC=malloc or a debug allocator): small objects "
               "come from glibc malloc";
    case PymallocState::Read:
        break;
    }
    return "read";
}

MemoryBreakdown
explainMemory(const BreakdownInput& input) {
    MemoryBreakdown out;
    out.haveResident = input.resident.has_value();
    const PymallocFigures& py = input.pymalloc;
    const MallocFigures& m = input.malloc;
    int64_t rss = rssOf(input);
    if (py.state == PymallocState::Read) {
        out.pymallocFreeBytes = py.availableBytes + py.unusedPoolBytes;
    }
    // The waterfall of the header comment: each allocator's figure taken out
    // of anonymous RSS in turn, what is left bounds malloc's resident free.
    if (input.resident && known(m.inUseBytes) && known(m.freeBytes)) {
        bool pymallocKnown = py.state == PymallocState::Read || py.state == PymallocState::Disabled;
        int64_t left = input.resident->anonymousBytes - input.resident->stackBytes -
                       std::max<int64_t>(0, input.agentBytes);
        if (py.state == PymallocState::Read) {
            left -= py.arenaBytes;
        }
        left = std::max<int64_t>(0, left - m.inUseBytes);
        out.mallocResidentFreeBytes = std::min(m.freeBytes, left);
        if (pymallocKnown) {
            out.unexplainedBytes = left - out.mallocResidentFreeBytes;
            if (input.nativeMappedBytes > 0) {
                out.nativeMappedBytes = std::min(input.nativeMappedBytes, out.unexplainedBytes);
                out.unexplainedBytes -= out.nativeMappedBytes;
            }
        }
    }

    if (out.pymallocFreeBytes >= 0 && decides(out.pymallocFreeBytes, rss)) {
        if (py.allocatedBytes * kFewLiveObjectsRatio <= out.pymallocFreeBytes) {
            out.diagnoses.push_back(fmt::format(
                "{} free inside pymalloc arenas held by few live objects ({} in use in {} arenas): "
                "fragmentation, not a leak",
                size(out.pymallocFreeBytes), size(py.allocatedBytes), py.arenas));
        } else {
            out.diagnoses.push_back(fmt::format(
                "{} free inside pymalloc arenas next to {} in use: partly empty arenas that new small "
                "objects reuse, not returned to the OS until every object in an arena is gone",
                size(out.pymallocFreeBytes), size(py.allocatedBytes)));
        }
    }
    if (out.mallocResidentFreeBytes >= 0 && decides(out.mallocResidentFreeBytes, rss)) {
        out.diagnoses.push_back(
            fmt::format("{} free inside glibc's heap: `memtap trim {}` would return most of it",
                        size(out.mallocResidentFreeBytes), input.pid));
    } else if (!input.resident && known(m.freeBytes) && decides(m.freeBytes, rss)) {
        out.diagnoses.push_back(
            fmt::format("up to {} free inside glibc's heap (less if it was trimmed): `memtap trim {}` "
                        "would return what is resident",
                        size(m.freeBytes), input.pid));
    }
    if (out.unexplainedBytes >= 0 && decides(out.unexplainedBytes, rss)) {
        out.diagnoses.push_back(fmt::format(
            "{} of RSS is outside Python's allocators and glibc malloc: native allocations (an "
            "extension's own mmaps or allocator); `memtap attach --native` traces native modules' "
            "malloc and mmap",
            size(out.unexplainedBytes)));
    }
    return out;
}

std::string
renderBreakdownText(const BreakdownInput& input, const MemoryBreakdown& breakdown) {
    std::string text;
    if (const auto& r = input.resident) {
        text += fmt::format("rss:              {} = {} anonymous + {} file-backed", size(r->rssBytes),
                            size(r->anonymousBytes), size(r->fileBytes));
        if (r->shmemBytes > 0) {
            text += fmt::format(" + {} shared memory", size(r->shmemBytes));
        }
        if (r->agentCodeBytes > 0) {
            text += fmt::format(" + {} memtap's code", size(r->agentCodeBytes));
        }
        text += "\n";
        text +=
            fmt::format("  anonymous:      {} heap ([heap], glibc's main arena), {} in {} stack{}, "
                        "{} other mappings (pymalloc arenas, other malloc arenas and chunks, mmaps)\n",
                        size(r->heapBytes), size(r->stackBytes), r->stacks, r->stacks == 1 ? "" : "s",
                        size(r->otherAnonymousBytes));
    } else {
        text += fmt::format("rss:              {} (smaps not readable: no breakdown)\n",
                            size(input.rssBytes));
    }
    if (!input.attached) {
        return text;
    }
    const PymallocFigures& py = input.pymalloc;
    if (py.state == PymallocState::Read) {
        text += fmt::format(
            "pymalloc:         {} arena{} = {}: {} in used blocks, {} free in pools, {} in "
            "empty pools, {} overhead\n",
            py.arenas, py.arenas == 1 ? "" : "s", size(py.arenaBytes), size(py.allocatedBytes),
            size(py.availableBytes), size(py.unusedPoolBytes), size(py.overheadBytes));
        if (!py.notReadReason.empty()) { // an earlier read: the interpreter has not run a new one
            text += fmt::format("  pymalloc read:  {}\n", py.notReadReason);
        }
    } else {
        text += fmt::format("pymalloc:         {}\n", describePymallocState(py));
    }
    const MallocFigures& m = input.malloc;
    if (known(m.inUseBytes) && known(m.heapBytes) && known(m.mmapBytes)) {
        text += fmt::format(
            "glibc malloc:     {} in use, {} free{}; from the OS {} in arenas, {} in "
            "mmapped chunks",
            size(m.inUseBytes), size(m.freeBytes),
            breakdown.mallocResidentFreeBytes >= 0
                ? fmt::format(" (at most {} of it resident)", size(breakdown.mallocResidentFreeBytes))
                : std::string(),
            size(m.heapBytes), size(m.mmapBytes));
        if (known(m.releasableBytes)) {
            text += fmt::format("; a trim at the top alone returns {}", size(m.releasableBytes));
        }
        text += "\n";
    } else {
        // An agent older than the malloc_* keys: only the free bytes.
        text += fmt::format(
            "malloc free:      {} (free inside glibc malloc's heap; counts in RSS until trimmed)\n",
            known(m.freeBytes) ? size(m.freeBytes) : std::string("?"));
    }
    if (input.agentBytes > 0) {
        text += fmt::format("memtap's agent:   {} mapped for its tables\n", size(input.agentBytes));
    }
    std::vector<std::string> outside;
    if (input.trackedBytes > 0) {
        outside.push_back(fmt::format("{} reported through PyTraceMalloc_Track (numpy's arrays; in "
                                      "malloc's in-use bytes)",
                                      size(input.trackedBytes)));
    }
    if (input.nativeHeapBytes > 0) {
        outside.push_back(fmt::format("{} native modules' malloc (in malloc's in-use bytes)",
                                      size(input.nativeHeapBytes)));
    }
    if (breakdown.nativeMappedBytes > 0) {
        outside.push_back(fmt::format("{} native modules' mmaps", size(breakdown.nativeMappedBytes)));
    }
    if (!outside.empty()) {
        text += "outside PyMem:    ";
        for (size_t i = 0; i < outside.size(); ++i) {
            text += (i > 0 ? ", " : "") + outside[i];
        }
        text += " (traced since attach)\n";
    }
    if (breakdown.unexplainedBytes >= 0) {
        text +=
            fmt::format("unexplained:      {} of anonymous RSS outside stacks, memtap, pymalloc{}\n",
                        size(breakdown.unexplainedBytes),
                        breakdown.nativeMappedBytes > 0 ? ", glibc malloc and the native mmaps traced"
                                                        : " and glibc malloc");
    }
    for (const auto& diagnosis : breakdown.diagnoses) {
        text += fmt::format("diagnosis:        {}\n", diagnosis);
    }
    return text;
}

void
writeBreakdownJson(JsonWriter& json, const BreakdownInput& input, const MemoryBreakdown& breakdown) {
    if (const auto& r = input.resident) {
        json.key("rss");
        json.beginObject();
        json.key("rss_bytes");
        json.value(r->rssBytes);
        json.key("anonymous_bytes");
        json.value(r->anonymousBytes);
        json.key("file_bytes");
        json.value(r->fileBytes);
        json.key("shmem_bytes");
        json.value(r->shmemBytes);
        json.key("agent_code_bytes");
        json.value(r->agentCodeBytes);
        json.key("heap_bytes");
        json.value(r->heapBytes);
        json.key("stack_bytes");
        json.value(r->stackBytes);
        json.key("stacks");
        json.value(r->stacks);
        json.key("other_anonymous_bytes");
        json.value(r->otherAnonymousBytes);
        json.endObject();
    }
    if (!input.attached) {
        return;
    }
    const PymallocFigures& py = input.pymalloc;
    json.key("pymalloc");
    json.beginObject();
    json.key("state");
    switch (py.state) {
    case PymallocState::NotAttached:
        json.value("not_attached");
        break;
    case PymallocState::OldAgent:
        json.value("old_agent");
        break;
    case PymallocState::NotRead:
        json.value("not_read");
        break;
    case PymallocState::Disabled:
        json.value("disabled");
        break;
    case PymallocState::Read:
        json.value("read");
        break;
    }
    if (py.state == PymallocState::Read) {
        json.key("read_unix_ms");
        json.value(py.readUnixMs);
        json.key("arenas");
        json.value(py.arenas);
        json.key("arena_bytes");
        json.value(py.arenaBytes);
        json.key("allocated_bytes");
        json.value(py.allocatedBytes);
        json.key("available_bytes");
        json.value(py.availableBytes);
        json.key("unused_pool_bytes");
        json.value(py.unusedPoolBytes);
        json.key("overhead_bytes");
        json.value(py.overheadBytes);
        json.key("free_bytes");
        json.value(breakdown.pymallocFreeBytes);
        if (!py.notReadReason.empty()) {
            json.key("stale");
            json.value(py.notReadReason);
        }
    } else {
        json.key("not_read_reason");
        json.value(describePymallocState(py));
    }
    json.endObject();
    if (breakdown.mallocResidentFreeBytes >= 0) {
        json.key("malloc_resident_free_bytes");
        json.value(breakdown.mallocResidentFreeBytes);
    }
    if (breakdown.unexplainedBytes >= 0) {
        json.key("unexplained_bytes");
        json.value(breakdown.unexplainedBytes);
    }
    for (auto [key, value] : {std::pair{"tracked_bytes", input.trackedBytes},
                              std::pair{"native_heap_bytes", input.nativeHeapBytes},
                              std::pair{"native_mmap_bytes", breakdown.nativeMappedBytes}}) {
        if (value >= 0) {
            json.key(key);
            json.value(value);
        }
    }
    json.key("diagnoses");
    json.beginArray();
    for (const auto& diagnosis : breakdown.diagnoses) {
        json.value(diagnosis);
    }
    json.endArray();
}

std::string
renderBreakdownShort(const BreakdownInput& input, const MemoryBreakdown& breakdown) {
    std::vector<std::string> parts;
    if (const auto& r = input.resident) {
        parts.push_back(fmt::format("anon {}, file {}", size(r->anonymousBytes),
                                    size(r->fileBytes + r->shmemBytes)));
    }
    const PymallocFigures& py = input.pymalloc;
    if (py.state == PymallocState::Read) {
        parts.push_back(fmt::format("pymalloc {} in {} arenas ({} free)", size(py.arenaBytes), py.arenas,
                                    size(breakdown.pymallocFreeBytes)));
    }
    const MallocFigures& m = input.malloc;
    if (known(m.inUseBytes) && known(m.freeBytes)) {
        parts.push_back(fmt::format("malloc {} in use, {} free", size(m.inUseBytes), size(m.freeBytes)));
    } else if (known(m.freeBytes)) {
        parts.push_back(fmt::format("malloc free {}", size(m.freeBytes)));
    }
    if (breakdown.unexplainedBytes >= 0) {
        parts.push_back(fmt::format("unexplained {}", size(breakdown.unexplainedBytes)));
    }
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) {
        out += (i == 0 ? "" : "; ") + parts[i];
    }
    return out;
}

} // namespace memtap::report
