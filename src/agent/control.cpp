#include "agent/control.h"

#include "agent/agent_state.h"
#include "agent/engine.h"
#include "agent/hooks.h"
#include "agent/snapshot.h"
#include "agent/status.h"
#include "agent/text.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

namespace memtap_agent {
namespace {

// How often the idle thread wakes to look at the interpreter (it stops
// recording if the target starts finalizing).
constexpr int kPollMs = 200;
// A client gets this long to send its request line.
constexpr int kRequestMs = 2000;
constexpr size_t kMaxRequest = 256;

using ExitFn = void (*)();
constinit ExitFn g_onExit = nullptr;

bool
peerAllowed(int fd) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        return false;
    }
    return cred.uid == 0 || cred.uid == g_agent.args.peer_uid;
}

bool
sendAll(int fd, const char* data, size_t size) {
    while (size > 0) {
        // MSG_NOSIGNAL: a client that went away must not raise SIGPIPE in the
        // target (it would stay pending on our thread, but better none).
        ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        data += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

void
replyOk(int fd, const Text& payload) {
    if (payload.failed()) {
        const char err[] = "err out of memory\n";
        sendAll(fd, err, sizeof(err) - 1);
        return;
    }
    Text head;
    head.append("ok ");
    head.appendU64(payload.size());
    head.append('\n');
    if (sendAll(fd, head.data(), head.size())) {
        sendAll(fd, payload.data(), payload.size());
    }
}

void
replyErr(int fd, const char* message) {
    Text text;
    text.append("err ");
    text.append(message);
    text.append('\n');
    sendAll(fd, text.data(), text.size());
}

int64_t
nowMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Reads one request line (without '\n', '\r' stripped) into buf.
bool
readRequest(int fd, char* buf, size_t cap) {
    size_t used = 0;
    int64_t deadline = nowMs() + kRequestMs;
    while (true) {
        int64_t left = deadline - nowMs();
        if (left <= 0) {
            return false;
        }
        pollfd pfd{fd, POLLIN, 0};
        int ready = poll(&pfd, 1, static_cast<int>(left));
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (ready <= 0) {
            return false;
        }
        ssize_t n = recv(fd, buf + used, cap - 1 - used, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        used += static_cast<size_t>(n);
        buf[used] = '\0';
        if (char* nl = static_cast<char*>(std::memchr(buf, '\n', used))) {
            *nl = '\0';
            if (nl > buf && nl[-1] == '\r') {
                nl[-1] = '\0';
            }
            return true;
        }
        if (used + 1 >= cap) {
            return false;
        }
    }
}

// Undoes everything the entry and this thread set up, in reverse order, and
// hands the agent back (dormant): after this the thread touches no shared
// state, so a new start may begin while it still sends its last reply.
void
shutDown() {
    uninstallHooks(g_agent.api);
    engineStop();
    unlink(g_agent.args.socket_path);
    close(g_agent.listenFd);
    g_agent.listenFd = -1;
    g_onExit();
}

// Serves one connection. Returns true if it asked us to detach.
bool
serveClient(int fd) {
    if (!peerAllowed(fd)) {
        replyErr(fd, "permission denied");
        return false;
    }
    char request[kMaxRequest];
    if (!readRequest(fd, request, sizeof(request))) {
        replyErr(fd, "bad request");
        return false;
    }
    if (std::strcmp(request, "status") == 0) {
        Text payload;
        formatStatus(payload);
        replyOk(fd, payload);
        return false;
    }
    if (std::strcmp(request, "snapshot") == 0) {
        Text payload;
        formatSnapshot(payload);
        replyOk(fd, payload);
        return false;
    }
    if (std::strcmp(request, "detach") == 0) {
        // Everything goes before the reply, so a host that saw "ok" finds the
        // socket path free and may start the agent again at once.
        shutDown();
        Text empty;
        replyOk(fd, empty);
        return true;
    }
    replyErr(fd, "unknown command");
    return false;
}

void*
agentThread(void*) {
    prctl(PR_SET_NAME, "memtap-agent", 0, 0, 0);
    bool detached = false;
    while (!detached) {
        pollfd pfd{g_agent.listenFd, POLLIN, 0};
        int ready = poll(&pfd, 1, kPollMs);
        if (ready < 0 && errno != EINTR) {
            break;
        }
        if (ready <= 0) {
            if (g_recording.load(std::memory_order_relaxed) && pythonIsFinalizing(g_agent.api)) {
                // Shutting down: stop recording, keep serving until detach so
                // the host gets an answer rather than a vanished socket.
                uninstallHooks(g_agent.api);
                engineStop();
            }
            continue;
        }
        int client = accept4(g_agent.listenFd, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) {
            continue;
        }
        detached = serveClient(client);
        close(client);
    }
    if (!detached) {
        shutDown();
    }
    return nullptr;
}

} // namespace

// A target that exits while attached (exit(), not a kill -9) takes its
// socket file with it: the loader runs this at exit for the loaded agent. A
// forked child closed listenFd (atforkChild) and leaves its parent's alone.
__attribute__((destructor)) void
removeSocketAtExit() {
    if (g_agent.listenFd >= 0) {
        unlink(g_agent.args.socket_path);
    }
}

int
openControlSocket(const char* path) noexcept {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    size_t len = std::strlen(path);
    if (len == 0 || len >= sizeof(addr.sun_path)) {
        return -1;
    }
    std::memcpy(addr.sun_path, path, len + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    // A stale socket left by an agent that died with its process: only a
    // socket is removed, never another kind of file at that path.
    struct stat st {};
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    // chmod right after bind instead of umask: umask is process-wide and
    // another thread of the target may be creating files right now. In the
    // short window the peer uid check in serveClient still refuses strangers.
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || chmod(path, 0600) != 0 ||
        listen(fd, 8) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool
startAgentThread(void (*onExit)()) noexcept {
    g_onExit = onExit;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        return false;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    // Formatting needs little stack; keep the target's address space tidy.
    pthread_attr_setstacksize(&attr, 256 * 1024);
    // Every signal blocked in the new thread (it inherits the creator's mask),
    // so the target's handlers never run on the agent thread; then the
    // hijacked thread gets its own mask back.
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

} // namespace memtap_agent
