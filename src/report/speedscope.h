// `memtap diff --format speedscope`: the diff as a speedscope file
// (www.speedscope.app, file-format-schema.json), JSON that speedscope opens
// offline (`npx speedscope FILE`, or drop it on the page). Two "sampled"
// profiles over one shared frame table, one sample per traceback, outermost
// frame first as the format wants:
//   "NEW: bytes held"  weight = what NEW holds under the traceback
//   "OLD -> NEW: growth"  weight = its growth; tracebacks that shrank or
//                         stayed are left out (weights cannot be negative)
#pragma once

#include <string>

#include "report/snapshot.h"

namespace memtap::report {

struct SpeedscopeOptions {
    std::string oldName = "old";
    std::string newName = "new";
    std::string title; // the file's "name"
};

std::string renderSpeedscope(const Snapshot& older, const Snapshot& newer,
                             const SpeedscopeOptions& options);

} // namespace memtap::report
