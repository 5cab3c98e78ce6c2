#include "attach/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <sstream>

#include "base/error.h"
#include "base/permission_hint.h"
#include "base/unique_fd.h"

namespace memtap::attach {

namespace {

// /proc files report st_size 0: read until EOF. False with errno set on an
// error (ESRCH when the process exits while we read).
bool
tryReadToEnd(int fd, std::string& text) {
    char buffer[16384];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return false;
        }
        if (n == 0) {
            return true;
        }
        text.append(buffer, static_cast<size_t>(n));
    }
}

} // namespace

std::optional<std::string>
readWholeFile(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    std::string text;
    if (!fd || !tryReadToEnd(fd.get(), text)) {
        return std::nullopt;
    }
    return text;
}

std::string
readProcFileOrThrow(pid_t pid, const std::string& name) {
    std::string path = fmt::format("/proc/{}/{}", pid, name);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        int err = errno;
        struct stat st {};
        std::string procDir = fmt::format("/proc/{}", pid);
        if (err == ENOENT && ::stat(procDir.c_str(), &st) != 0) {
            throw Error(ExitCode::NoSuchProcess, fmt::format("no process with PID {}", pid));
        }
        if (err == EACCES || err == EPERM) {
            throw Error(ExitCode::PermissionDenied, describeErrno("cannot read " + path, err),
                        processAccessHint());
        }
        throw Error(ExitCode::Failure, describeErrno("cannot open " + path, err));
    }
    std::string text;
    if (!tryReadToEnd(fd.get(), text)) {
        int err = errno;
        // A process that exits while we read makes the read fail with ESRCH.
        if (err == ESRCH) {
            throw Error(ExitCode::NoSuchProcess, fmt::format("no process with PID {}", pid));
        }
        if (err == EACCES || err == EPERM) {
            throw Error(ExitCode::PermissionDenied, describeErrno("cannot read " + path, err),
                        processAccessHint());
        }
        throw Error(ExitCode::Failure, describeErrno("cannot read " + path, err));
    }
    return text;
}

ProcessInfo
readProcessInfoOrThrow(pid_t pid) {
    auto status = readWholeFile(fmt::format("/proc/{}/status", pid));
    if (!status) {
        throw Error(ExitCode::NoSuchProcess, fmt::format("no process with PID {}", pid),
                    "check the PID with `ps` or `pgrep`");
    }
    ProcessInfo info;
    info.pid = pid;
    std::istringstream lines(*status);
    std::string line;
    while (std::getline(lines, line)) {
        auto value = [&](std::string_view key) -> std::optional<std::string> {
            if (line.rfind(key, 0) != 0) {
                return std::nullopt;
            }
            auto rest = line.substr(key.size());
            auto start = rest.find_first_not_of(" \t");
            return start == std::string::npos ? std::string() : rest.substr(start);
        };
        if (auto v = value("Name:")) {
            info.name = *v;
        } else if (auto v = value("State:")) {
            info.state = v->empty() ? '?' : (*v)[0];
        } else if (auto v = value("Uid:")) {
            // Real, effective, saved, filesystem: ptrace checks the effective one.
            std::istringstream ids(*v);
            uid_t real = 0;
            ids >> real >> info.effectiveUid;
        } else if (auto v = value("TracerPid:")) {
            info.tracerPid = std::atoi(v->c_str());
        } else if (auto v = value("Threads:")) {
            info.threads = std::atoi(v->c_str());
        }
    }
    return info;
}

std::vector<pid_t>
listThreads(pid_t pid) {
    std::vector<pid_t> tids;
    DIR* dir = ::opendir(fmt::format("/proc/{}/task", pid).c_str());
    if (dir == nullptr) {
        return tids;
    }
    while (dirent* entry = ::readdir(dir)) {
        pid_t tid = 0;
        auto name = std::string_view(entry->d_name);
        auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), tid);
        if (ec == std::errc() && ptr == name.data() + name.size()) {
            tids.push_back(tid);
        }
    }
    ::closedir(dir);
    return tids;
}

ThreadSyscall
parseThreadSyscall(const std::string& text) {
    ThreadSyscall result;
    std::istringstream in(text);
    std::string first;
    if (!(in >> first)) {
        return result;
    }
    if (first == "running") {
        result.kind = ThreadSyscall::Kind::Running;
        return result;
    }
    result.number = std::strtol(first.c_str(), nullptr, 10);
    // "-1 SP PC": blocked, but not in a syscall; "NR A1..A6 SP PC": in syscall NR.
    std::vector<std::string> fields;
    for (std::string field; in >> field;) {
        fields.push_back(field);
    }
    if (fields.size() >= 2) {
        result.stackPointer = RemotePtr(std::strtoull(fields[fields.size() - 2].c_str(), nullptr, 16));
        result.programCounter = RemotePtr(std::strtoull(fields.back().c_str(), nullptr, 16));
    }
    result.kind =
        result.number < 0 ? ThreadSyscall::Kind::BlockedOutsideSyscall : ThreadSyscall::Kind::InSyscall;
    return result;
}

ThreadSyscall
readThreadSyscall(pid_t pid, pid_t tid) {
    auto text = readWholeFile(fmt::format("/proc/{}/task/{}/syscall", pid, tid));
    return text ? parseThreadSyscall(*text) : ThreadSyscall{};
}

int
countOpenFds(pid_t pid) {
    DIR* dir = ::opendir(fmt::format("/proc/{}/fd", pid).c_str());
    if (dir == nullptr) {
        return -1;
    }
    int count = 0;
    while (dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] != '.') {
            ++count;
        }
    }
    ::closedir(dir);
    return count;
}

std::optional<uint64_t>
tryReadProcessStartTime(pid_t pid) {
    auto stat = readWholeFile(fmt::format("/proc/{}/stat", pid));
    auto close = stat ? stat->rfind(')') : std::string::npos;
    if (close == std::string::npos || close + 2 > stat->size()) {
        return std::nullopt;
    }
    // Fields after the ")" that closes the command name (which may hold
    // spaces and parentheses) start at 3, the state (proc(5)).
    std::istringstream fields(stat->substr(close + 2));
    std::string field;
    for (int i = 3; i <= 22; ++i) {
        if (!(fields >> field)) {
            return std::nullopt;
        }
    }
    return std::strtoull(field.c_str(), nullptr, 10);
}

} // namespace memtap::attach
