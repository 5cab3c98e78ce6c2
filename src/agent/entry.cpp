// memtap_agent_start: the only exported symbol, run on a hijacked thread.
//
// That thread belongs to the target and is stopped in the middle of whatever
// it was doing, so the entry only does what must be synchronous (copy and
// check the args, find the C-API, check the interpreter, bind the socket,
// install the hooks) and leaves everything else to the agent thread.
#include "agent/agent_state.h"
#include "agent/control.h"
#include "agent/engine.h"
#include "agent/hooks.h"

#include <atomic>
#include <cstring>
#include <pthread.h>
#include <unistd.h>

namespace memtap_agent {

constinit AgentState g_agent = {};

namespace {

enum AgentPhase : int {
    kDormant = 0,  // loaded, no thread; hooks absent or in pass-through
    kStarting = 1, // an entry call is setting up
    kServing = 2,  // the agent thread owns g_agent
};

constinit std::atomic<int> g_phase{kDormant};
constinit bool g_atforkRegistered = false;

void
onAgentThreadExit() {
    g_phase.store(kDormant, std::memory_order_release);
}

// The child of a fork() has no agent thread: it goes dormant, keeps our hooks
// in pass-through (a later attach to the child re-enables them), and drops
// its copy of the listening socket without unlinking the parent's file.
void
atforkPrepare() {
    engineForkPrepare();
}

void
atforkParent() {
    engineForkParent();
}

void
atforkChild() {
    engineForkChild();
    if (g_phase.load(std::memory_order_relaxed) == kServing && g_agent.listenFd >= 0) {
        close(g_agent.listenFd);
        g_agent.listenFd = -1;
    }
    g_phase.store(kDormant, std::memory_order_relaxed);
}

bool
terminated(const char* s, size_t cap) {
    return std::memchr(s, '\0', cap) != nullptr;
}

memtap_start_status
validate(const memtap_start_args& a) {
    bool ok = (a.mode == MEMTAP_MODE_SAMPLED || a.mode == MEMTAP_MODE_EXACT) && a.frames >= 1 &&
              a.frames <= MEMTAP_MAX_FRAMES && (a.mode == MEMTAP_MODE_EXACT || a.sample_bytes > 0) &&
              terminated(a.socket_path, sizeof(a.socket_path)) && a.socket_path[0] != '\0' &&
              terminated(a.python_module, sizeof(a.python_module));
    return ok ? MEMTAP_START_OK : MEMTAP_START_BAD_ARGS;
}

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
    if (api.isInitialized() == 0) {
        return MEMTAP_START_NOT_INITIALIZED;
    }
    if (pythonIsFinalizing(api)) {
        return MEMTAP_START_FINALIZING;
    }
    // 3.6 creates the GIL lazily (PyEval_InitThreads, Python/ceval.c), and a
    // single-threaded program never does. The agent never takes the GIL, and
    // frame capture compares the current thread state with the gilstate TSS
    // (set up by Py_Initialize whether or not threads exist), so such a
    // process is traced like any other: only its main thread runs Python.
    return MEMTAP_START_OK;
}

memtap_start_status
start(const memtap_start_args* args) {
    // Only struct_size and protocol_version are read before they are known
    // to match: a host built against another layout must not make us read
    // past its struct.
    if (args == nullptr || args->struct_size != sizeof(memtap_start_args) ||
        args->protocol_version != MEMTAP_PROTOCOL_VERSION) {
        return MEMTAP_START_BAD_ARGS;
    }
    int expected = kDormant;
    if (!g_phase.compare_exchange_strong(expected, kStarting, std::memory_order_acq_rel)) {
        return MEMTAP_START_ALREADY_RUNNING;
    }
    std::memcpy(&g_agent.args, args, sizeof(g_agent.args));
    g_agent.listenFd = -1;
    memtap_start_status status = validate(g_agent.args);
    if (status == MEMTAP_START_OK) {
        status = checkInterpreter();
    }
    if (status == MEMTAP_START_OK) {
        g_agent.listenFd = openControlSocket(g_agent.args.socket_path);
        if (g_agent.listenFd < 0) {
            status = MEMTAP_START_SOCKET_FAILED;
        }
    }
    if (status == MEMTAP_START_OK) {
        EngineConfig config{g_agent.args.mode, g_agent.args.frames, g_agent.args.sample_bytes,
                            g_agent.framesOk};
        // Tables first, then the hooks (installed without the GIL, see
        // hooks.cpp), then recording, which engineStart switches on.
        if (!engineStart(config)) {
            status = MEMTAP_START_THREAD_FAILED;
        } else {
            installHooks(g_agent.api);
            if (!g_atforkRegistered) {
                // Registered once per process: the agent is never unloaded.
                g_atforkRegistered = pthread_atfork(atforkPrepare, atforkParent, atforkChild) == 0;
            }
            g_phase.store(kServing, std::memory_order_release);
            if (!startAgentThread(onAgentThreadExit)) {
                g_phase.store(kStarting, std::memory_order_relaxed);
                uninstallHooks(g_agent.api);
                engineStop();
                status = MEMTAP_START_THREAD_FAILED;
            }
        }
        if (status != MEMTAP_START_OK) {
            close(g_agent.listenFd);
            unlink(g_agent.args.socket_path);
            g_agent.listenFd = -1;
        }
    }
    if (status != MEMTAP_START_OK) {
        g_phase.store(kDormant, std::memory_order_release);
    }
    return status;
}

} // namespace
} // namespace memtap_agent

extern "C" __attribute__((visibility("default"))) int
memtap_agent_start(const memtap_start_args* args) noexcept {
    return memtap_agent::start(args);
}
