// The figures behind "RSS explained" (report/memory_breakdown.h), gathered
// for one process: smaps from /proc, malloc's keys from the agent's status,
// and pymalloc's state from the agent's `pymalloc` command, which the
// interpreter itself answers at its next allocation (protocol.h), so the host
// polls it until a deadline and never blocks on it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "report/memory_breakdown.h"

namespace memtap::cli {

// How long to wait for pymalloc's read, and what to say while waiting.
struct PymallocWait {
    std::chrono::milliseconds timeout{2000};
    // Called once, after kPymallocProgressAfter without an answer (the caller
    // decides where it goes; status prints it on a terminal's stderr).
    std::function<void(const std::string&)> progress;
};
inline constexpr std::chrono::milliseconds kPymallocProgressAfter{500};
// Between two polls: short next to a request's duration, long enough that
// a two-second wait is a few dozen one-line requests.
inline constexpr std::chrono::milliseconds kPymallocPollInterval{30};

// Polls the agent's `pymalloc` command until the read that answers this
// request completed or `wait.timeout` passed. Never throws for the agent's
// sake: a missing agent is NotAttached, one that does not know the command
// OldAgent, a deadline passed NotRead (with the figures of an earlier read,
// if any, in Read state with `stale` words in notReadReason).
report::PymallocFigures pollPymalloc(pid_t pid, const PymallocWait& wait);
// The figures of one `pymalloc` reply ("KEY VALUE" lines), for pollPymalloc
// and tests: Read when pymalloc_result is ok, Disabled, or NotRead.
report::PymallocFigures pymallocFiguresFrom(const std::map<std::string, std::string>& reply);

report::MallocFigures mallocFiguresFrom(const std::map<std::string, std::string>& agentStatus);

// Everything but pymalloc (the caller polls it, or not): smaps, malloc's
// status keys, agent_bytes.
report::BreakdownInput breakdownInputFor(pid_t pid, bool attached, int64_t rssBytes,
                                         const std::map<std::string, std::string>& agentStatus);

} // namespace memtap::cli
