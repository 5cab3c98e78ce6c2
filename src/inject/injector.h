// Getting the agent into a live CPython process, and getting it out again.
//
// attach: find CPython and libc in the target, pick a thread at a safe point
// (safe_point.h), borrow it for: __errno_location, mmap of a scratch page,
// memfd_create + dlopen("/proc/self/fd/N") of the embedded agent (first attach
// only; later attaches reuse the dormant copy), and the agent's entry, which
// starts the agent's own thread. Every change (registers, errno, scratch page,
// memfd) is held by a guard and undone before the thread is let go, on every
// path. Then wait until the agent answers on its socket: its hooks are live.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include "agent/protocol.h"

namespace memtap::inject {

struct AttachOptions {
    memtap_mode mode = MEMTAP_MODE_SAMPLED;
    uint64_t sampleBytes = 512 * 1024;
    uint32_t frames = 16;
    bool native = false; // --native: also native modules' malloc/mmap (MEMTAP_FEATURE_NATIVE)
    std::chrono::milliseconds timeout{10000};
    std::function<void(const std::string&)> progress; // one-line notes while waiting
};

struct AttachResult {
    bool alreadyAttached = false; // an agent was already serving; nothing was done
    bool reusedAgent = false;     // the dormant agent of an earlier attach was restarted
    std::string python;           // e.g. "3.11.7"
    std::string pythonNote;       // PythonTarget::note: a newer CPython, degraded
    pid_t borrowedThread = 0;
    std::chrono::microseconds latency{0};           // start to hooks live
    std::chrono::microseconds longestThreadStop{0}; // longest time one thread was held stopped
};

// Returns with SIGINT, SIGTERM, SIGHUP and SIGQUIT blocked: once attached, a
// termination signal is the caller's to act on (and say so), never a silent
// death that leaves the agent in.
AttachResult attachOrThrow(pid_t pid, const AttachOptions& options);

// Asks the agent to remove its hooks and end its thread, then waits until the
// thread is gone. Error(NotAttached) when no agent serves the process.
void detachOrThrow(pid_t pid, std::chrono::milliseconds timeout);

} // namespace memtap::inject
