// The hints for "permission denied": processAccessHint() for "memtap may not
// look into that process" (ptrace, /proc/PID/mem, maps, the user namespace):
// who may, and the Yama setting that also decides it; agentAccessHint() for
// an agent's socket.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include <fmt/format.h>

namespace memtap {

inline std::string
processAccessHint() {
    std::string hint = "run memtap as root, or as the target's user with CAP_SYS_PTRACE";
    // Yama (Documentation/admin-guide/LSM/Yama.rst): above 0 a user may not
    // trace its own processes unless they are its descendants.
    char scope = '0';
    int fd = ::open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (::read(fd, &scope, 1) != 1) {
            scope = '0';
        }
        ::close(fd);
    }
    if (scope != '0') {
        hint += fmt::format("; kernel.yama.ptrace_scope is {} (0 lets a user trace its own processes: "
                            "sysctl kernel.yama.ptrace_scope=0)",
                            scope);
    }
    return hint;
}

// For the agent's socket, which only root and the user that attached may use
// (protocol.h, peer_uid).
inline std::string
agentAccessHint() {
    return "run memtap as root, or as the user that attached";
}

} // namespace memtap
