#include "inject/control_client.h"
#include "inject/agent_values.h"

#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <utility>

#include "base/error.h"
#include "base/permission_hint.h"

namespace memtap::inject {

std::string
agentSocketPath(pid_t pid) {
    return fmt::format("/tmp/memtap-{}.sock", pid);
}

int
removeStaleAgentSockets(pid_t pid) noexcept {
    struct stat ours {};
    struct stat theirs {};
    if (::stat("/proc/self/ns/pid", &ours) != 0 ||
        ::stat(fmt::format("/proc/{}/ns/pid", pid).c_str(), &theirs) != 0 ||
        ours.st_ino != theirs.st_ino) {
        return 0;
    }
    std::string dir = fmt::format("/proc/{}/root/tmp", pid);
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        return 0;
    }
    int removed = 0;
    while (dirent* entry = ::readdir(d)) {
        int owner = 0;
        char tail[8] = {};
        if (std::sscanf(entry->d_name, "memtap-%d.so%7s", &owner, tail) != 2 ||
            std::strcmp(tail, "ck") != 0 || owner <= 0 || (::kill(owner, 0) == 0 || errno != ESRCH)) {
            continue; // not ours, or its process lives
        }
        std::string path = dir + "/" + entry->d_name;
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
            continue;
        }
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path.size() >= sizeof(addr.sun_path)) {
            continue;
        }
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (fd && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
            errno == ECONNREFUSED && ::unlink(path.c_str()) == 0) {
            ++removed;
        }
    }
    ::closedir(d);
    return removed;
}

std::optional<ControlClient>
ControlClient::tryConnect(pid_t pid) {
    std::string path = fmt::format("/proc/{}/root{}", pid, agentSocketPath(pid));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
        throw Error(ExitCode::Failure, fmt::format("socket path too long: {}", path));
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        throw Error(ExitCode::Failure, describeErrno("socket", errno));
    }
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        int err = errno;
        if (err == EACCES || err == EPERM) {
            throw Error(
                ExitCode::PermissionDenied,
                describeErrno(fmt::format("cannot connect to the agent of process {}", pid), err),
                agentAccessHint());
        }
        return std::nullopt; // ENOENT, ECONNREFUSED: nobody listening
    }
    return ControlClient(std::move(fd), pid);
}

std::string
ControlClient::requestOrThrow(const std::string& command, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string line = command + "\n";
    if (::send(fd_.get(), line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
        throw Error(ExitCode::Failure, describeErrno("sending to the agent", errno));
    }
    std::string data;
    std::optional<size_t> payloadSize;
    size_t headerEnd = 0;
    char buffer[65536];
    for (;;) {
        if (!payloadSize) {
            if (auto nl = data.find('\n'); nl != std::string::npos) {
                std::string header = data.substr(0, nl);
                headerEnd = nl + 1;
                if (header.rfind("err ", 0) == 0) {
                    throw Error(ExitCode::Failure,
                                fmt::format("agent in process {}: {}", pid_, header.substr(4)));
                }
                if (header.rfind("ok ", 0) != 0) {
                    throw Error(ExitCode::Failure,
                                fmt::format("agent sent a malformed reply: {}", header));
                }
                payloadSize = tryParseUnsigned(header.substr(3));
                if (!payloadSize) {
                    throw Error(ExitCode::Failure,
                                fmt::format("agent sent a malformed reply: {}", header),
                                "the agent may be from another memtap build: `memtap detach PID`, then "
                                "attach again");
                }
            }
        }
        if (payloadSize && data.size() >= headerEnd + *payloadSize) {
            return data.substr(headerEnd, *payloadSize);
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            // Closed before anyone hears of the failure: the agent acts on a
            // state-changing request only while its client is still
            // connected (protocol.h), so a detach we report as timed out
            // and that has not started yet never runs later.
            fd_.reset();
            throw Error(ExitCode::Timeout,
                        fmt::format("the agent in process {} did not answer '{}' within {} ms", pid_,
                                    command, timeout.count()));
        }
        pollfd pfd{fd_.get(), POLLIN, 0};
        int ready = ::poll(&pfd, 1, static_cast<int>(std::min<long>(left.count(), 250)));
        if (ready < 0 && errno != EINTR) {
            throw Error(ExitCode::Failure, describeErrno("poll", errno));
        }
        if (ready <= 0) {
            continue;
        }
        ssize_t n = ::recv(fd_.get(), buffer, sizeof(buffer), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            throw Error(
                ExitCode::Failure,
                fmt::format("the agent in process {} closed the connection during '{}'", pid_, command));
        }
        data.append(buffer, static_cast<size_t>(n));
    }
}

} // namespace memtap::inject
