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
        Syscall,   // syscall-entry or -exit stop (PTRACE_SYSCALL; PTRACE_O_TRACESYSGOOD)
        Exited,    // the thread (or the whole process) is gone
    } kind = Kind::Interrupt;
    int signal = 0; // for Signal; for Interrupt the stop signal (SIGTRAP unless group-stop)
};

// How to resume a stopped thread.
enum class Resume { Continue, SingleStep, ToSyscall };

class TracedThread {
public:
    // Seizes the thread and stops it with PTRACE_INTERRUPT, waiting at most
    // `timeout` for the stop. A signal that arrives meanwhile is delivered at
    // once, with its siginfo, as if memtap were not there (the interrupt stays
    // pending). Errors: PermissionDenied (with the ptrace hint), NoSuchProcess,
    // Timeout.
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

    // Resumes a stopped thread, delivering `signal` (0 for none), and returns
    // without waiting. NoSuchProcess if it is gone.
    void resumeOrThrow(Resume how, int signal);
    // Waits for the next stop of a resumed thread. Timeout leaves it running.
    Stop waitForStopOrThrow(std::chrono::milliseconds timeout);
    // A group-stop seen while we held the thread: re-raised after detach.
    void recordGroupStop(int signal) { pendingSignals_.push_back(signal); }

    // Ends tracing now; called by the destructor. The thread must be in a
    // ptrace-stop, or running (then it is interrupted first, its registers
    // untouched). A group-stop that arrived while we held it is re-raised with
    // tgkill after PTRACE_DETACH, so the process stops as it was asked to.
    void detach() noexcept;
    // True while the thread is in a ptrace-stop of ours.
    bool stopped() const { return stopped_; }

    // How long the thread has been stopped by us, in total.
    std::chrono::microseconds stoppedFor() const;

private:
    TracedThread(pid_t pid, pid_t tid) : pid_(pid), tid_(tid) {}

    pid_t pid_;
    pid_t tid_;
    bool alive_ = true;
    bool attached_ = false;
    bool stopped_ = false;
    std::vector<int> pendingSignals_;
    std::chrono::steady_clock::time_point stoppedAt_{};
    std::chrono::microseconds stoppedTotal_{0};
};

} // namespace memtap::attach
