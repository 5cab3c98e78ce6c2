// A child process for tests: started with its output on a pipe, ready once it
// prints a line "ready", killed and reaped on scope exit (bounded waits only).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/unique_fd.h"

namespace memtap::test {

class SpawnedProcess {
public:
    // Starts argv; with mergeStderr the child's stderr goes to the pipe too
    // (uWSGI logs, and redirects its stdout, to stderr).
    SpawnedProcess(std::vector<std::string> argv, bool mergeStderr = false,
                   const std::string& workDir = {}) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            throw std::runtime_error("pipe2 failed");
        }
        UniqueFd readEnd(fds[0]);
        UniqueFd writeEnd(fds[1]);
        std::vector<char*> args;
        for (std::string& arg : argv) {
            args.push_back(arg.data());
        }
        args.push_back(nullptr);
        pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ < 0) {
            throw std::runtime_error("fork failed");
        }
        if (pid_ == 0) {
            // Child: async-signal-safe calls only. Die with the test process so
            // that a crashed test leaves nothing behind.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) {
                ::_exit(127);
            }
            ::dup2(writeEnd.get(), STDOUT_FILENO);
            int devNull = ::open("/dev/null", O_WRONLY);
            ::dup2(mergeStderr ? writeEnd.get() : devNull, STDERR_FILENO);
            if (!workDir.empty() && ::chdir(workDir.c_str()) != 0) {
                ::_exit(127);
            }
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        output_ = std::move(readEnd);
    }

    SpawnedProcess(const SpawnedProcess&) = delete;
    SpawnedProcess& operator=(const SpawnedProcess&) = delete;

    ~SpawnedProcess() { killAndReap(); }

    pid_t pid() const { return pid_; }

    // Waits at most `timeout` for a line equal to "ready"; false on timeout or EOF.
    bool waitReady(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        std::string pending;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return false;
            }
            pollfd pfd{output_.get(), POLLIN, 0};
            int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return false;
            }
            char buffer[4096];
            ssize_t got = ::read(output_.get(), buffer, sizeof(buffer));
            if (got <= 0) {
                return false;
            }
            pending.append(buffer, static_cast<size_t>(got));
            size_t newline;
            while ((newline = pending.find('\n')) != std::string::npos) {
                std::string line = pending.substr(0, newline);
                pending.erase(0, newline + 1);
                if (line == "ready") {
                    return true;
                }
            }
        }
    }

    // Waits (bounded) until the main thread blocks in one of `syscalls`, as read
    // from /proc/PID/syscall (proc(5): the number first, "running" when none).
    // A target that printed "ready" may still be finishing that write.
    bool waitInSyscall(const std::vector<long>& syscalls,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        std::string path = fmt::format("/proc/{}/syscall", pid_);
        while (std::chrono::steady_clock::now() < deadline) {
            UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
            char buffer[64] = {};
            if (fd && ::read(fd.get(), buffer, sizeof(buffer) - 1) > 0) {
                long number = std::strtol(buffer, nullptr, 10);
                for (long wanted : syscalls) {
                    if (buffer[0] >= '0' && buffer[0] <= '9' && number == wanted) {
                        return true;
                    }
                }
            }
            ::usleep(5000);
        }
        return false;
    }

    void killAndReap() {
        if (pid_ <= 0) {
            return;
        }
        ::kill(pid_, SIGKILL);
        // SIGKILL cannot be blocked, so this wait ends; bounded anyway.
        for (int i = 0; i < 500; ++i) {
            int status = 0;
            pid_t r = ::waitpid(pid_, &status, WNOHANG | __WALL);
            if (r == pid_ || (r < 0 && errno == ECHILD)) {
                break;
            }
            ::usleep(10000);
        }
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;
    UniqueFd output_;
};

// A Python one-liner valid in Python 2 and 3: announce, then park in sleep.
// The syscalls time.sleep() parks in: select() before 3.11, clock_nanosleep() after
// (Modules/timemodule.c, pysleep).
inline std::vector<long>
sleepSyscalls() {
    return {SYS_select, SYS_pselect6, SYS_nanosleep, SYS_clock_nanosleep};
}

inline std::vector<std::string>
parkedPython(const std::string& python) {
    return {python, "-c",
            "import sys, time\nsys.stdout.write('ready\\n')\nsys.stdout.flush()\ntime.sleep(100)\n"};
}

} // namespace memtap::test
