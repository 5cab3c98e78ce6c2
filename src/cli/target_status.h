// What `status` reports: the agent's own figures plus what the host reads
// from /proc (RSS), in one plain struct that text and JSON are printed from.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "inject/agent_client.h"
#include "inject/agent_values.h"
#include "report/memory_breakdown.h"

namespace memtap::cli {

struct TargetStatus {
    pid_t pid = 0;
    bool attached = false;
    std::string python;
    int64_t rssBytes = 0;
    uint64_t nowUnixMs = 0;    // when it was read (for "the peak was N s ago"); 0: unknown
    inject::AgentValues agent; // every line of the agent's status reply (inject::AgentStatus::values)
    // RSS explained (memory_figures.h); the text and JSON show it when set.
    std::optional<report::BreakdownInput> memory;
};

// Error(NotSupported) if the process runs no supported CPython.
TargetStatus readTargetStatusOrThrow(pid_t pid);
// The agent's status, or nullopt if it cannot be asked right now.
std::optional<inject::AgentStatus> tryReadAgentStatus(pid_t pid);
// The agent's KEY VALUE replies, typed (inject/agent_values.h).
using inject::numberOr;
using inject::parseKeyValueLines;
using inject::tryNumber;
int64_t readRssBytes(pid_t pid);

// The agent's hook-chain keys (protocol.h: hooks, hook_chain,
// hook_reinstalls...) in plain words. hookChainProblem is set when what the
// agent reports is incomplete: hooks were cut out and re-installed (what was
// allocated in between was not seen) or could not be re-installed.
// hookChainState is the one-line state for the status text.
std::optional<std::string> hookChainProblem(const std::map<std::string, std::string>& agent);
std::string hookChainState(const std::map<std::string, std::string>& agent);

// "traced since 14:02:11 (3 min ago); 1391 MiB of RSS predates it and is not
// traced", from attached_at_unix_ms and rss_at_attach_bytes; nullopt for an
// agent that does not report them.
std::optional<std::string> tracedSince(const std::map<std::string, std::string>& agent);
// "12 s", "3 min", "2 h 5 min".
std::string describeAge(long long seconds);

std::string renderStatusJson(const TargetStatus& status);
std::string renderStatusText(const TargetStatus& status);

} // namespace memtap::cli
