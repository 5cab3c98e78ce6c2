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
#include "base/error.h"
#include "inject/agent_image.h"
#include "inject/code_scan.h"
#include "inject/control_client.h"
#include "inject/remote_call.h"
#include "inject/safe_point.h"
#include "inject/scratch_stub.h"
#include "symbols/elf_file.h"
#include "symbols/proc_maps.h"
#include "symbols/python_discovery.h"
#include "symbols/unwinder.h"

namespace memtap::inject {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint64_t kPathOffset = 256; // the dlopen path, after the memfd name
static_assert(sizeof(memtap_start_args) <= kScratchArgsBytes);

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
volatile sig_atomic_t g_interruptSignal = 0;

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
            throw Error(code,
                        fmt::format("interrupted by SIG{}: memtap is attached to process {} (its agent "
                                    "is starting or running)",
                                    sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", pid),
                        fmt::format("check with `memtap status {0}`, remove it with `memtap detach {0}`",
                                    pid));
        }
        throw Error(code, fmt::format("interrupted by SIG{} before process {} was changed; it is left as "
                                      "it was",
                                      sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", pid));
    }

private:
    static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    struct sigaction old_[std::size(kSignals)] {};
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

// Undo one change on the borrowed thread when leaving scope.
class RemoteUndo {
public:
    RemoteUndo(pid_t pid, std::function<void()> undo) : pid_(pid), undo_(std::move(undo)) {}
    ~RemoteUndo() {
        if (undo_) {
            try {
                undo_();
            } catch (const std::exception& e) {
                // A target that died meanwhile is the real cause, said by the caller.
                if (::kill(pid_, 0) == 0) {
                    spdlog::error("cleanup in the target failed: {}", e.what());
                }
            }
        }
    }
    RemoteUndo(const RemoteUndo&) = delete;
    RemoteUndo& operator=(const RemoteUndo&) = delete;

private:
    pid_t pid_;
    std::function<void()> undo_;
};

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

std::optional<RemotePtr>
findLoadedAgent(pid_t pid, const std::string& memfdName) {
    std::string wanted = "/memfd:" + memfdName;
    for (const auto& entry : symbols::readMapsOrThrow(pid)) {
        if (entry.offset == 0 && entry.path == wanted) {
            return entry.start;
        }
    }
    return std::nullopt;
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
makeStartArgs(pid_t pid, const AttachOptions& options, const symbols::PythonTarget& python) {
    memtap_start_args args{};
    args.struct_size = sizeof(args);
    args.protocol_version = MEMTAP_PROTOCOL_VERSION;
    args.mode = options.mode;
    args.frames = options.frames;
    args.sample_bytes = options.sampleBytes;
    args.peer_uid = ::geteuid();
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

// dlopen's handle is the library's struct link_map (<link.h>: l_addr, then
// l_name, a char* the loader allocated for exactly the path it was given).
void
renameLoadedLibrary(const attach::RemoteMemory& memory, RemotePtr linkMap, const std::string& loadedPath,
                    const std::string& newName) {
    auto namePointer = RemotePtr(memory.readOrThrow<uint64_t>(linkMap + 8));
    if (namePointer.isNull() || newName.size() > loadedPath.size() ||
        memory.readCStringOrThrow(namePointer, loadedPath.size() + 1) != loadedPath) {
        spdlog::warn("could not rename the agent in the loader's list; debuggers may see {}",
                     loadedPath);
        return;
    }
    std::string padded = newName;
    padded.resize(loadedPath.size() + 1, '\0');
    memory.writeOrThrow(namePointer, padded.data(), padded.size());
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

// A slot for the padding stub (scratch_stub.h) in the padding after the
// last executable segment of libc or CPython's module, and the bytes the file
// has there, which go back when the borrow ends (a killed memtap's stub bytes
// are overwritten the same way).
struct PaddingSlot {
    RemotePtr address;
    std::vector<uint8_t> original;
};

std::optional<PaddingSlot>
tryFindPaddingSlot(const symbols::Module& module) {
    auto elf = symbols::ElfFile::openOrThrow(module.hostPath);
    auto padding = elf.executablePadding();
    if (!padding) {
        return std::nullopt;
    }
    // The slot sits at the end of the padding, 16-byte aligned.
    uint64_t slotVaddr = (padding->end - kPaddingStubBytes) & ~uint64_t{15};
    if (padding->end < kPaddingStubBytes || slotVaddr < padding->start) {
        return std::nullopt;
    }
    PaddingSlot slot{module.loadBias + slotVaddr, std::vector<uint8_t>(kPaddingStubBytes)};
    UniqueFd fd(::open(module.hostPath.c_str(), O_RDONLY | O_CLOEXEC));
    auto offset = static_cast<off_t>(padding->fileOffset + (slotVaddr - padding->start));
    if (!fd || ::pread(fd.get(), slot.original.data(), slot.original.size(), offset) !=
                   static_cast<ssize_t>(slot.original.size())) {
        return std::nullopt;
    }
    return slot;
}

PaddingSlot
findPaddingSlotOrThrow(pid_t pid, const symbols::ProcessModules& modules,
                       const symbols::PythonTarget& python) {
    for (const symbols::Module* module : {modules.libc(), &python.module}) {
        if (module != nullptr) {
            if (auto slot = tryFindPaddingSlot(*module)) {
                return *slot;
            }
        }
    }
    throw Error(ExitCode::NotSupported,
                fmt::format("no room for memtap's {}-byte stub after the code of libc or CPython in "
                            "process {}",
                            kPaddingStubBytes, pid));
}

// Writes the file's bytes back over the padding slot when the borrow ends.
class PaddingRestore {
public:
    PaddingRestore(const attach::RemoteMemory& memory, const PaddingSlot& slot)
        : memory_(memory), slot_(slot) {}
    ~PaddingRestore() {
        try {
            memory_.writeOrThrow(slot_.address, slot_.original.data(), slot_.original.size());
        } catch (const std::exception& e) {
            if (::kill(memory_.pid(), 0) == 0) {
                spdlog::warn("could not put back the padding bytes at {}: {}", slot_.address, e.what());
            }
        }
    }
    PaddingRestore(const PaddingRestore&) = delete;
    PaddingRestore& operator=(const PaddingRestore&) = delete;

private:
    const attach::RemoteMemory& memory_;
    const PaddingSlot& slot_;
};

// Puts the scratch mapping in place on the borrowed thread: a leftover of a
// killed memtap if there is one to take over (no mmap needed), else a new
// one. Other adoptable leftovers are unmapped through the stub.
void
setUpScratchOrThrow(HijackedThread& hijacked, pid_t pid, const attach::RemoteMemory& memory) {
    auto leftovers = findLeftoverScratch(pid, memory);
    auto adoptable = std::find_if(leftovers.begin(), leftovers.end(), [](const LeftoverScratch& l) {
        return l.adoptable;
    });
    if (adoptable != leftovers.end()) {
        spdlog::debug("taking over the scratch {} a killed memtap left", adoptable->base);
        hijacked.adoptScratchOrThrow(adoptable->base, adoptable->size);
    } else {
        hijacked.createScratchOrThrow();
    }
    for (const auto& leftover : leftovers) {
        if (leftover.adoptable && leftover.base != hijacked.scratch()) {
            checkSyscallResult(hijacked.syscallOrThrow(SYS_munmap, {leftover.base.value(), leftover.size}),
                               "munmap of a leftover scratch");
        }
    }
}

// Runs on the borrowed thread: load (or reuse) the agent and call its entry.
// Returns the entry's status; `reused` tells whether the agent was loaded.
int
startAgentOnThread(HijackedThread& hijacked, pid_t pid, const attach::RemoteMemory& memory,
                   const symbols::ProcessModules& modules, const symbols::PythonTarget& python,
                   const AttachOptions& options, bool& reused) {
    const auto& image = agentImageInfoOrThrow();
    const symbols::Module* libc = modules.libc();
    RemotePtr scratch = hijacked.scratch();

    // errno is thread-local state of the borrowed thread: dlopen may change it.
    hijacked.saveErrnoOrThrow(RemotePtr(hijacked.callOrThrow(
        modules.resolveOrThrow(*libc, "__errno_location"), {}, milliseconds(2000), "__errno_location")));

    auto agentBase = findLoadedAgent(pid, image.memfdName);
    reused = agentBase.has_value();
    std::optional<RemoteUndo> closeMemfd;
    if (!agentBase) {
        RemotePtr name = scratch + kScratchStringsOffset;
        RemotePtr pathAddress = name + kPathOffset;
        memory.writeOrThrow(name, image.memfdName.c_str(), image.memfdName.size() + 1);
        hijacked.setFdToCloseOrThrow(-1, true); // if we die, the stub closes what this returns
        int64_t memfd = hijacked.syscallOrThrow(SYS_memfd_create, {name.value(), MFD_CLOEXEC});
        hijacked.setFdToCloseOrThrow(memfd >= 0 ? static_cast<int>(memfd) : -1);
        checkSyscallResult(memfd, "memfd_create");
        closeMemfd.emplace(pid, [&hijacked, memfd] {
            // Forget it first: closing twice could close a number reused meanwhile.
            hijacked.setFdToCloseOrThrow(-1);
            hijacked.syscallOrThrow(SYS_close, {static_cast<uint64_t>(memfd)});
        });
        {
            // The memfd belongs to the target; we fill it through its /proc entry.
            UniqueFd out(
                ::open(fmt::format("/proc/{}/fd/{}", pid, memfd).c_str(), O_WRONLY | O_CLOEXEC));
            if (!out) {
                throw Error(ExitCode::Failure, describeErrno("opening the target's memfd", errno));
            }
            auto bytes = agentImage();
            if (::write(out.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
                throw Error(ExitCode::Failure,
                            describeErrno("writing the agent into the target's memfd", errno));
            }
        }
        // The loader keeps the path it was given as the library's name
        // (link_map.l_name), and debuggers read it from outside: gdb opens
        // "/proc/self/fd/N" in its own process and hangs reading its own pipe.
        // So the path is padded ("./" steps) to leave room, and once loaded
        // the name is overwritten with what /proc/PID/maps shows for it.
        std::string loadedName = fmt::format("/memfd:{} (deleted)", image.memfdName);
        std::string path = "/proc/self/fd/";
        while (path.size() + std::to_string(memfd).size() < loadedName.size()) {
            path += "./";
        }
        path += std::to_string(memfd);
        memory.writeOrThrow(pathAddress, path.c_str(), path.size() + 1);
        uint64_t handle = hijacked.callOrThrow(modules.resolveOrThrow(*libc, "dlopen"),
                                               {pathAddress.value(), RTLD_NOW}, options.timeout, "dlopen");
        if (handle == 0) {
            uint64_t message = hijacked.callOrThrow(modules.resolveOrThrow(*libc, "dlerror"), {},
                                                    milliseconds(2000), "dlerror");
            std::string reason =
                message ? memory.readCStringOrThrow(RemotePtr(message), 512) : "unknown";
            throw Error(ExitCode::Failure,
                        fmt::format("process {} could not load the agent: {}", pid, reason));
        }
        renameLoadedLibrary(memory, RemotePtr(handle), path, loadedName);
        agentBase = findLoadedAgent(pid, image.memfdName);
        if (!agentBase) {
            throw Error(ExitCode::Failure,
                        "the agent was loaded but its mapping is not in /proc/PID/maps");
        }
    }

    auto args = makeStartArgs(pid, options, python);
    RemotePtr argsAddress = scratch + kScratchArgsOffset;
    memory.writeOrThrow(argsAddress, &args, sizeof(args));
    return static_cast<int>(hijacked.callOrThrow(*agentBase + image.entryOffset, {argsAddress.value()},
                                                 options.timeout, MEMTAP_AGENT_ENTRY));
}

// Whether the target is stopped (SIGSTOP, job control, a debugger's stop).
bool
isStopped(pid_t pid) {
    auto info = attach::readProcessInfoOrThrow(pid);
    return info.state == 'T' || info.state == 't';
}

Error
stoppedWhileStartingError(pid_t pid) {
    return Error(ExitCode::Timeout,
                 fmt::format("process {} was stopped during attach: the agent is loaded and will "
                             "answer once the process runs",
                             pid),
                 fmt::format("resume it with `kill -CONT {0}`, then check with `memtap status {0}`", pid));
}

void
waitForAgentOrThrow(pid_t pid, Clock::time_point deadline, const AttachOptions& options,
                    const InterruptWatch& interrupts) {
    auto nextNote = Clock::now() + milliseconds(1000);
    for (;;) {
        interrupts.throwIfInterrupted(pid, true);
        if (auto client = ControlClient::tryConnect(pid)) {
            auto left = std::max(milliseconds(100),
                                 std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
            try {
                client->requestOrThrow("status", left);
            } catch (const Error& e) {
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

} // namespace

AttachResult
attachOrThrow(pid_t pid, const AttachOptions& options) {
    auto started = Clock::now();
    InterruptWatch interrupts;
    AttachResult result;
    auto info = attach::readProcessInfoOrThrow(pid);
    refuseUnattachableState(info);
    auto modules = symbols::ProcessModules::readOrThrow(pid);
    auto python = symbols::discoverPythonOrThrow(modules);
    result.python = python.version;

    interrupts.throwIfInterrupted(pid, false);
    // Another memtap attaching right now: wait for it, then report what it did.
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
    if (auto client = ControlClient::tryConnect(pid)) {
        result.alreadyAttached = true;
        return result;
    }

    auto memory = attach::RemoteMemory::openOrThrow(pid);
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
        // Declared before the thread: restored after it is put back.
        PaddingRestore restorePadding(memory, padding);
        HijackedThread hijacked(std::move(*borrowed), memory);
        hijacked.setPaddingSlot(padding.address);
        int status = -1;
        try {
            setUpScratchOrThrow(hijacked, pid, memory);
            status = startAgentOnThread(hijacked, pid, memory, modules, python, options,
                                        result.reusedAgent);
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

    // The agent installs its hooks on its own thread, then serves the socket.
    waitForAgentOrThrow(pid, deadline, options, interrupts);
    interrupts.throwIfInterrupted(pid, true);
    result.latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
    return result;
}

void
detachOrThrow(pid_t pid, std::chrono::milliseconds timeout) {
    attach::readProcessInfoOrThrow(pid);
    auto client = ControlClient::tryConnect(pid);
    if (!client) {
        throw Error(ExitCode::NotAttached, fmt::format("memtap is not attached to process {}", pid),
                    fmt::format("attach first with `memtap attach {}`", pid));
    }
    client->requestOrThrow("detach", timeout);
    // Return only once the agent thread has ended, so thread counts are back.
    auto deadline = Clock::now() + timeout;
    for (;;) {
        bool agentThreadAlive = false;
        for (pid_t tid : attach::listThreads(pid)) {
            auto comm = attach::readWholeFile(fmt::format("/proc/{}/task/{}/comm", pid, tid));
            if (comm && comm->rfind("memtap-agent", 0) == 0) {
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
