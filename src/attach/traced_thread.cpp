#include "attach/traced_thread.h"

#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "attach/proc.h"
#include "base/error.h"
#include "base/permission_hint.h"

namespace memtap::attach {
namespace {

using Clock = std::chrono::steady_clock;

} // namespace

TracedThread
TracedThread::seizeAndStopOrThrow(pid_t pid, pid_t tid, std::chrono::milliseconds timeout) {
    TracedThread thread(pid, tid);
    // TRACESYSGOOD: syscall stops report SIGTRAP|0x80, told apart from a real
    // SIGTRAP. No EXITKILL, ever (see the header).
    if (::ptrace(PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void*>(PTRACE_O_TRACESYSGOOD)) != 0) {
        int err = errno;
        if (err == ESRCH) {
            throw Error(ExitCode::NoSuchProcess, fmt::format("process {} exited during attach", pid));
        }
        if (err == EPERM) {
            auto info = readProcessInfoOrThrow(pid);
            if (info.tracerPid != 0) {
                throw Error(
                    ExitCode::PermissionDenied,
                    fmt::format("process {} is already being traced by PID {}", pid, info.tracerPid),
                    "detach the other debugger (gdb, strace, py-spy...) and retry");
            }
            throw Error(ExitCode::PermissionDenied,
                        describeErrno(fmt::format("cannot ptrace process {}", pid), err),
                        processAccessHint());
        }
        throw Error(ExitCode::Failure,
                    describeErrno(fmt::format("PTRACE_SEIZE of thread {}", tid), err));
    }
    thread.attached_ = true;
    if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
        throw Error(ExitCode::NoSuchProcess, fmt::format("process {} exited during attach", pid));
    }
    // Wait for the interrupt stop; a signal-delivery-stop may come first.
    for (;;) {
        Stop stop = thread.waitForStopOrThrow(timeout);
        if (stop.kind == Stop::Kind::Interrupt) {
            return thread;
        }
        if (stop.kind == Stop::Kind::Exited) {
            throw Error(ExitCode::NoSuchProcess, fmt::format("process {} exited during attach", pid));
        }
        // Deliver it now, siginfo and all, as if we were not there; the
        // interrupt is still pending and stops the thread after it.
        thread.resumeOrThrow(Resume::Continue, stop.kind == Stop::Kind::Signal ? stop.signal : 0);
    }
}

void
TracedThread::resumeOrThrow(Resume how, int signal) {
    stoppedTotal_ += std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - stoppedAt_);
    int request = how == Resume::SingleStep  ? PTRACE_SINGLESTEP
                  : how == Resume::ToSyscall ? PTRACE_SYSCALL
                                             : PTRACE_CONT;
    if (::ptrace(static_cast<__ptrace_request>(request), tid_, nullptr,
                 reinterpret_cast<void*>(static_cast<uintptr_t>(signal))) != 0) {
        alive_ = false;
        throw Error(ExitCode::NoSuchProcess, fmt::format("process {} exited during attach", pid_));
    }
    stopped_ = false;
}

TracedThread::TracedThread(TracedThread&& other) noexcept
    : pid_(other.pid_), tid_(other.tid_), alive_(other.alive_), attached_(other.attached_),
      stopped_(other.stopped_), pendingSignals_(std::move(other.pendingSignals_)),
      stoppedAt_(other.stoppedAt_), stoppedTotal_(other.stoppedTotal_) {
    other.attached_ = false;
}

TracedThread::~TracedThread() {
    detach();
}

// waitpid has no timeout. A one-shot ITIMER_REAL whose SIGALRM handler does
// nothing (and is installed without SA_RESTART) makes a blocking waitpid
// return EINTR when the time is up, so a stop is seen the moment it happens
// instead of at the next poll (memtap's host process is single-threaded).
class WaitDeadline {
public:
    explicit WaitDeadline(std::chrono::milliseconds timeout) {
        struct sigaction action {};
        action.sa_handler = [](int) {};
        sigemptyset(&action.sa_mask);
        action.sa_flags = 0; // no SA_RESTART: interrupt the waitpid
        ::sigaction(SIGALRM, &action, &oldAction_);
        itimerval timer{};
        timer.it_value.tv_sec = timeout.count() / 1000;
        timer.it_value.tv_usec = (timeout.count() % 1000) * 1000 + 1;
        // Keep ticking: an expiry that lands just before waitpid is entered
        // would otherwise be lost and leave it blocked for good.
        timer.it_interval.tv_usec = 20000;
        ::setitimer(ITIMER_REAL, &timer, &oldTimer_);
    }
    ~WaitDeadline() {
        itimerval off{};
        ::setitimer(ITIMER_REAL, &off, nullptr);
        ::sigaction(SIGALRM, &oldAction_, nullptr);
    }
    WaitDeadline(const WaitDeadline&) = delete;
    WaitDeadline& operator=(const WaitDeadline&) = delete;

private:
    struct sigaction oldAction_ {};
    itimerval oldTimer_{};
};

Stop
TracedThread::waitForStopOrThrow(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    WaitDeadline alarm(timeout);
    for (;;) {
        int status = 0;
        pid_t got = ::waitpid(tid_, &status, __WALL);
        if (got == tid_) {
            if (WIFEXITED(status) || WIFSIGNALED(status)) {
                alive_ = false;
                attached_ = false;
                stopped_ = false;
                return Stop{Stop::Kind::Exited, 0};
            }
            stoppedAt_ = Clock::now();
            stopped_ = true;
            int sig = WSTOPSIG(status);
            if ((status >> 16) == PTRACE_EVENT_STOP) {
                return Stop{Stop::Kind::Interrupt, sig};
            }
            if (sig == (SIGTRAP | 0x80)) {
                return Stop{Stop::Kind::Syscall, SIGTRAP};
            }
            return Stop{Stop::Kind::Signal, sig};
        }
        if (got < 0 && errno != EINTR) {
            alive_ = false;
            attached_ = false;
            return Stop{Stop::Kind::Exited, 0};
        }
        if (Clock::now() >= deadline) {
            throw Error(ExitCode::Timeout,
                        fmt::format("thread {} of process {} did not stop within {} ms", tid_, pid_,
                                    timeout.count()));
        }
    }
}

Stop
TracedThread::resumeAndWaitOrThrow(bool singleStep, int expectedSignal,
                                   std::chrono::milliseconds timeout) {
    int deliver = 0;
    for (;;) {
        resumeOrThrow(singleStep ? Resume::SingleStep : Resume::Continue, deliver);
        deliver = 0;
        Stop stop = waitForStopOrThrow(timeout);
        if (stop.kind == Stop::Kind::Exited) {
            throw Error(ExitCode::NoSuchProcess, fmt::format("process {} exited during attach", pid_));
        }
        if (stop.kind == Stop::Kind::Signal && stop.signal != expectedSignal) {
            deliver = stop.signal; // the target's own signal: deliver it, as without us
            continue;
        }
        if (stop.kind == Stop::Kind::Interrupt && stop.signal != SIGTRAP) {
            // A group-stop (someone sent SIGSTOP/SIGTSTP): re-raise it after detach.
            pendingSignals_.push_back(stop.signal);
            continue;
        }
        return stop;
    }
}

void
TracedThread::detach() noexcept {
    if (!attached_) {
        return;
    }
    attached_ = false;
    if (!stopped_ && alive_) {
        // PTRACE_DETACH needs a stopped tracee: interrupt it where it is
        // (registers untouched) and let it go from there.
        if (::ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) == 0) {
            for (int waited = 0; waited < 2000 && !stopped_; ++waited) { // at most ~2 s
                int status = 0;
                pid_t got = ::waitpid(tid_, &status, __WALL | WNOHANG);
                if (got < 0 || (got == tid_ && (WIFEXITED(status) || WIFSIGNALED(status)))) {
                    return;
                }
                if (got == 0) {
                    ::usleep(1000);
                    continue;
                }
                if ((status >> 16) == PTRACE_EVENT_STOP) {
                    stopped_ = true;
                    break;
                }
                int sig = WSTOPSIG(status);
                int deliver = (sig == (SIGTRAP | 0x80)) ? 0 : sig;
                ::ptrace(PTRACE_CONT, tid_, nullptr,
                         reinterpret_cast<void*>(static_cast<uintptr_t>(deliver)));
            }
        }
    }
    stoppedTotal_ += std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - stoppedAt_);
    ::ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
    stopped_ = false;
    for (int sig : pendingSignals_) {
        ::syscall(SYS_tgkill, pid_, tid_, sig);
    }
    pendingSignals_.clear();
}

std::chrono::microseconds
TracedThread::stoppedFor() const {
    return stoppedTotal_;
}

} // namespace memtap::attach
