// Getting the agent's code into the target, on the borrowed thread.
//
// Two deliveries, both from the image embedded in memtap (agent_image.h):
//  - memfd (the default): memfd_create in the target, filled through
//    /proc/PID/fd/N, dlopen("/proc/self/fd/N"), close. Nothing touches a
//    file system.
//  - file: for a target that may not call memfd_create (a seccomp filter,
//    an old kernel): the image is written to a new file in the target's
//    /dev/shm or /tmp (as its mount namespace sees them, through
//    /proc/PID/root; O_EXCL, owned by the target's user, not on a noexec
//    mount), dlopen'ed by path and unlinked at once.
// Either way the loaded agent is named "memtap-agent-<build id>" in
// /proc/PID/maps, which is how a later attach finds it and reuses it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>

#include "attach/remote_memory.h"
#include "base/remote_ptr.h"
#include "inject/remote_call.h"
#include "symbols/process_modules.h"

namespace memtap::inject {

enum class AgentDelivery { Memfd, File };

// Base address of the agent already loaded in the target (by either delivery).
std::optional<RemotePtr> findLoadedAgent(pid_t pid);

// Loads the agent on `hijacked`, whose scratch holds the strings. Returns its
// base address. A memfd delivery that the target's kernel refuses (EPERM,
// ENOSYS, EACCES) falls back to the file delivery.
RemotePtr loadAgentOrThrow(HijackedThread& hijacked, pid_t pid, const attach::RemoteMemory& memory,
                           const symbols::ProcessModules& modules, AgentDelivery delivery,
                           std::chrono::milliseconds timeout);

} // namespace memtap::inject
