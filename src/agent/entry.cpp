// memtap_agent_start, the only exported symbol, and the agent thread's life.
//
// The entry runs on a borrowed target thread, stopped in the middle of
// whatever it was doing, so it does only what cannot wait: check the args,
// claim the agent, copy the args and call pthread_create (the safe-point rule
// in src/inject/safe_point.h counts on exactly that). No dlsym, no socket, no
// mmap of tables, no hook: all of that is the agent thread's, which reports
// its outcome in the start-status word (protocol.h), the low half of g_state.
#include "agent/agent_state.h"
#include "agent/control.h"
#include "agent/engine.h"
#include "agent/heap_request.h"
#include "agent/hooks.h"
#include "agent/native_calls.h"
#include "agent/pymalloc_read.h"
#include "agent/status.h"
#include "agent/tracked_calls.h"

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <pthread.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace memtap_agent {

constinit AgentState g_agent = {};

namespace {

enum AgentPhase : int {
    kDormant = 0,  // loaded, no thread; hooks absent or in pass-through
    kStarting = 1, // an entry claimed the agent; its thread is setting up
    kServing = 2,  // the agent thread serves the socket
};

// The agent's phase and its start-status word (protocol.h) in one atomic, so
// that "failed, dormant again" is a single store: a start that claims the
// agent after it can never have its PENDING overwritten by the old failure,
// and one that comes before it gets ALREADY_RUNNING and reads that failure.
// The status is the low half, which on x86-64 (little-endian) is the int32_t
// at the address the host is given in args.start_status_addr and reads with
// /proc/PID/mem.
constexpr uint64_t
packState(int phase, int32_t status) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(phase)) << 32) | static_cast<uint32_t>(status);
}
constexpr int
phaseOf(uint64_t state) {
    return static_cast<int>(state >> 32);
}
constinit std::atomic<uint64_t> g_state{packState(kDormant, MEMTAP_START_PENDING)};
static_assert(std::atomic<uint64_t>::is_always_lock_free && sizeof(g_state) == sizeof(uint64_t),
              "the host reads the status half as plain memory");
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the status is the low half, first in memory");

void
setState(int phase, int32_t status) {
    g_state.store(packState(phase, status), std::memory_order_release);
}

constinit bool g_atforkRegistered = false;

// x86-64 base page (Intel SDM vol. 3A, 4.5): munmap needs page-aligned bounds,
// and the host maps its scratch with plain mmap, so it is always 4 KiB-aligned.
constexpr uint64_t kPageSize = 4096;

// The child of a fork() has no agent thread: it goes dormant, keeps our hooks
// in pass-through (a later attach to the child re-enables them), and drops
// its copy of the listening socket without unlinking the parent's file.
void
atforkPrepare() {
    hooksForkPrepare();
    engineForkPrepare();
    pymallocForkPrepare();
    heapRequestForkPrepare();
}

void
atforkParent() {
    heapRequestForkParent();
    pymallocForkParent();
    engineForkParent();
    hooksForkParent();
}

void
atforkChild() {
    heapRequestForkChild();
    pymallocForkChild();
    engineForkChild();
    hooksForkChild();
    if (phaseOf(g_state.load(std::memory_order_relaxed)) == kServing && g_agent.listenFd >= 0) {
        close(g_agent.listenFd);
        g_agent.listenFd = -1;
    }
    setState(kDormant, MEMTAP_START_PENDING);
}

bool
terminated(const char* s, size_t cap) {
    return std::memchr(s, '\0', cap) != nullptr;
}

bool
scratchValid(const memtap_start_args& a) {
    if (a.scratch_addr == 0) {
        return a.scratch_size == 0;
    }
    return a.scratch_addr % kPageSize == 0 && a.scratch_size > 0 && a.scratch_size % kPageSize == 0 &&
           a.scratch_addr + a.scratch_size > a.scratch_addr;
}

// Plain checks of values, no library call but memchr: cheap enough for the
// borrowed thread, and a host with bad args learns it from the return value.
memtap_start_status
validate(const memtap_start_args& a) {
    bool ok = (a.mode == MEMTAP_MODE_SAMPLED || a.mode == MEMTAP_MODE_EXACT) && a.frames >= 1 &&
              a.frames <= MEMTAP_MAX_FRAMES && (a.mode == MEMTAP_MODE_EXACT || a.sample_bytes > 0) &&
              (a.peer_flags & ~MEMTAP_PEER_UNMAPPED) == 0 &&
              (a.features & ~MEMTAP_FEATURE_NATIVE) == 0 && a.reserved == 0 && scratchValid(a) &&
              terminated(a.socket_path, sizeof(a.socket_path)) && a.socket_path[0] != '\0' &&
              terminated(a.python_module, sizeof(a.python_module));
    return ok ? MEMTAP_START_OK : MEMTAP_START_BAD_ARGS;
}

// Agent thread.
memtap_start_status
checkInterpreter() {
    bool framesOk = false;
    switch (resolvePythonApi(g_agent.args.python_module, &g_agent.api, &framesOk)) {
    case ResolveResult::kOk:
        break;
    case ResolveResult::kModuleNotLoaded:
    case ResolveResult::kMissingSymbol:
    case ResolveResult::kBadVersion:
        return MEMTAP_START_NO_PYTHON;
    }
    g_agent.framesOk = framesOk;
    const PythonApi& api = g_agent.api;
    // Finalization first: Py_FinalizeEx sets the finalizing thread and then
    // clears runtime->initialized (Python/pylifecycle.c, 3.6..3.13), so late
    // in finalization Py_IsInitialized() is already 0 while the interpreter
    // is shutting down, not starting up.
    if (pythonIsFinalizing(api)) {
        return MEMTAP_START_FINALIZING;
    }
    if (api.isInitialized() == 0) {
        return MEMTAP_START_NOT_INITIALIZED;
    }
    // 3.6 creates the GIL lazily (PyEval_InitThreads, Python/ceval.c), and a
    // single-threaded program never does. The agent never takes the GIL, and
    // frame capture compares the current thread state with the gilstate TSS
    // (set up by Py_Initialize whether or not threads exist), so such a
    // process is traced like any other: only its main thread runs Python.
    return MEMTAP_START_OK;
}

// Agent thread: everything the old entry did on the borrowed thread. On
// failure, undoes what it did and returns the status for the word.
memtap_start_status
setUp() {
    memtap_start_status status = checkInterpreter();
    if (status != MEMTAP_START_OK) {
        return status;
    }
    g_agent.listenFd = openControlSocket(g_agent.args.socket_path);
    if (g_agent.listenFd < 0) {
        return MEMTAP_START_SOCKET_FAILED;
    }
    EngineConfig config{g_agent.args.mode, g_agent.args.frames, g_agent.args.sample_bytes,
                        g_agent.framesOk};
    // Tables first, then the hooks (installed without the GIL, see hooks.cpp),
    // then recording, which engineStart switches on.
    if (!engineStart(config)) {
        close(g_agent.listenFd);
        unlink(g_agent.args.socket_path);
        g_agent.listenFd = -1;
        return MEMTAP_START_THREAD_FAILED;
    }
    pymallocReadConfigure(g_agent.api);
    heapRequestConfigure(g_agent.api);
    installHooks(g_agent.api);
    rewireTrackedCalls(g_agent.api);
    if ((g_agent.args.features & MEMTAP_FEATURE_NATIVE) != 0) {
        rewireNativeCalls(g_agent.api);
    }
    recordAttachMoment();
    if (!g_atforkRegistered) {
        // Registered once per process: the agent is never unloaded.
        g_atforkRegistered = pthread_atfork(atforkPrepare, atforkParent, atforkChild) == 0;
    }
    return MEMTAP_START_OK;
}

// Called by the control loop on detach, before the reply is sent (and when
// the loop fails): after it, the thread touches nothing shared, so a new
// start may begin while it still sends its last reply and ends.
void
tearDown() {
    pymallocReadDisarm();
    cancelHeapWalk();
    restoreNativeCalls();
    restoreTrackedCalls();
    uninstallHooks(g_agent.api);
    engineStop();
    unlink(g_agent.args.socket_path);
    close(g_agent.listenFd);
    g_agent.listenFd = -1;
    // The status stays OK: that attach succeeded.
    setState(kDormant, MEMTAP_START_OK);
}

void*
agentThread(void*) {
    prctl(PR_SET_NAME, MEMTAP_AGENT_THREAD_NAME, 0, 0, 0);
    // Nothing this thread allocates is the program's: a hook it reaches
    // (its malloc may go through a rewired slot, native_calls.h) forwards.
    setBusy(g_thread);
    memtap_start_status status = setUp();
    if (status != MEMTAP_START_OK) {
        setState(kDormant, status); // its last touch of shared state
        return nullptr;
    }
    setState(kServing, MEMTAP_START_OK);
    serveControl(tearDown);
    return nullptr;
}

// Borrowed thread. Every signal blocked in the new thread (it inherits the
// creator's mask), so the target's handlers never run on the agent thread;
// then the borrowed thread gets its own mask back.
bool
startAgentThread() {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        return false;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    // Formatting needs little stack; keep the target's address space tidy.
    pthread_attr_setstacksize(&attr, 256 * 1024);
    sigset_t all;
    sigset_t saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, agentThread, nullptr);
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    pthread_attr_destroy(&attr);
    return rc == 0;
}

memtap_start_status
start(memtap_start_args* args) {
    // Only struct_size and protocol_version are read before they are known
    // to match: a host built against another layout must not make us read
    // or write past its struct.
    if (args == nullptr || args->struct_size != sizeof(memtap_start_args) ||
        args->protocol_version != MEMTAP_PROTOCOL_VERSION) {
        return MEMTAP_START_BAD_ARGS;
    }
    args->start_status_addr = reinterpret_cast<uintptr_t>(&g_state);
    if (validate(*args) != MEMTAP_START_OK) {
        return MEMTAP_START_BAD_ARGS;
    }
    uint64_t seen = g_state.load(std::memory_order_acquire);
    do {
        if (phaseOf(seen) != kDormant) {
            return MEMTAP_START_ALREADY_RUNNING;
        }
    } while (!g_state.compare_exchange_weak(seen, packState(kStarting, MEMTAP_START_PENDING),
                                            std::memory_order_acq_rel, std::memory_order_acquire));
    // The args live in the host's scratch mapping, which goes away once the
    // borrowed thread is back: the agent thread reads only this copy
    // (pthread_create orders these writes before the thread's reads).
    std::memcpy(&g_agent.args, args, sizeof(g_agent.args));
    g_agent.listenFd = -1;
    if (!startAgentThread()) {
        setState(kDormant, MEMTAP_START_THREAD_FAILED);
        return MEMTAP_START_THREAD_FAILED;
    }
    return MEMTAP_START_OK;
}

} // namespace
} // namespace memtap_agent

extern "C" __attribute__((visibility("default"))) int
memtap_agent_start(memtap_start_args* args) noexcept {
    return memtap_agent::start(args);
}
