// One target thread under ptrace, from PTRACE_SEIZE to PTRACE_DETACH.
//
// Why one thread and not the whole process: memtap only ever needs one
// thread stopped (the one it borrows for a few calls); leaving the others
// running keeps the longest stop short (uWSGI's harakiri, latency) and spares
// them the EINTR that an interrupt stop injects into epoll_wait and friends.
//
// No PTRACE_O_EXITKILL: if memtap dies, the kernel detaches and the target
// runs on; killing it would be the one unforgivable outcome.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <vector>

namespace memtap::attach {

struct Stop {
    enum class Kind {
        Interrupt, // PTRACE_EVENT_STOP from PTRACE_INTERRUPT (or a group-stop, see signal)
        Signal,    // signal-delivery-stop: `signal` is about to be delivered
        Exited,    // the thread (or the whole process) is gone
    } kind = Kind::Interrupt;
    int signal = 0; // for Signal; for Interrupt the stop signal (SIGTRAP unless group-stop)
};

class TracedThread {
public:
    // Seizes the thread and stops it with PTRACE_INTERRUPT, waiting at most
    // `timeout` for the stop. Signals that arrive meanwhile are held and
    // re-raised on detach. Errors: PermissionDenied (with the ptrace hint),
    // NoSuchProcess, Timeout.
    static TracedThread seizeAndStopOrThrow(pid_t pid, pid_t tid, std::chrono::milliseconds timeout);

    TracedThread(TracedThread&& other) noexcept;
    TracedThread& operator=(TracedThread&&) = delete;
    TracedThread(const TracedThread&) = delete;
    ~TracedThread();

    pid_t tid() const { return tid_; }
    pid_t pid() const { return pid_; }
    bool alive() const { return alive_; }

    // Resume (continue or single-step) with no signal and wait for the next
    // stop that is not a stray signal: signals other than the `expected` one
    // are recorded for re-delivery and the thread is resumed again.
    Stop resumeAndWaitOrThrow(bool singleStep, int expectedSignal, std::chrono::milliseconds timeout);

    // Ends tracing now; called by the destructor. Recorded signals are re-raised
    // with tgkill after PTRACE_DETACH so the target sees each of them once.
    void detach() noexcept;

    // How long the thread has been stopped by us, in total.
    std::chrono::microseconds stoppedFor() const;

private:
    TracedThread(pid_t pid, pid_t tid) : pid_(pid), tid_(tid) {}
    Stop waitForStopOrThrow(std::chrono::milliseconds timeout);

    pid_t pid_;
    pid_t tid_;
    bool alive_ = true;
    bool attached_ = false;
    std::vector<int> pendingSignals_;
    std::chrono::steady_clock::time_point stoppedAt_{};
    std::chrono::microseconds stoppedTotal_{0};
};

} // namespace memtap::attach
