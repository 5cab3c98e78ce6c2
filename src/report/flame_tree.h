// The call tree a flamegraph draws: every traceback of two snapshots merged
// from its outermost frame down, each node holding what NEW holds under it
// and what OLD held, so growth and shrink can be coloured.
#pragma once

#include <cstdint>
#include <vector>

#include "report/snapshot.h"

namespace memtap::report {

struct FlameNode {
    Frame frame;                     // empty for the root
    int64_t size = 0;                // bytes under this node in NEW (self included)
    int64_t oldSize = 0;             // the same in OLD
    int64_t count = 0;               // blocks under it in NEW
    int64_t oldCount = 0;            // in OLD
    std::vector<FlameNode> children; // largest size first, then by frame
};

// Frames are nodes by (file, line, function). A traceback with no frame is
// counted at the root only. Negative figures (a sampled estimate) are kept
// as they are; a reader decides how to draw them.
FlameNode buildFlameTree(const Snapshot& older, const Snapshot& newer);

// Nodes in the tree, root included.
size_t flameNodeCount(const FlameNode& root);

} // namespace memtap::report
