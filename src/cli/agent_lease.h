// The agent in one process for as long as a command that watches it runs
// (watch, record). Only an agent that the command attached is detached again;
// one that was there before stays.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <utility>

#include "cli/commands.h"
#include "inject/agent_client.h"
#include "inject/injector.h"

namespace memtap::cli {

class AgentLease {
public:
    // Attaches (progress on stderr), or takes over an agent already serving
    // after refuseModeChangeOrContinue. `command` names the caller in the
    // note that an agent already there stays ("watch will leave it attached").
    static AgentLease attachOrThrow(pid_t pid, const inject::AttachOptions& options,
                                    const ModeFlags& asked, const char* command);
    AgentLease(AgentLease&& other) noexcept
        : pid_(other.pid_), python_(std::move(other.python_)),
          owned_(std::exchange(other.owned_, false)) {}
    AgentLease& operator=(AgentLease&&) = delete;
    // Reached only when an error is already on its way to main's catch
    // site: reports a failed detach, since it cannot be thrown.
    ~AgentLease();

    pid_t pid() const { return pid_; }
    // The process died: nothing of ours is left in it to detach.
    void forget() { owned_ = false; }
    // Whether ending the lease detaches (the command attached the agent).
    bool owned() const { return owned_; }
    const std::string& python() const { return python_; }
    void endOrThrow();

private:
    AgentLease(pid_t pid, std::string python, bool owned)
        : pid_(pid), python_(std::move(python)), owned_(owned) {}
    pid_t pid_;
    std::string python_;
    bool owned_;
};

// The agent's status. Error(NoSuchProcess) for a target that exited
// (not "not attached"); Error(NotAttached) when the agent is gone.
inject::AgentStatus agentStatusOrThrow(pid_t pid);

// "memtap: LINE" on stderr.
void noteToStderr(const std::string& line);

} // namespace memtap::cli
