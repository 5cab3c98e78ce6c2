// The standard fds and stdout, as every command relies on them: 0, 1 and 2
// open before anything else is opened, and every byte meant for stdout either
// written or the failure reported. A reader that goes away (`| head`) is not
// a failure: it has what it wanted, and memtap stops quietly (SIGPIPE is
// ignored in main.cpp so that watch can still detach).
#pragma once

#include <string_view>

namespace memtap::cli {

// Call first in main, before any fd is created. A closed fd 0, 1 or 2 would
// be handed to the next open(): the signalfd or a control socket would then
// receive the report (or stdin's reads). Each closed one is opened on
// /dev/null; then a stdout that was closed, or is open read-only, is an
// Error, since the command's output would have nowhere to go.
void ensureStandardFdsOrThrow();

enum class WriteOutcome {
    Written,     // all of it
    ReaderGone,  // EPIPE: the rest is for nobody
    Interrupted, // interruptFd became readable while stdout could take nothing
};

// Writes all of data to fd 1, after whatever stdio still buffers for it,
// retrying EINTR and short writes. Throws Error(Failure) naming the errno for
// any failure but EPIPE (ENOSPC, EBADF, EIO...).
//
// With interruptFd (watch's signalfd), it waits for stdout in poll() together
// with that fd and writes at most PIPE_BUF at a time, which a pipe that polls
// writable takes without blocking (fs/pipe.c: POLLOUT means a free slot of a
// page). Signals blocked for a signalfd do not interrupt a blocking write(),
// so without this a reader that stops reading would leave Ctrl-C and SIGTERM
// unheard and the agent attached. A report is cut short only while stdout is
// full and that fd is readable.
[[nodiscard]] WriteOutcome writeStdoutOrThrow(std::string_view data, int interruptFd = -1);

// True when fd 1 is a pipe or socket whose reader has gone, as poll() reports
// it (POLLERR on a pipe with no readers, fs/pipe.c pipe_poll; POLLHUP on a
// hung-up terminal). Lets a command stop when its reader leaves instead of at
// its next write.
bool stdoutReaderGone();

// At exit: flushes what stdio holds for stdout and checks that nothing
// written through it (printf, fwrite) was lost. Returns quietly when the
// reader has gone; throws Error(Failure) otherwise.
void flushStdoutOrThrow();

} // namespace memtap::cli
