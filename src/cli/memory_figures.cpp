#include "cli/memory_figures.h"

#include <time.h>

#include <thread>

#include "attach/smaps.h"
#include "base/error.h"
#include "cli/target_status.h"
#include "inject/control_client.h"

namespace memtap::cli {

namespace {

using Clock = std::chrono::steady_clock;

// One `pymalloc` request on a fresh connection (the agent serves one request
// per connection). nullopt: no agent listens; "unknown command" in an
// Error(Failure): an agent older than the command.
std::optional<std::map<std::string, std::string>>
requestPymallocOrThrow(pid_t pid) {
    auto client = inject::AgentClient::tryConnect(pid);
    if (!client) {
        return std::nullopt;
    }
    return std::move(*client).pymallocOrThrow(std::chrono::milliseconds(2000));
}

std::string
waitingWords(std::chrono::milliseconds timeout) {
    return fmt::format("waiting for the interpreter; it runs when the worker gets its next request "
                       "(no thread holding the GIL allocated within {:.1f} s; --timeout waits longer)",
                       static_cast<double>(timeout.count()) / 1000.0);
}

} // namespace

report::PymallocFigures
pymallocFiguresFrom(const std::map<std::string, std::string>& reply) {
    report::PymallocFigures py;
    auto it = reply.find("pymalloc_result");
    std::string result = it == reply.end() ? "none" : it->second;
    if (result == "disabled") {
        py.state = report::PymallocState::Disabled;
        return py;
    }
    if (result == "unreadable") {
        py.state = report::PymallocState::NotRead;
        py.notReadReason =
            "this interpreter's _PyObject_DebugMallocStats is missing or printed no figures";
        return py;
    }
    if (result != "ok") { // "none": no read completed yet
        py.state = report::PymallocState::NotRead;
        return py;
    }
    py.state = report::PymallocState::Read;
    py.readUnixMs = static_cast<uint64_t>(numberOr(reply, "pymalloc_read_unix_ms", 0));
    py.arenas = numberOr(reply, "pymalloc_arenas", 0);
    py.arenaBytes = numberOr(reply, "pymalloc_arena_bytes", 0);
    py.allocatedBytes = numberOr(reply, "pymalloc_allocated_bytes", 0);
    py.availableBytes = numberOr(reply, "pymalloc_available_bytes", 0);
    py.unusedPoolBytes = numberOr(reply, "pymalloc_unused_pool_bytes", 0);
    py.overheadBytes = numberOr(reply, "pymalloc_overhead_bytes", 0);
    return py;
}

report::PymallocFigures
pollPymalloc(pid_t pid, const PymallocWait& wait) {
    auto start = Clock::now();
    auto deadline = start + wait.timeout;
    bool told = false;
    int64_t requested = -1;
    std::map<std::string, std::string> last;
    for (;;) {
        std::optional<std::map<std::string, std::string>> reply;
        try {
            reply = requestPymallocOrThrow(pid);
        } catch (const Error& e) {
            std::string what = e.what();
            // The agent serves a few connections at once and turns away the
            // surplus ("err busy", src/agent/control.cpp): try again in time.
            if (what.find("busy") != std::string::npos &&
                Clock::now() + kPymallocPollInterval < deadline) {
                std::this_thread::sleep_for(kPymallocPollInterval);
                continue;
            }
            report::PymallocFigures py;
            if (what.find("unknown command") != std::string::npos) {
                py.state = report::PymallocState::OldAgent;
            } else {
                py.state = report::PymallocState::NotRead;
                py.notReadReason = fmt::format("the agent did not answer ({})", what);
            }
            return py;
        }
        if (!reply) {
            return report::PymallocFigures{}; // NotAttached
        }
        last = *reply;
        // The sequence number of the read that answers us is the one the
        // first request got: later requests only find it armed.
        if (requested < 0) {
            requested = numberOr(last, "pymalloc_requested", 0);
        }
        if (numberOr(last, "pymalloc_completed", 0) >= requested && requested > 0) {
            return pymallocFiguresFrom(last);
        }
        auto now = Clock::now();
        if (now >= deadline) {
            break;
        }
        if (!told && wait.progress && now - start >= kPymallocProgressAfter) {
            told = true;
            wait.progress(fmt::format("pymalloc: waiting for the interpreter; it runs when the worker "
                                      "gets its next request (at most {:.1f} s more)",
                                      std::chrono::duration<double>(deadline - now).count()));
        }
        std::this_thread::sleep_for(std::min<Clock::duration>(kPymallocPollInterval, deadline - now));
    }
    auto earlier = pymallocFiguresFrom(last);
    if (earlier.state == report::PymallocState::Read && earlier.readUnixMs != 0) {
        // An older read is still a real reading; say how old it is.
        timespec now{};
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t nowMs =
            static_cast<uint64_t>(now.tv_sec) * 1000u + static_cast<uint64_t>(now.tv_nsec) / 1000000u;
        earlier.notReadReason =
            fmt::format("from a read {} ago: {}",
                        describeAge(static_cast<long long>(
                            nowMs > earlier.readUnixMs ? (nowMs - earlier.readUnixMs) / 1000 : 0)),
                        waitingWords(wait.timeout));
        return earlier;
    }
    report::PymallocFigures py;
    py.state = earlier.state == report::PymallocState::Disabled ? report::PymallocState::Disabled
                                                                : report::PymallocState::NotRead;
    py.notReadReason = waitingWords(wait.timeout);
    return py;
}

report::MallocFigures
mallocFiguresFrom(const std::map<std::string, std::string>& agentStatus) {
    report::MallocFigures m;
    m.heapBytes = numberOr(agentStatus, "malloc_heap_bytes", -1);
    m.mmapBytes = numberOr(agentStatus, "malloc_mmap_bytes", -1);
    m.inUseBytes = numberOr(agentStatus, "malloc_in_use_bytes", -1);
    m.freeBytes = numberOr(agentStatus, "malloc_free_bytes", -1);
    m.releasableBytes = numberOr(agentStatus, "malloc_releasable_bytes", -1);
    return m;
}

report::BreakdownInput
breakdownInputFor(pid_t pid, bool attached, int64_t rssBytes,
                  const std::map<std::string, std::string>& agentStatus) {
    report::BreakdownInput in;
    in.pid = pid;
    in.attached = attached;
    in.rssBytes = rssBytes;
    if (auto resident = attach::tryReadResidentMemory(pid)) {
        report::ResidentFigures r;
        r.rssBytes = static_cast<int64_t>(resident->rssBytes);
        r.anonymousBytes = static_cast<int64_t>(resident->anonymousBytes);
        r.fileBytes = static_cast<int64_t>(resident->fileBytes);
        r.shmemBytes = static_cast<int64_t>(resident->shmemBytes);
        r.agentCodeBytes = static_cast<int64_t>(resident->agentCodeBytes);
        r.heapBytes = static_cast<int64_t>(resident->heapBytes);
        r.stackBytes = static_cast<int64_t>(resident->stackBytes);
        r.stacks = resident->stacks;
        r.otherAnonymousBytes = static_cast<int64_t>(resident->otherAnonymousBytes);
        in.resident = r;
    }
    if (attached) {
        in.malloc = mallocFiguresFrom(agentStatus);
        in.agentBytes = numberOr(agentStatus, "agent_bytes", -1);
        in.trackedBytes = numberOr(agentStatus, "traced_tracked_bytes", -1);
        in.nativeHeapBytes = numberOr(agentStatus, "traced_native_heap_bytes", -1);
        in.nativeMappedBytes = numberOr(agentStatus, "traced_native_mmap_bytes", -1);
    }
    return in;
}

} // namespace memtap::cli
