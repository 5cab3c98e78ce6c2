// One heap walk (src/agent/heap_walk.h) as the CLI drives it: a SITE read
// from what the user copied, the walk armed, its state looked at without
// ever waiting for the target, and disarmed. `memtap refs`/`types` poll it
// until done; `watch` looks at it between redraws.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "report/heap_walk.h"

namespace memtap::cli {

inline constexpr uint64_t kDefaultMaxObjects = 5'000'000;

struct Site {
    std::string file;
    int line = 0;
};

// "app.py:12", "/srv/app/models.py:40 [numpy]", or a line copied from a
// diff or watch: "app.py:12: size=1.2 MiB (+1.2 MiB), count=...". Error
// (Usage) naming the text otherwise. A FILE longer than the agent keeps is
// cut to the longest tail of its path that fits.
Site parseSiteOrThrow(const std::string& text);

// The heap-walk arguments of protocol.h.
std::string refsRequest(const Site& site, uint64_t maxObjects, size_t top);
std::string typesRequest(uint64_t maxObjects);

// Arms one walk; its sequence number. Error: not attached, an agent that
// predates heap walks (NotSupported), another walk armed (Failure).
uint64_t armHeapWalkOrThrow(pid_t pid, const std::string& request);

// The walk's state now (HeapWalk::state(): "armed", "running", "done").
// Error when the agent went away, another request replaced this one, the
// walk was cancelled in the target, or it is done but could not walk
// (unsupported interpreter, no memory).
report::HeapWalk pollHeapWalkOrThrow(pid_t pid, uint64_t sequence);

// Disarms an armed walk or stops a running one; an agent that is gone has
// nothing of it left, so errors are ignored.
void cancelHeapWalkQuietly(pid_t pid);

std::string attachHint(pid_t pid);

} // namespace memtap::cli
