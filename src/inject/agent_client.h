// The agent's commands (protocol.h "Commands") as typed calls: the one place
// in the host that knows their names and how their replies read. Every reply
// that does not read as protocol.h says becomes a memtap::Error naming the
// command and the key.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "inject/agent_values.h"
#include "inject/control_client.h"

namespace memtap::inject {

// The "status" reply. What every command relies on is typed; the whole
// reply stays in `values` for the status text, the RSS breakdown and keys a
// newer agent adds (readers ignore what they do not know).
struct AgentStatus {
    AgentValues values;
    std::string python; // "3.11.7"
    bool exact = false; // mode: exact or sampled
    int64_t sampleBytes = 0;
    int64_t tracedBytes = 0; // estimates in sampled mode
    int64_t tracedCount = 0;
    uint64_t attachedAtUnixMs = 0; // 0: not said
    std::optional<int64_t> peakTracedBytes;
    uint64_t peakUnixMs = 0; // 0: never reached, or not said
    bool native = false;     // attached with --native

    // Error(Failure) naming the key when python, mode, traced_bytes or
    // traced_count is missing or unreadable.
    static AgentStatus fromReplyOrThrow(std::string_view payload);
};

// The "malloc-trim" reply.
struct MallocTrimReply {
    int64_t trimResult = 0; // malloc_trim's return: 1 released, 0 not, -1 no malloc_trim
    int64_t rssBeforeBytes = 0;
    int64_t rssAfterBytes = 0;
    int64_t mallocFreeBeforeBytes = 0;
    int64_t mallocFreeAfterBytes = 0;

    static MallocTrimReply fromReplyOrThrow(std::string_view payload);
};

enum class SnapshotKind { Now, Peak };

class AgentClient {
public:
    // nullopt when no agent listens in the process (not attached).
    static std::optional<AgentClient> tryConnect(pid_t pid);
    // Error(NotAttached) with `hint` when no agent listens.
    static AgentClient connectOrThrow(pid_t pid, const std::string& hint);

    // One request per connection (the agent closes after its reply).
    AgentStatus statusOrThrow(std::chrono::milliseconds timeout) &&;
    std::string snapshotTextOrThrow(SnapshotKind kind, std::chrono::milliseconds timeout) &&;
    void resetPeakOrThrow(std::chrono::milliseconds timeout) &&;
    // The "pymalloc" reply: arms a read and answers at once (protocol.h).
    AgentValues pymallocOrThrow(std::chrono::milliseconds timeout) &&;
    MallocTrimReply mallocTrimOrThrow(std::chrono::milliseconds timeout) &&;
    void releaseLeftoverScratchOrThrow(uint64_t address, uint64_t size,
                                       std::chrono::milliseconds timeout) &&;
    // The heap walk (protocol.h "heap-walk"): arms one and answers at once
    // with its sequence number; "err busy ..." while another is armed or
    // running comes back as Error(Failure) with the agent's words.
    uint64_t armHeapWalkOrThrow(const std::string& arguments, std::chrono::milliseconds timeout) &&;
    // The "heap-walk-result" payload, raw: report/heap_walk.h reads it.
    std::string heapWalkResultOrThrow(std::chrono::milliseconds timeout) &&;
    void cancelHeapWalkOrThrow(std::chrono::milliseconds timeout) &&;
    // Returns once the agent has removed its hooks and closed its socket.
    void detachOrThrow(std::chrono::milliseconds timeout) &&;

private:
    explicit AgentClient(ControlClient control) : control_(std::move(control)) {}
    ControlClient control_;
};

} // namespace memtap::inject
