#include "inject/injector.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "attach/proc.h"
#include "attach/remote_memory.h"
#include "attach/traced_thread.h"
#include "attach/user_namespace.h"
#include "base/error.h"
#include "inject/agent_client.h"
#include "inject/agent_image.h"
#include "inject/agent_loader.h"
#include "inject/attach_guards.h"
#include "inject/code_scan.h"
#include "inject/control_client.h"
#include "inject/leftover_scratch.h"
#include "inject/padding_slot.h"
#include "inject/remote_call.h"
#include "inject/safe_point.h"
#include "inject/scratch_stub.h"
#include "inject/seccomp_filter.h"
#include "symbols/elf_file.h"
#include "symbols/proc_maps.h"
#include "symbols/python_discovery.h"
#include "symbols/unwinder.h"

namespace memtap::inject {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

static_assert(sizeof(memtap_start_args) <= kScratchArgsBytes);

void
checkSyscallResult(int64_t result, const char* what) {
    if (result < 0 && result > -4096) {
        throw Error(ExitCode::Failure,
                    describeErrno(fmt::format("{} in the target", what), static_cast<int>(-result)));
    }
}

void
refuseUnattachableState(const attach::ProcessInfo& info) {
    switch (info.state) {
    case 'T':
        throw Error(
            ExitCode::NotSupported, fmt::format("process {} is stopped (job control)", info.pid),
            fmt::format("resume it with `kill -CONT {}` and retry; memtap left it stopped", info.pid));
    case 't':
        throw Error(ExitCode::PermissionDenied,
                    fmt::format("process {} is being traced by PID {}", info.pid, info.tracerPid),
                    "detach the other debugger (gdb, strace, py-spy...) and retry");
    case 'Z':
    case 'X':
        throw Error(ExitCode::NoSuchProcess, fmt::format("process {} has exited (zombie)", info.pid));
    default:
        break;
    }
}

// Threads worth interrupting, best first: blocked in a plain syscall, then
// running (spinning in Python). Threads in futex or unknown states are left alone.
std::vector<pid_t>
rankCandidateThreads(pid_t pid) {
    std::vector<pid_t> blocked, running;
    for (pid_t tid : attach::listThreads(pid)) {
        auto sc = attach::readThreadSyscall(pid, tid);
        if (sc.kind == attach::ThreadSyscall::Kind::InSyscall && isPlainBlockingSyscall(sc.number)) {
            blocked.push_back(tid);
        } else if (sc.kind == attach::ThreadSyscall::Kind::Running) {
            running.push_back(tid);
        }
    }
    blocked.insert(blocked.end(), running.begin(), running.end());
    return blocked;
}

// Stops candidate threads one at a time until one passes the safe-point rule.
std::unique_ptr<attach::TracedThread>
borrowSafeThread(pid_t pid, symbols::Unwinder& unwinder, const attach::RemoteMemory& memory,
                 std::chrono::microseconds& longestStop, std::string& lastReason) {
    for (pid_t tid : rankCandidateThreads(pid)) {
        std::unique_ptr<attach::TracedThread> thread;
        try {
            thread = std::make_unique<attach::TracedThread>(
                attach::TracedThread::seizeAndStopOrThrow(pid, tid, milliseconds(500)));
        } catch (const Error& e) {
            if (e.code() == ExitCode::NoSuchProcess && ::kill(pid, 0) == 0) {
                continue; // that thread ended; the process lives on
            }
            throw;
        }
        auto regs = attach::fetchGeneralRegistersOrThrow(tid);
        uint8_t before[16] = {};
        bool readable = memory.tryRead(RemotePtr(regs.rip - sizeof(before)), before, sizeof(before));
        auto stack = unwinder.unwind(tid, regs);
        auto verdict = readable ? judgeSafePoint(regs, before, stack)
                                : SafePointVerdict{false, "code at the stop site is unreadable"};
        if (verdict.safe) {
            spdlog::debug("borrowing thread {} (syscall {}, {} native frames)", tid,
                          static_cast<long>(regs.orig_rax), stack.frames.size());
            return thread;
        }
        lastReason = fmt::format("thread {}: {}", tid, verdict.reason);
        spdlog::debug("not borrowing {}", lastReason);
        thread->detach();
        longestStop = std::max(longestStop, thread->stoppedFor());
    }
    return nullptr;
}

memtap_start_args
makeStartArgs(pid_t pid, const AttachOptions& options, const symbols::PythonTarget& python,
              const attach::PeerIdentity& peer) {
    memtap_start_args args{};
    args.struct_size = sizeof(args);
    args.protocol_version = MEMTAP_PROTOCOL_VERSION;
    args.mode = options.mode;
    args.frames = options.frames;
    args.sample_bytes = options.sampleBytes;
    args.features = options.native ? MEMTAP_FEATURE_NATIVE : 0;
    // memtap's euid as the target's user namespace sees it (SO_PEERCRED is
    // translated into the agent's namespace): host root attaching a rootless
    // container is the overflow uid there, flagged so the agent allows it.
    args.peer_uid = peer.uid;
    args.peer_flags = peer.unmapped ? MEMTAP_PEER_UNMAPPED : 0;
    // The scratch is unmapped by the host (through the padding stub), not by
    // the agent: nothing for release-scratch without arguments.
    args.scratch_addr = 0;
    args.scratch_size = 0;
    auto socketPath = agentSocketPath(pid);
    std::memcpy(args.socket_path, socketPath.c_str(), socketPath.size() + 1);
    if (!python.isMainExecutable) {
        if (python.module.path.size() >= sizeof(args.python_module)) {
            throw Error(ExitCode::Failure, "path of libpython too long");
        }
        std::memcpy(args.python_module, python.module.path.c_str(), python.module.path.size() + 1);
    }
    return args;
}

void
throwForStartStatus(int status, pid_t pid) {
    switch (status) {
    case MEMTAP_START_OK:
    case MEMTAP_START_ALREADY_RUNNING:
        return;
    case MEMTAP_START_NOT_INITIALIZED:
        throw Error(ExitCode::NotSupported,
                    fmt::format("the interpreter in process {} is not initialized yet", pid),
                    "retry once the program has started");
    case MEMTAP_START_FINALIZING:
        throw Error(ExitCode::NotSupported,
                    fmt::format("the interpreter in process {} is shutting down", pid));
    case MEMTAP_START_NO_PYTHON:
        throw Error(ExitCode::NotSupported,
                    fmt::format("the agent found no CPython C-API in process {}", pid));
    case MEMTAP_START_NO_GIL:
        throw Error(ExitCode::NotSupported,
                    fmt::format("the interpreter in process {} has no GIL yet", pid));
    case MEMTAP_START_BAD_ARGS:
        throw Error(ExitCode::Failure, "the agent rejected its start arguments (memtap build mismatch)");
    case MEMTAP_START_SOCKET_FAILED:
        throw Error(ExitCode::Failure,
                    fmt::format("the agent could not create its socket {} in process {}",
                                agentSocketPath(pid), pid),
                    "check that /tmp exists and is writable for the target's user");
    default:
        throw Error(ExitCode::Failure, fmt::format("the agent failed to start (status {})", status));
    }
}

// Puts the scratch mapping in place on the borrowed thread: a leftover of a
// killed memtap if there is one to take over (no mmap needed), else a new
// one. Other adoptable leftovers are unmapped through the stub.
void
setUpScratchOrThrow(HijackedThread& hijacked, pid_t pid, const attach::RemoteMemory& memory) {
    auto leftovers = findLeftoverScratch(pid, memory);
    auto adoptable = std::find_if(leftovers.begin(), leftovers.end(),
                                  [](const LeftoverScratch& l) { return l.adoptable; });
    if (adoptable != leftovers.end()) {
        spdlog::debug("taking over the scratch {} a killed memtap left", adoptable->base);
        hijacked.adoptScratchOrThrow(*adoptable);
    } else {
        hijacked.createScratchOrThrow();
    }
    for (const auto& leftover : leftovers) {
        if (leftover.adoptable && leftover.base != hijacked.scratch()) {
            checkSyscallResult(
                hijacked.syscallOrThrow(SYS_munmap, {leftover.base.value(), leftover.size}),
                "munmap of a leftover scratch");
        }
    }
}

// Runs on the borrowed thread: load (or reuse) the agent and call its entry.
// Returns the entry's status; `reused` tells whether the agent was loaded.
int
startAgentOnThread(HijackedThread& hijacked, pid_t pid, const attach::RemoteMemory& memory,
                   const symbols::ProcessModules& modules, const symbols::PythonTarget& python,
                   const AttachOptions& options, AgentDelivery delivery,
                   const attach::PeerIdentity& peer, bool& reused, RemotePtr& statusWord) {
    const auto& image = agentImageInfoOrThrow();
    const symbols::Module* libc = modules.libc();
    RemotePtr scratch = hijacked.scratch();

    // errno is thread-local state of the borrowed thread: dlopen may change it.
    hijacked.saveErrnoOrThrow(RemotePtr(hijacked.callOrThrow(
        modules.resolveOrThrow(*libc, "__errno_location"), {}, milliseconds(2000), "__errno_location")));

    auto agentBase = findLoadedAgent(pid);
    reused = agentBase.has_value();
    if (!agentBase) {
        agentBase = loadAgentOrThrow(hijacked, pid, memory, modules, delivery, options.timeout);
    }

    auto args = makeStartArgs(pid, options, python, peer);
    RemotePtr argsAddress = scratch + kScratchArgsOffset;
    memory.writeOrThrow(argsAddress, &args, sizeof(args));
    auto status = static_cast<int>(hijacked.callOrThrow(
        *agentBase + image.entryOffset, {argsAddress.value()}, options.timeout, MEMTAP_AGENT_ENTRY));
    // The entry wrote where the agent thread reports its setup (protocol.h).
    statusWord = RemotePtr(
        memory.readOrThrow<uint64_t>(argsAddress + offsetof(memtap_start_args, start_status_addr)));
    return status;
}

void
blockTerminationSignals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
        sigaddset(&set, sig);
    }
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
}

// Whether the target is stopped (SIGSTOP, job control, a debugger's stop).
bool
isStopped(pid_t pid) {
    auto info = attach::readProcessInfoOrThrow(pid);
    return info.state == 'T' || info.state == 't';
}

// NoSuchProcess once the target has exited (a zombie counts: nothing of
// ours is left running in it).
void
throwIfExited(pid_t pid) {
    auto info = attach::readProcessInfoOrThrow(pid);
    if (info.state == 'Z' || info.state == 'X') {
        throw Error(ExitCode::NoSuchProcess, fmt::format("process {} exited during attach", pid));
    }
}

Error
stoppedWhileStartingError(pid_t pid) {
    return Error(
        ExitCode::Timeout,
        fmt::format("process {} was stopped during attach: the agent is loaded and will "
                    "answer once the process runs",
                    pid),
        fmt::format("resume it with `kill -CONT {0}`, then check with `memtap status {0}`", pid));
}

void
waitForAgentOrThrow(pid_t pid, const attach::RemoteMemory& memory, RemotePtr statusWord,
                    Clock::time_point deadline, const AttachOptions& options,
                    const InterruptWatch& interrupts) {
    auto nextNote = Clock::now() + milliseconds(1000);
    for (;;) {
        interrupts.throwIfInterrupted(pid, true);
        throwIfExited(pid);
        int32_t setup = MEMTAP_START_PENDING;
        if (statusWord && memory.tryRead(statusWord, &setup, sizeof(setup)) &&
            setup != MEMTAP_START_PENDING && setup != MEMTAP_START_OK) {
            // The agent thread undid its setup and ended: nothing is left in.
            throwForStartStatus(setup, pid);
        }
        if (auto client = AgentClient::tryConnect(pid)) {
            auto left = std::max(milliseconds(100),
                                 std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
            try {
                std::move(*client).statusOrThrow(left);
            } catch (const Error& e) {
                throwIfExited(pid); // the agent went down with its process
                if (e.code() == ExitCode::Timeout && isStopped(pid)) {
                    throw stoppedWhileStartingError(pid);
                }
                throw;
            }
            return;
        }
        if (Clock::now() >= deadline) {
            if (isStopped(pid)) {
                throw stoppedWhileStartingError(pid);
            }
            throw Error(ExitCode::Timeout,
                        fmt::format("the agent in process {} did not open its socket within {} ms", pid,
                                    options.timeout.count()),
                        fmt::format("check with `memtap status {}`", pid));
        }
        if (options.progress && Clock::now() >= nextNote) {
            options.progress(fmt::format("waiting for the agent in process {} to start", pid));
            nextNote = Clock::now() + milliseconds(2000);
        }
        std::this_thread::sleep_for(milliseconds(1));
    }
}

// A scratch page a killed memtap left while the agent kept serving (no later
// attach borrows a thread to take it over): the agent unmaps it once it has
// checked the header, after we checked its owner is gone.
void
releaseLeftoverScratch(pid_t pid, const attach::RemoteMemory& memory) noexcept {
    try {
        for (const auto& leftover : findLeftoverScratch(pid, memory)) {
            if (!leftover.adoptable) {
                continue;
            }
            auto client = AgentClient::tryConnect(pid);
            if (!client) {
                return;
            }
            // A zeroed one (its memtap died right after the mmap) gets the
            // header the agent checks for first.
            ScratchControl head{};
            memory.readOrThrow(leftover.base + kScratchControlOffset, &head, sizeof(head));
            if (std::memcmp(head.magic, kScratchMagic, sizeof(kScratchMagic)) != 0) {
                std::memcpy(head.magic, kScratchMagic, sizeof(kScratchMagic));
                head.totalBytes = static_cast<uint32_t>(leftover.size);
                memory.writeOrThrow(leftover.base + kScratchControlOffset, &head, sizeof(head));
            }
            std::move(*client).releaseLeftoverScratchOrThrow(leftover.base.value(), leftover.size,
                                                             milliseconds(2000));
            spdlog::debug("released the scratch {} a killed memtap left", leftover.base);
        }
    } catch (const std::exception& e) {
        spdlog::debug("leftover scratch in process {} stays: {}", pid, e.what());
    }
}

// Memfd unless the thread's seccomp filter would fail memfd_create, then
// the file delivery; a filter that would kill or trap for anything memtap
// needs, or that cannot be read, refuses the attach before anything changes.
AgentDelivery
chooseDeliveryOrThrow(pid_t pid, pid_t tid) {
    if (findLoadedAgent(pid)) {
        auto verdict = judgeSyscalls(pid, tid, plannedAttachSyscalls(AttachRoute::AlreadyLoaded));
        if (auto refusal = seccompRefusal(pid, tid, verdict)) {
            throw *refusal;
        }
        return AgentDelivery::Memfd; // not used: the agent is loaded
    }
    auto verdict = judgeSyscalls(pid, tid, plannedAttachSyscalls(AttachRoute::Memfd));
    bool onlyMemfdFails = !verdict.failing.empty() &&
                          std::all_of(verdict.failing.begin(), verdict.failing.end(),
                                      [](const SyscallVerdict& v) { return v.nr == SYS_memfd_create; });
    if (!verdict.fatal || !(verdict.fatal->nr == SYS_memfd_create)) {
        if (auto refusal = seccompRefusal(pid, tid, verdict, onlyMemfdFails)) {
            throw *refusal;
        }
        if (!onlyMemfdFails) {
            return AgentDelivery::Memfd;
        }
    }
    // memfd_create is killed or failed by the filter: never issue it.
    auto file = judgeSyscalls(pid, tid, plannedAttachSyscalls(AttachRoute::File));
    if (auto refusal = seccompRefusal(pid, tid, file)) {
        throw *refusal;
    }
    spdlog::debug("process {}: the seccomp filter forbids memfd_create; delivering the agent as a file",
                  pid);
    return AgentDelivery::File;
}

} // namespace

AttachResult
attachOrThrow(pid_t pid, const AttachOptions& options) {
    auto started = Clock::now();
    InterruptWatch interrupts;
    AttachResult result;
    attach::readProcessInfoOrThrow(pid); // NoSuchProcess at once
    // Another memtap attaching right now: wait for it, then report what it
    // did. Taken before the state check: while it holds a thread, the process
    // shows as traced (by it), which is not ours to refuse.
    std::optional<AttachLock> lock;
    for (auto waitUntil = started + options.timeout; !(lock = AttachLock::tryLock(pid));) {
        interrupts.throwIfInterrupted(pid, false);
        if (Clock::now() >= waitUntil) {
            throw Error(ExitCode::Timeout,
                        fmt::format("another memtap has been attaching to process {} for {} ms", pid,
                                    options.timeout.count()),
                        fmt::format("check with `memtap status {}`", pid));
        }
        std::this_thread::sleep_for(milliseconds(5));
    }
    refuseUnattachableState(attach::readProcessInfoOrThrow(pid));
    auto modules = symbols::ProcessModules::readOrThrow(pid);
    auto python = symbols::discoverPythonOrThrow(modules);
    result.python = python.version;
    result.pythonNote = python.note;
    interrupts.throwIfInterrupted(pid, false);
    if (int removed = removeStaleAgentSockets(pid)) {
        spdlog::debug("removed {} agent socket(s) of processes that are gone", removed);
    }
    if (AgentClient::tryConnect(pid)) {
        result.alreadyAttached = true;
        releaseLeftoverScratch(pid, attach::RemoteMemory::openOrThrow(pid));
        return result;
    }

    auto memory = attach::RemoteMemory::openOrThrow(pid);
    AgentDelivery delivery = AgentDelivery::Memfd;
    // Refuse a target whose namespace memtap could not address before anything changes.
    auto peer = attach::peerIdentityInTargetOrThrow(pid, ::geteuid());
    RemotePtr statusWord;
    PaddingSlot padding = findPaddingSlotOrThrow(pid, modules, python);
    auto unwinder = symbols::Unwinder::createOrThrow(pid);
    unwinder.warmUp(); // before any thread stops, not while one is held
    auto deadline = started + options.timeout;
    auto nextNote = started + milliseconds(1000);
    std::string lastReason = "no thread was blocked in a plain syscall or running";
    {
        DeferTerminationSignals defer;
        std::unique_ptr<attach::TracedThread> borrowed;
        while (!(borrowed =
                     borrowSafeThread(pid, unwinder, memory, result.longestThreadStop, lastReason))) {
            interrupts.throwIfInterrupted(pid, false);
            auto now = attach::readProcessInfoOrThrow(pid); // NoSuchProcess once reaped
            if (now.state == 'Z' || now.state == 'X') {
                throw Error(ExitCode::NoSuchProcess,
                            fmt::format("process {} exited during attach", pid));
            }
            if (now.state == 'T') {
                throw Error(ExitCode::NotSupported,
                            fmt::format("process {} was stopped (job control) during attach; memtap "
                                        "changed nothing",
                                        pid),
                            fmt::format("resume it with `kill -CONT {}` and retry", pid));
            }
            if (Clock::now() >= deadline) {
                throw Error(
                    ExitCode::Timeout,
                    fmt::format("no thread of process {} reached a safe point within {} ms (last: {})",
                                pid, options.timeout.count(), lastReason),
                    "retry, or give a longer --timeout; see the safe-point rule in "
                    "src/inject/safe_point.h");
            }
            if (options.progress && Clock::now() >= nextNote) {
                options.progress(
                    fmt::format("waiting for a safe point in process {} ({})", pid, lastReason));
                nextNote = Clock::now() + milliseconds(2000);
            }
            std::this_thread::sleep_for(milliseconds(2));
        }
        result.borrowedThread = borrowed->tid();
        // The thread is stopped: its seccomp filters can be read, and every
        // syscall the attach will make or cause is judged before the first.
        delivery = chooseDeliveryOrThrow(pid, borrowed->tid());
        // Declared before the thread: restored after it is put back.
        PaddingRestore restorePadding(memory, padding);
        HijackedThread hijacked(std::move(*borrowed), memory);
        hijacked.setPaddingSlot(padding.address);
        int status = -1;
        try {
            setUpScratchOrThrow(hijacked, pid, memory);
            status = startAgentOnThread(hijacked, pid, memory, modules, python, options, delivery, peer,
                                        result.reusedAgent, statusWord);
        } catch (const Error& e) {
            // Take the scratch out again where we still can; a thread still
            // inside a call keeps it (the stub puts the thread back, a later
            // attach frees it).
            if (hijacked.thread().alive() && hijacked.thread().stopped()) {
                try {
                    hijacked.unmapScratchOrThrow();
                } catch (const Error& inner) {
                    spdlog::debug("scratch left in process {}: {}", pid, inner.what());
                }
            }
            hijacked.putBack();
            throw;
        }
        hijacked.unmapScratchOrThrow();
        hijacked.putBack();
        result.longestThreadStop = std::max(result.longestThreadStop, hijacked.stoppedFor());
        throwForStartStatus(status, pid);
    }

    // The agent sets up on its own thread (C-API, socket, tables, hooks) and
    // reports in the status word; then it serves the socket.
    waitForAgentOrThrow(pid, memory, statusWord, deadline, options, interrupts);
    releaseLeftoverScratch(pid, memory);
    // Attached: from here a termination signal must not end memtap silently
    // before it has said so. They stay blocked for the caller (watch reads
    // them from its signalfd; attach exits having printed that it attached).
    blockTerminationSignals();
    interrupts.throwIfInterrupted(pid, true);
    result.latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
    return result;
}

void
detachOrThrow(pid_t pid, std::chrono::milliseconds timeout) {
    attach::readProcessInfoOrThrow(pid);
    std::string hint = fmt::format("attach first with `memtap attach {}`", pid);
    AgentClient::connectOrThrow(pid, hint); // says "not attached" before anything else is done
    releaseLeftoverScratch(pid, attach::RemoteMemory::openOrThrow(pid));
    AgentClient::connectOrThrow(pid, hint).detachOrThrow(timeout);
    // Return only once the agent thread has ended, so thread counts are back.
    auto deadline = Clock::now() + timeout;
    for (;;) {
        bool agentThreadAlive = false;
        for (pid_t tid : attach::listThreads(pid)) {
            auto comm = attach::readWholeFile(fmt::format("/proc/{}/task/{}/comm", pid, tid));
            if (comm && comm->rfind(MEMTAP_AGENT_THREAD_NAME, 0) == 0) {
                agentThreadAlive = true;
            }
        }
        if (!agentThreadAlive) {
            return;
        }
        if (Clock::now() >= deadline) {
            throw Error(ExitCode::Timeout,
                        fmt::format("the agent thread of process {} did not end", pid));
        }
        std::this_thread::sleep_for(milliseconds(1));
    }
}

} // namespace memtap::inject
