// Host end of the agent's control socket (protocol.h): one request, one reply.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "base/unique_fd.h"

namespace memtap::inject {

// Path of the socket inside the target's mount namespace.
std::string agentSocketPath(pid_t pid);

// Removes, from the /tmp the target sees, agent sockets left by processes
// that are gone (an agent whose process was SIGKILLed cannot unlink its
// socket). Only when the target shares memtap's PID namespace (the number in
// the name is then a PID we can check), only sockets nobody listens on.
// Returns how many were removed; errors are not the caller's concern.
int removeStaleAgentSockets(pid_t pid) noexcept;

class ControlClient {
public:
    // Connects through /proc/PID/root, so a target in another mount namespace
    // works. nullopt when no agent listens (not attached).
    static std::optional<ControlClient> tryConnect(pid_t pid);

    // Sends "command\n" and returns the payload of "ok N\n"; an "err" reply
    // becomes Error(Failure, "agent: <message>"). Waits at most `timeout`;
    // on timeout the connection is closed before Error(Timeout) is thrown,
    // so the agent does not act on a detach whose client gave up.
    std::string requestOrThrow(const std::string& command, std::chrono::milliseconds timeout);

private:
    ControlClient(UniqueFd fd, pid_t pid) : fd_(std::move(fd)), pid_(pid) {}
    UniqueFd fd_;
    pid_t pid_;
};

} // namespace memtap::inject
