// Guards of the host process during an attach: termination signals held
// while a thread is borrowed, and recorded for an honest exit afterwards; one
// attach at a time per target.
#pragma once

#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <cstddef>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/unique_fd.h"
#include "inject/leftover_scratch.h"
#include "inject/remote_call.h"

namespace memtap::inject {

// Catchable termination signals wait while the target is being changed, so
// Ctrl-C or a plain `kill` of memtap cannot leave a thread half-hijacked; they
// take effect as soon as the guards have run. (SIGKILL cannot be deferred: the
// kernel then detaches and the borrowed thread is the one risk; the window is
// a few milliseconds.)
class DeferTerminationSignals {
public:
    DeferTerminationSignals() {
        sigset_t set;
        sigemptyset(&set);
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
            sigaddset(&set, sig);
        }
        ::sigprocmask(SIG_BLOCK, &set, &old_);
    }
    ~DeferTerminationSignals() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }
    DeferTerminationSignals(const DeferTerminationSignals&) = delete;
    DeferTerminationSignals& operator=(const DeferTerminationSignals&) = delete;

private:
    sigset_t old_;
};

// Ctrl-C, SIGTERM, SIGHUP and SIGQUIT during an attach are recorded instead
// of ending memtap wherever it is, so that the exit can say what state the
// target is in. (While a thread is borrowed they are blocked as well, above.)
inline volatile sig_atomic_t g_interruptSignal = 0;

class InterruptWatch {
public:
    InterruptWatch() {
        struct sigaction action {};
        action.sa_handler = [](int sig) { g_interruptSignal = sig; };
        sigemptyset(&action.sa_mask);
        g_interruptSignal = 0;
        for (size_t i = 0; i < std::size(kSignals); ++i) {
            ::sigaction(kSignals[i], &action, &old_[i]);
        }
    }
    ~InterruptWatch() {
        for (size_t i = 0; i < std::size(kSignals); ++i) {
            ::sigaction(kSignals[i], &old_[i], nullptr);
        }
    }
    InterruptWatch(const InterruptWatch&) = delete;
    InterruptWatch& operator=(const InterruptWatch&) = delete;

    // Throws when a signal came: the message says whether the agent is in.
    void throwIfInterrupted(pid_t pid, bool agentStarted) const {
        int sig = g_interruptSignal;
        if (sig == 0) {
            return;
        }
        // Shell convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
        auto code = static_cast<ExitCode>(128 + sig);
        if (agentStarted) {
            throw Error(
                code,
                fmt::format("interrupted by SIG{}: memtap is attached to process {} (its agent "
                            "is starting or running)",
                            sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", pid),
                fmt::format("check with `memtap status {0}`, remove it with `memtap detach {0}`", pid));
        }
        throw Error(code,
                    fmt::format("interrupted by SIG{} before process {} was changed; it is left as "
                                "it was",
                                sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", pid));
    }

private:
    static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    struct sigaction old_[std::size(kSignals)]{};
};

// One attach at a time per target: an abstract Unix socket named after the
// target (PID and start time) is bound for the whole attach. The kernel drops
// it when memtap exits, however it exits; no file is left anywhere.
class AttachLock {
public:
    static std::optional<AttachLock> tryLock(pid_t pid) {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) {
            throw Error(ExitCode::Failure, describeErrno("socket for the attach lock", errno));
        }
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::string name = fmt::format("memtap-attach-{}-{}", pid, processStartTime(pid));
        std::memcpy(address.sun_path + 1, name.data(), name.size()); // sun_path[0] = 0: abstract
        auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
            if (errno == EADDRINUSE) {
                return std::nullopt;
            }
            throw Error(ExitCode::Failure, describeErrno("binding the attach lock", errno));
        }
        return AttachLock(std::move(fd));
    }

private:
    explicit AttachLock(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

} // namespace memtap::inject
