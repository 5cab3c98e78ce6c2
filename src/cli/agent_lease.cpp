#include "cli/agent_lease.h"

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "attach/proc.h"
#include "base/error.h"
#include "cli/target_status.h"
#include "inject/control_client.h"

namespace memtap::cli {
namespace {

constexpr std::chrono::milliseconds kAgentTimeout{10000};

} // namespace

void
noteToStderr(const std::string& line) {
    std::fprintf(stderr, "memtap: %s\n", line.c_str());
}

AgentLease
AgentLease::attachOrThrow(pid_t pid, const inject::AttachOptions& options, const ModeFlags& asked,
                          const char* command) {
    noteToStderr(fmt::format("attaching to {}...", pid));
    auto result = inject::attachOrThrow(pid, options);
    if (result.alreadyAttached) {
        if (auto agent = tryReadAgentStatus(pid)) {
            refuseModeChangeOrContinue(pid, asked, options, *agent);
        }
        noteToStderr(
            fmt::format("memtap was already attached to {}; {} will leave it attached", pid, command));
    }
    return AgentLease(pid, result.python, !result.alreadyAttached);
}

AgentLease::~AgentLease() {
    try {
        endOrThrow();
    } catch (const std::exception& e) {
        noteToStderr(
            fmt::format("could not detach from {}: {} (run `memtap detach {}`)", pid_, e.what(), pid_));
    }
}

void
AgentLease::endOrThrow() {
    if (!std::exchange(owned_, false)) {
        return;
    }
    noteToStderr(fmt::format("detaching from {}...", pid_));
    try {
        inject::detachOrThrow(pid_, kAgentTimeout);
    } catch (const Error& e) {
        // A target that exited, or that someone else detached meanwhile,
        // has nothing left of ours in it.
        if (e.code() != ExitCode::NoSuchProcess && e.code() != ExitCode::NotAttached) {
            throw;
        }
    }
}

inject::AgentStatus
agentStatusOrThrow(pid_t pid) {
    attach::readProcessInfoOrThrow(pid); // a target that exited says so, not "not attached"
    auto client = inject::AgentClient::tryConnect(pid);
    if (!client) {
        throw Error(ExitCode::NotAttached,
                    fmt::format("memtap is no longer attached to process {}", pid),
                    "another `memtap detach` ended the agent meanwhile");
    }
    return std::move(*client).statusOrThrow(kAgentTimeout);
}

} // namespace memtap::cli
