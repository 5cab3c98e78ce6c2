#include "agent/control.h"

#include "agent/agent_state.h"
#include "agent/engine.h"
#include "agent/heap_request.h"
#include "agent/hooks.h"
#include "agent/malloc_info.h"
#include "agent/native_calls.h"
#include "agent/pymalloc_read.h"
#include "agent/snapshot.h"
#include "agent/status.h"
#include "agent/text.h"
#include "agent/tracked_calls.h"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

namespace memtap_agent {
namespace {

// How often the loop looks at the interpreter, busy or idle (it stops
// recording if the target starts finalizing).
constexpr int64_t kFinalizeCheckMs = 200;
constexpr int64_t kRequestMs = MEMTAP_REQUEST_TIMEOUT_MS;
constexpr int64_t kReplyMs = MEMTAP_REPLY_TIMEOUT_MS;
constexpr size_t kMaxConnections = MEMTAP_MAX_CONNECTIONS;
constexpr size_t kMaxRequest = 256;
// Accepts per round of the loop: under a flood of connects, the connections
// already accepted still get served between rounds.
constexpr int kAcceptsPerRound = 32;
// listen(2) backlog (capped by net.core.somaxconn): connects beyond it wait
// in connect() until the loop accepts, so a burst must fit while it runs.
constexpr int kBacklog = 64;

int64_t
nowMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Who may talk to the agent: uid 0 of the target's user namespace (the
// target's own user in a rootless container) and args.peer_uid, memtap's
// euid as this namespace sees it. SO_PEERCRED is translated into the user
// namespace of the reader, us (cred_to_ucred, net/core/sock.c), and a uid
// with no mapping here reads as the overflow uid (from_kuid_munged,
// kernel/user_namespace.c; /proc/sys/kernel/overflowuid).
//
// With MEMTAP_PEER_UNMAPPED the host told us its euid is such a uid (host
// root attaching a target in a user namespace mapped from an unprivileged
// uid), so peer_uid is the overflow uid, which every unmapped user shares.
// That is safe because this check is not the only gate: the socket file is
// mode 0600 and owned by the target's user, so connect() needs write access
// to it, i.e. that user or CAP_DAC_OVERRIDE over the file (host root); and
// from outside the target's mount namespace the path is reached through
// /proc/PID/root, which needs ptrace rights over the target. An unmapped
// user who is neither cannot connect in the first place.
bool
peerAllowed(int fd) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        return false;
    }
    return cred.uid == 0 || cred.uid == g_agent.args.peer_uid;
}

// A client that closed its end (both directions: POLLHUP; a shutdown of its
// write side only gives POLLRDHUP, and such a client may still read) or
// whose socket failed has given up on its request.
bool
clientGone(int fd) {
    pollfd pfd{fd, POLLRDHUP, 0};
    int ready;
    do {
        ready = poll(&pfd, 1, 0);
    } while (ready < 0 && errno == EINTR);
    return ready > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
}

// Best effort, never blocks: for a connection about to be closed.
void
sendNow(int fd, const char* text) {
    // MSG_NOSIGNAL: a client that went away must not raise SIGPIPE in the
    // target (blocked on this thread, but it would stay pending).
    ssize_t n;
    do {
        n = send(fd, text, std::strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
}

// Closing a Unix stream socket with unread data in its receive queue makes
// the peer's next recv fail with ECONNRESET (unix_release_sock,
// net/unix/af_unix.c), and it would never read the "err ..." line we just
// sent. So what the client sent and we did not read is drained first.
void
drainAndClose(int fd) {
    char sink[4096];
    for (int i = 0; i < 16; ++i) {
        ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n <= 0 && !(n < 0 && errno == EINTR)) {
            break;
        }
    }
    ::close(fd);
}

enum class State { kFree, kReading, kWriting };

// One client: its request line, then its reply ("ok N\n" or "err ...\n" in
// head, then payload), sent without blocking as the client takes it.
struct Connection {
    State state = State::kFree;
    int fd = -1;
    uint64_t order = 0;   // accept order, for choosing whom to drop
    bool refused = false; // peer not allowed: its request gets "err permission denied"
    int64_t deadline = 0; // request deadline while reading, reply deadline while writing
    size_t used = 0;      // bytes in request
    char request[kMaxRequest];
    char head[64];
    size_t headSize = 0;
    size_t sent = 0; // of head, then of payload
    Text payload;

    void close() {
        if (fd >= 0) {
            drainAndClose(fd);
        }
        fd = -1;
        state = State::kFree;
        refused = false;
        used = 0;
        headSize = 0;
        sent = 0;
        payload.reset();
    }
};

class ControlLoop {
public:
    explicit ControlLoop(void (*tearDown)()) : tearDown_(tearDown) {}
    ControlLoop(const ControlLoop&) = delete;
    ControlLoop& operator=(const ControlLoop&) = delete;
    ~ControlLoop() {
        for (Connection& c : connections_) {
            c.close();
        }
    }

    void run();

private:
    void acceptNew(int64_t now);
    Connection* freeSlot();
    void readRequest(Connection& c, int64_t now);
    void dispatch(Connection& c, int64_t now);
    void replyOk(Connection& c, int64_t now);
    void replyErr(Connection& c, const char* message, int64_t now);
    void flush(Connection& c);
    void detach(Connection& c, int64_t now);
    void releaseScratch(Connection& c, int64_t now);
    void releaseLeftoverScratch(Connection& c, const char* args, int64_t now);
    void checkFinalizing();
    int pollTimeout(int64_t now) const;

    void (*tearDown_)();
    bool detached_ = false;
    bool failed_ = false;
    uint64_t accepted_ = 0;
    int64_t nextFinalizeCheck_ = 0;
    Connection connections_[kMaxConnections];
};

void
ControlLoop::run() {
    pollfd fds[1 + kMaxConnections];
    Connection* polled[1 + kMaxConnections];
    nextFinalizeCheck_ = nowMs() + kFinalizeCheckMs;
    while (!detached_ && !failed_) {
        int64_t now = nowMs();
        size_t n = 0;
        fds[n++] = pollfd{g_agent.listenFd, POLLIN, 0};
        for (Connection& c : connections_) {
            if (c.state == State::kFree) {
                continue;
            }
            polled[n] = &c;
            fds[n++] =
                pollfd{c.fd, static_cast<short>(c.state == State::kReading ? POLLIN : POLLOUT), 0};
        }
        int ready = poll(fds, n, pollTimeout(now));
        if (ready < 0 && errno != EINTR) {
            failed_ = true;
            break;
        }
        now = nowMs();
        for (size_t i = 1; i < n && !detached_ && ready > 0; ++i) {
            Connection& c = *polled[i];
            if (fds[i].revents == 0 || c.state == State::kFree) {
                continue;
            }
            if (c.state == State::kReading) {
                readRequest(c, now);
            } else {
                flush(c);
            }
        }
        if (detached_) {
            break;
        }
        // Deadlines: a client that sends nothing, or does not take its reply.
        for (Connection& c : connections_) {
            if (c.state == State::kReading && now >= c.deadline) {
                replyErr(c, c.refused ? "permission denied" : "request timeout", now);
            } else if (c.state == State::kWriting && now >= c.deadline) {
                c.close();
            }
        }
        if (ready > 0 && (fds[0].revents & POLLIN) != 0) {
            acceptNew(now);
        } else if (ready > 0 && (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
            failed_ = true;
        }
        // Not after a detach: the agent is no longer ours, a new start may
        // already own g_agent.
        if (!detached_ && now >= nextFinalizeCheck_) {
            checkFinalizing();
            // A module imported since (numpy after the attach) is rewired
            // within a tick.
            if (g_recording.load(std::memory_order_relaxed)) {
                rewireTrackedCalls(g_agent.api);
                if (nativeCallsReport().enabled) {
                    rewireNativeCalls(g_agent.api);
                }
            }
            nextFinalizeCheck_ = now + kFinalizeCheckMs;
        }
    }
    if (failed_) {
        // The socket cannot be served: leave as a detach would, so the
        // target does not keep hooks nobody can remove.
        tearDown_();
    }
}

int
ControlLoop::pollTimeout(int64_t now) const {
    int64_t wake = nextFinalizeCheck_;
    for (const Connection& c : connections_) {
        if (c.state != State::kFree && c.deadline < wake) {
            wake = c.deadline;
        }
    }
    int64_t left = wake - now;
    return left < 0 ? 0 : static_cast<int>(left);
}

void
ControlLoop::checkFinalizing() {
    if (g_recording.load(std::memory_order_relaxed) && pythonIsFinalizing(g_agent.api)) {
        // Shutting down: stop recording, keep serving until detach so the
        // host gets an answer rather than a vanished socket.
        restoreNativeCalls();
        restoreTrackedCalls();
        uninstallHooks(g_agent.api);
        engineStop();
    }
}

Connection*
ControlLoop::freeSlot() {
    Connection* oldestReading = nullptr;
    for (Connection& c : connections_) {
        if (c.state == State::kFree) {
            return &c;
        }
        if (c.state == State::kReading && (oldestReading == nullptr || c.order < oldestReading->order)) {
            oldestReading = &c;
        }
    }
    if (oldestReading != nullptr) {
        // Idle connections must not starve a client that has something to
        // say: the one that has waited longest without a request makes room.
        sendNow(oldestReading->fd, "err busy\n");
        oldestReading->close();
    }
    return oldestReading;
}

void
ControlLoop::acceptNew(int64_t now) {
    for (int i = 0; i < kAcceptsPerRound && !detached_; ++i) {
        int fd = accept4(g_agent.listenFd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            return; // EAGAIN: none left; anything else: the next round retries
        }
        Connection* c = freeSlot();
        if (c == nullptr) {
            // Every slot is sending a reply: this one waits for nothing.
            sendNow(fd, "err busy\n");
            drainAndClose(fd);
            continue;
        }
        c->fd = fd;
        c->order = ++accepted_;
        c->state = State::kReading;
        c->deadline = now + kRequestMs;
        // A refused peer is answered once it has sent its request: closed
        // earlier, its send would fail (EPIPE) and it would never read why.
        c->refused = !peerAllowed(fd);
        // The request is usually there already: no need to wait a round.
        readRequest(*c, now);
    }
}

void
ControlLoop::readRequest(Connection& c, int64_t now) {
    ssize_t n;
    do {
        n = recv(c.fd, c.request + c.used, sizeof(c.request) - 1 - c.used, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
    }
    if (n < 0) {
        c.close();
        return;
    }
    if (n == 0) {
        // The client finished sending without a full line. If it closed
        // altogether there is nobody to answer.
        if (clientGone(c.fd)) {
            c.close();
        } else {
            replyErr(c, c.refused ? "permission denied" : "bad request", now);
        }
        return;
    }
    c.used += static_cast<size_t>(n);
    c.request[c.used] = '\0';
    char* nl = static_cast<char*>(std::memchr(c.request, '\n', c.used));
    if (nl == nullptr) {
        if (c.used + 1 >= sizeof(c.request)) {
            replyErr(c, c.refused ? "permission denied" : "bad request", now);
        }
        return;
    }
    *nl = '\0';
    if (nl > c.request && nl[-1] == '\r') {
        nl[-1] = '\0';
    }
    dispatch(c, now);
}

void
ControlLoop::dispatch(Connection& c, int64_t now) {
    const char* request = c.request;
    if (c.refused) {
        replyErr(c, "permission denied", now);
    } else if (std::strcmp(request, MEMTAP_CMD_STATUS) == 0) {
        formatStatus(c.payload);
        replyOk(c, now);
    } else if (std::strcmp(request, MEMTAP_CMD_SNAPSHOT) == 0) {
        formatSnapshot(c.payload, SnapshotKind::kNow);
        replyOk(c, now);
    } else if (std::strcmp(request, MEMTAP_CMD_SNAPSHOT_PEAK) == 0) {
        formatSnapshot(c.payload, SnapshotKind::kPeak);
        replyOk(c, now);
    } else if (std::strcmp(request, MEMTAP_CMD_PEAK_RESET) == 0) {
        engineResetPeak();
        replyOk(c, now);
    } else if (std::strcmp(request, MEMTAP_CMD_PYMALLOC) == 0) {
        formatPymalloc(c.payload);
        replyOk(c, now);
    } else if (std::strcmp(request, MEMTAP_CMD_MALLOC_TRIM) == 0) {
        formatMallocTrim(c.payload);
        replyOk(c, now);
    } else if (std::strncmp(request, MEMTAP_CMD_HEAP_WALK " ", sizeof(MEMTAP_CMD_HEAP_WALK)) == 0) {
        if (const char* error = armHeapWalk(request + sizeof(MEMTAP_CMD_HEAP_WALK), c.payload)) {
            replyErr(c, error, now);
        } else {
            replyOk(c, now);
        }
    } else if (std::strcmp(request, MEMTAP_CMD_HEAP_WALK_RESULT) == 0) {
        formatHeapWalkResult(c.payload);
        replyOk(c, now);
    } else if (std::strcmp(request, MEMTAP_CMD_HEAP_WALK_CANCEL) == 0) {
        cancelHeapWalk();
        replyOk(c, now);
    } else if (std::strcmp(request, MEMTAP_CMD_DETACH) == 0) {
        detach(c, now);
    } else if (std::strcmp(request, MEMTAP_CMD_RELEASE_SCRATCH) == 0) {
        releaseScratch(c, now);
    } else if (std::strncmp(request, MEMTAP_CMD_RELEASE_SCRATCH " ",
                            sizeof(MEMTAP_CMD_RELEASE_SCRATCH)) == 0) {
        releaseLeftoverScratch(c, request + sizeof(MEMTAP_CMD_RELEASE_SCRATCH), now);
    } else {
        replyErr(c, "unknown command", now);
    }
}

void
ControlLoop::detach(Connection& c, int64_t now) {
    // The client may have given up (timed out and closed) while its request
    // waited: it was told the detach failed, so it must not happen. Asked
    // here, right before acting, not from the poll results of this round.
    if (clientGone(c.fd)) {
        c.close();
        return;
    }
    // Everything goes before the reply, so a host that saw "ok" finds the
    // socket path free and may start the agent again at once.
    tearDown_();
    detached_ = true;
    replyOk(c, now);
    // The agent is no longer ours: the other clients get what can be sent
    // now, and the destructor closes every connection.
    for (Connection& other : connections_) {
        if (&other != &c && other.state == State::kReading) {
            sendNow(other.fd, "err agent detached\n");
        }
    }
}

void
ControlLoop::releaseScratch(Connection& c, int64_t now) {
    memtap_start_args& args = g_agent.args;
    if (args.scratch_addr != 0) {
        // Exactly the range the host gave (entry.cpp checked it is
        // page-aligned and does not wrap), once: zeroed below, so a second
        // request finds nothing to do.
        if (munmap(reinterpret_cast<void*>(args.scratch_addr), args.scratch_size) != 0) {
            replyErr(c, "munmap of the scratch mapping failed", now);
            return;
        }
        args.scratch_addr = 0;
        args.scratch_size = 0;
    }
    replyOk(c, now);
}

// "123 456" -> two decimals; false on anything else.
bool
parseTwoDecimals(const char* s, uint64_t* a, uint64_t* b) {
    uint64_t* out[] = {a, b};
    for (int i = 0; i < 2; ++i) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        uint64_t v = 0;
        for (; *s >= '0' && *s <= '9'; ++s) {
            if (v > (UINT64_MAX - 9) / 10) {
                return false;
            }
            v = v * 10 + static_cast<uint64_t>(*s - '0');
        }
        *out[i] = v;
        if (i == 0 && *s++ != ' ') {
            return false;
        }
    }
    return *s == '\0';
}

void
ControlLoop::releaseLeftoverScratch(Connection& c, const char* args, int64_t now) {
    constexpr uint64_t kPage = 4096;
    uint64_t addr = 0;
    uint64_t size = 0;
    if (!parseTwoDecimals(args, &addr, &size) || addr == 0 || addr % kPage != 0 || size % kPage != 0 ||
        size <= MEMTAP_SCRATCH_CONTROL_OFFSET || size > 64 * kPage || addr + size < addr) {
        replyErr(c, "bad release-scratch range", now);
        return;
    }
    // msync fails with ENOMEM on any unmapped page: only then is it safe to
    // read the header (a fault here would be the target's).
    void* base = reinterpret_cast<void*>(addr);
    if (msync(base, size, MS_ASYNC) != 0) {
        replyErr(c, "no mapping there", now);
        return;
    }
    memtap_scratch_header header;
    std::memcpy(&header, static_cast<const char*>(base) + MEMTAP_SCRATCH_CONTROL_OFFSET, sizeof(header));
    if (std::memcmp(header.magic, MEMTAP_SCRATCH_MAGIC, sizeof(header.magic)) != 0 ||
        header.total_bytes != size || header.in_call != 0) {
        replyErr(c, "not a released memtap scratch mapping", now);
        return;
    }
    if (munmap(base, size) != 0) {
        replyErr(c, "munmap of the scratch mapping failed", now);
        return;
    }
    replyOk(c, now);
}

void
formatU64(char* out, uint64_t v, size_t* pos) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) {
        out[(*pos)++] = digits[--n];
    }
}

void
ControlLoop::replyOk(Connection& c, int64_t now) {
    if (c.payload.failed()) {
        c.payload.reset();
        replyErr(c, "out of memory", now);
        return;
    }
    size_t pos = 0;
    c.head[pos++] = 'o';
    c.head[pos++] = 'k';
    c.head[pos++] = ' ';
    formatU64(c.head, c.payload.size(), &pos);
    c.head[pos++] = '\n';
    c.headSize = pos;
    c.sent = 0;
    c.state = State::kWriting;
    c.deadline = now + kReplyMs;
    flush(c);
}

void
ControlLoop::replyErr(Connection& c, const char* message, int64_t now) {
    size_t len = std::strlen(message);
    if (len > sizeof(c.head) - 6) {
        len = sizeof(c.head) - 6;
    }
    std::memcpy(c.head, "err ", 4);
    std::memcpy(c.head + 4, message, len);
    c.head[4 + len] = '\n';
    c.headSize = 5 + len;
    c.payload.reset();
    c.sent = 0;
    c.state = State::kWriting;
    c.deadline = now + kReplyMs;
    flush(c);
}

// Sends what the client's socket takes now; closes the connection when the
// reply is out (the client reads to EOF) or the client is gone.
void
ControlLoop::flush(Connection& c) {
    size_t total = c.headSize + c.payload.size();
    while (c.sent < total) {
        const char* data;
        size_t size;
        if (c.sent < c.headSize) {
            data = c.head + c.sent;
            size = c.headSize - c.sent;
        } else {
            data = c.payload.data() + (c.sent - c.headSize);
            size = total - c.sent;
        }
        ssize_t n = send(c.fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return; // poll says when it takes more
        }
        if (n <= 0) {
            c.close();
            return;
        }
        c.sent += static_cast<size_t>(n);
    }
    c.close();
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
    // Non-blocking: the loop accepts until EAGAIN.
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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
    // short window the peer uid check still refuses strangers.
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    if (chmod(path, 0600) != 0 || listen(fd, kBacklog) != 0) {
        unlink(path); // ours: bind just created it
        close(fd);
        return -1;
    }
    return fd;
}

void
serveControl(void (*tearDown)()) noexcept {
    ControlLoop loop(tearDown);
    loop.run();
}

} // namespace memtap_agent
