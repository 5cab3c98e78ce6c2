#include "cli/std_output.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include <cerrno>
#include <cstdio>

#include "base/error.h"

namespace memtap::cli {
namespace {

constexpr const char* kHint = "send stdout to a terminal, file or pipe that can take the output";

Error
writeError(int err) {
    return Error(ExitCode::Failure, describeErrno("writing to stdout", err), kHint);
}

} // namespace

void
ensureStandardFdsOrThrow() {
    bool stdoutClosed = false;
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; ++fd) {
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) {
            continue;
        }
        // open() returns the lowest free number, which is fd: the ones below
        // it are open (or were just opened here). Deliberately not an owner:
        // this fd lives as long as the process, as the one it replaces would.
        int opened = ::open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
        if (opened != fd) {
            // No /dev/null (a bare chroot): stop before anything else takes
            // the number. main prints this on stderr if stderr is there.
            int err = errno;
            if (opened >= 0) {
                ::close(opened);
            }
            throw Error(
                ExitCode::Failure,
                describeErrno(fmt::format("fd {} is closed and /dev/null cannot stand in", fd), err),
                "run memtap with stdin, stdout and stderr open");
        }
        stdoutClosed = stdoutClosed || fd == STDOUT_FILENO;
    }
    if (stdoutClosed) {
        throw Error(ExitCode::Failure, "stdout is closed: the output has nowhere to go",
                    "run memtap with stdout open; `>/dev/null` discards the output");
    }
    int flags = ::fcntl(STDOUT_FILENO, F_GETFL);
    if (flags != -1 && (flags & O_ACCMODE) == O_RDONLY) {
        throw Error(ExitCode::Failure, "stdout is open for reading only: the output has nowhere to go",
                    kHint);
    }
}

WriteOutcome
writeStdoutOrThrow(std::string_view data, int interruptFd) {
    if (std::fflush(stdout) != 0) {
        if (errno == EPIPE) {
            return WriteOutcome::ReaderGone;
        }
        throw writeError(errno);
    }
    while (!data.empty()) {
        size_t chunk = data.size();
        if (interruptFd >= 0) {
            pollfd fds[2] = {{STDOUT_FILENO, POLLOUT, 0}, {interruptFd, POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                throw Error(ExitCode::Failure, describeErrno("poll on stdout", errno));
            }
            // POLLERR/POLLHUP on stdout are left to write(), which says why.
            if (fds[0].revents == 0) {
                return WriteOutcome::Interrupted;
            }
            chunk = std::min<size_t>(chunk, PIPE_BUF);
        }
        ssize_t n = ::write(STDOUT_FILENO, data.data(), chunk);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EPIPE) {
            return WriteOutcome::ReaderGone;
        }
        if (n < 0) {
            throw writeError(errno);
        }
        if (n == 0) {
            // Not a documented result for a non-empty write; do not spin on it.
            throw Error(ExitCode::Failure, "writing to stdout: nothing was written", kHint);
        }
        // A short write (a file that just filled up) continues with the rest;
        // the next write then fails with the reason.
        data.remove_prefix(static_cast<size_t>(n));
    }
    return WriteOutcome::Written;
}

bool
stdoutReaderGone() {
    // events 0: only POLLERR/POLLHUP/POLLNVAL can be reported, so a regular
    // file or /dev/null (always writable) never looks gone.
    pollfd pfd{STDOUT_FILENO, 0, 0};
    return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLHUP)) != 0;
}

void
flushStdoutOrThrow() {
    if (std::fflush(stdout) != 0) {
        if (errno == EPIPE) {
            return;
        }
        throw writeError(errno);
    }
    if (std::ferror(stdout) == 0) {
        return;
    }
    // A write larger than stdio's buffer goes straight to write(2); when it
    // fails only the error flag stays, not the errno, and the flush above
    // has nothing left to retry.
    if (stdoutReaderGone()) {
        return;
    }
    throw Error(ExitCode::Failure, "writing to stdout failed: part of the output was lost", kHint);
}

} // namespace memtap::cli
