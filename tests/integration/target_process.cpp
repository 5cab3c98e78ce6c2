#include "target_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace memtap::testing {

TargetProcess::TargetProcess(const std::vector<std::string>& argv, const std::string& cwd) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe2 failed");
    }
    pid_ = ::fork();
    if (pid_ == 0) {
        ::dup2(fds[1], 1);
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
            ::_exit(126);
        }
        std::vector<char*> args;
        for (const auto& a : argv) {
            args.push_back(const_cast<char*>(a.c_str()));
        }
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
}

TargetProcess::~TargetProcess() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) {
        ::close(out_);
    }
}

bool
TargetProcess::running() const {
    return ::waitpid(pid_, nullptr, WNOHANG) == 0;
}

std::string
TargetProcess::waitForLine(const std::string& prefix, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        for (auto nl = buffer_.find('\n'); nl != std::string::npos; nl = buffer_.find('\n')) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            if (line.rfind(prefix, 0) == 0) {
                return line;
            }
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            throw std::runtime_error("target " + std::to_string(pid_) + " did not print '" + prefix +
                                     "' in time");
        }
        pollfd pfd{out_, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left.count())) > 0) {
            char chunk[4096];
            ssize_t n = ::read(out_, chunk, sizeof(chunk));
            if (n <= 0) {
                throw std::runtime_error("target " + std::to_string(pid_) +
                                         " closed its output (exited?)");
            }
            buffer_.append(chunk, static_cast<size_t>(n));
        }
    }
}

std::map<std::string, std::string>
TargetProcess::check(std::chrono::milliseconds timeout) {
    std::string nonce = std::to_string(++checks_);
    std::string path = "/tmp/memtap-check-" + std::to_string(pid_);
    { std::ofstream(path) << nonce << "\n"; }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        // To the main thread: Python runs handlers there, and a process-directed
        // signal may land on a thread whose wakeup the main thread never sees
        // while it sleeps in a lock wait.
        ::syscall(SYS_tgkill, pid_, pid_, SIGUSR1);
        auto retryAt = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(2));
        try {
            for (;;) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    retryAt - std::chrono::steady_clock::now());
                auto facts =
                    parseFacts(waitForLine("check ", std::max(left, std::chrono::milliseconds(1))));
                if (facts["nonce"] == nonce) {
                    std::remove(path.c_str());
                    return facts;
                }
            }
        } catch (const std::runtime_error&) {
            if (std::chrono::steady_clock::now() >= deadline) {
                std::remove(path.c_str());
                throw;
            }
        }
    }
}

std::map<std::string, std::string>
parseFacts(const std::string& line) {
    std::map<std::string, std::string> facts;
    std::istringstream in(line);
    std::string word;
    in >> word; // "ready" / "check"
    while (in >> word) {
        auto eq = word.find('=');
        if (eq != std::string::npos) {
            facts[word.substr(0, eq)] = word.substr(eq + 1);
        }
    }
    return facts;
}

std::string
testPython() {
    const char* python = std::getenv("MEMTAP_TEST_PYTHON");
    return python ? python : "/usr/bin/python3";
}

std::string
parkedTargetScript() {
    const char* dir = std::getenv("MEMTAP_TEST_TARGETS");
    return std::string(dir ? dir : "tests/targets") + "/parked_target.py";
}

bool
ptraceIsPermitted() {
    pid_t child = ::fork();
    if (child == 0) {
        ::pause();
        ::_exit(0);
    }
    bool ok = ::ptrace(PTRACE_SEIZE, child, nullptr, nullptr) == 0;
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    return ok;
}

} // namespace memtap::testing
