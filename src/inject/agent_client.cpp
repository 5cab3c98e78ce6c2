#include "inject/agent_client.h"

#include <fmt/format.h>

#include "agent/protocol.h"
#include "base/error.h"

namespace memtap::inject {

namespace {

const std::string&
textOrThrow(const AgentValues& values, const std::string& key, std::string_view reply) {
    auto it = values.find(key);
    if (it == values.end() || it->second.empty()) {
        throw Error(
            ExitCode::Failure, fmt::format("the agent's {} reply has no {}", reply, key),
            "the agent may be from another memtap build: `memtap detach PID`, then attach again");
    }
    return it->second;
}

uint64_t
unsignedOr(const AgentValues& values, std::string_view key) {
    return static_cast<uint64_t>(std::max<int64_t>(0, numberOr(values, key, 0)));
}

} // namespace

AgentStatus
AgentStatus::fromReplyOrThrow(std::string_view payload) {
    constexpr std::string_view kReply = MEMTAP_CMD_STATUS;
    AgentStatus status;
    status.values = parseKeyValueLines(payload);
    const AgentValues& v = status.values;
    status.python = textOrThrow(v, "python", kReply);
    const std::string& mode = textOrThrow(v, "mode", kReply);
    if (mode != "exact" && mode != "sampled") {
        throw Error(
            ExitCode::Failure, fmt::format("the agent's status reply has mode '{}'", mode),
            "the agent may be from another memtap build: `memtap detach PID`, then attach again");
    }
    status.exact = mode == "exact";
    status.sampleBytes = numberOr(v, "sample_bytes", 0);
    status.tracedBytes = numberOrThrow(v, "traced_bytes", kReply);
    status.tracedCount = numberOrThrow(v, "traced_count", kReply);
    status.attachedAtUnixMs = unsignedOr(v, "attached_at_unix_ms");
    status.peakTracedBytes = tryNumber(v, "peak_traced_bytes");
    status.peakUnixMs = unsignedOr(v, "peak_unix_ms");
    auto native = v.find("native");
    status.native = native != v.end() && native->second == "yes";
    return status;
}

MallocTrimReply
MallocTrimReply::fromReplyOrThrow(std::string_view payload) {
    constexpr std::string_view kReply = MEMTAP_CMD_MALLOC_TRIM;
    AgentValues v = parseKeyValueLines(payload);
    MallocTrimReply reply;
    reply.trimResult = numberOrThrow(v, "trim_result", kReply);
    reply.rssBeforeBytes = numberOrThrow(v, "rss_before_bytes", kReply);
    reply.rssAfterBytes = numberOrThrow(v, "rss_after_bytes", kReply);
    reply.mallocFreeBeforeBytes = numberOrThrow(v, "malloc_free_before_bytes", kReply);
    reply.mallocFreeAfterBytes = numberOrThrow(v, "malloc_free_after_bytes", kReply);
    return reply;
}

std::optional<AgentClient>
AgentClient::tryConnect(pid_t pid) {
    if (auto control = ControlClient::tryConnect(pid)) {
        return AgentClient(std::move(*control));
    }
    return std::nullopt;
}

AgentClient
AgentClient::connectOrThrow(pid_t pid, const std::string& hint) {
    if (auto client = tryConnect(pid)) {
        return std::move(*client);
    }
    throw Error(ExitCode::NotAttached, fmt::format("memtap is not attached to process {}", pid), hint);
}

AgentStatus
AgentClient::statusOrThrow(std::chrono::milliseconds timeout) && {
    return AgentStatus::fromReplyOrThrow(control_.requestOrThrow(MEMTAP_CMD_STATUS, timeout));
}

std::string
AgentClient::snapshotTextOrThrow(SnapshotKind kind, std::chrono::milliseconds timeout) && {
    return control_.requestOrThrow(
        kind == SnapshotKind::Peak ? MEMTAP_CMD_SNAPSHOT_PEAK : MEMTAP_CMD_SNAPSHOT, timeout);
}

void
AgentClient::resetPeakOrThrow(std::chrono::milliseconds timeout) && {
    control_.requestOrThrow(MEMTAP_CMD_PEAK_RESET, timeout);
}

AgentValues
AgentClient::pymallocOrThrow(std::chrono::milliseconds timeout) && {
    return parseKeyValueLines(control_.requestOrThrow(MEMTAP_CMD_PYMALLOC, timeout));
}

uint64_t
AgentClient::armHeapWalkOrThrow(const std::string& arguments, std::chrono::milliseconds timeout) && {
    AgentValues reply =
        parseKeyValueLines(control_.requestOrThrow(MEMTAP_CMD_HEAP_WALK " " + arguments, timeout));
    return static_cast<uint64_t>(numberOrThrow(reply, "heap_walk_requested", MEMTAP_CMD_HEAP_WALK));
}

std::string
AgentClient::heapWalkResultOrThrow(std::chrono::milliseconds timeout) && {
    return control_.requestOrThrow(MEMTAP_CMD_HEAP_WALK_RESULT, timeout);
}

void
AgentClient::cancelHeapWalkOrThrow(std::chrono::milliseconds timeout) && {
    control_.requestOrThrow(MEMTAP_CMD_HEAP_WALK_CANCEL, timeout);
}

MallocTrimReply
AgentClient::mallocTrimOrThrow(std::chrono::milliseconds timeout) && {
    return MallocTrimReply::fromReplyOrThrow(control_.requestOrThrow(MEMTAP_CMD_MALLOC_TRIM, timeout));
}

void
AgentClient::releaseLeftoverScratchOrThrow(uint64_t address, uint64_t size,
                                           std::chrono::milliseconds timeout) && {
    control_.requestOrThrow(fmt::format(MEMTAP_CMD_RELEASE_SCRATCH " {} {}", address, size), timeout);
}

void
AgentClient::detachOrThrow(std::chrono::milliseconds timeout) && {
    control_.requestOrThrow(MEMTAP_CMD_DETACH, timeout);
}

} // namespace memtap::inject
