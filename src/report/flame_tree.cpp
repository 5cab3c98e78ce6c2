#include "report/flame_tree.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace memtap::report {
namespace {

// Built with maps for the merge, then turned into sorted vectors.
struct Building {
    int64_t size = 0, oldSize = 0, count = 0, oldCount = 0;
    std::map<std::tuple<std::string, int, std::string>, Building> children;
};

void
add(Building& root, const Trace& trace, bool fromNew) {
    Building* node = &root;
    auto account = [&](Building& n) {
        (fromNew ? n.size : n.oldSize) += trace.size;
        (fromNew ? n.count : n.oldCount) += trace.count;
    };
    account(root);
    // Trace frames are most recent call first: walk them from the outside in.
    for (auto it = trace.frames.rbegin(); it != trace.frames.rend(); ++it) {
        node = &node->children[std::make_tuple(it->file, it->line, it->function)];
        account(*node);
    }
}

FlameNode
finish(const Frame& frame, const Building& b) {
    FlameNode node{frame, b.size, b.oldSize, b.count, b.oldCount, {}};
    node.children.reserve(b.children.size());
    for (const auto& [key, child] : b.children) {
        node.children.push_back(
            finish(Frame{std::get<0>(key), std::get<1>(key), std::get<2>(key)}, child));
    }
    std::stable_sort(node.children.begin(), node.children.end(),
                     [](const FlameNode& a, const FlameNode& b) { return a.size > b.size; });
    return node;
}

} // namespace

FlameNode
buildFlameTree(const Snapshot& older, const Snapshot& newer) {
    Building root;
    for (const Trace& t : older.traces) {
        add(root, t, false);
    }
    for (const Trace& t : newer.traces) {
        add(root, t, true);
    }
    return finish(Frame{}, root);
}

size_t
flameNodeCount(const FlameNode& root) {
    size_t n = 1;
    for (const auto& child : root.children) {
        n += flameNodeCount(child);
    }
    return n;
}

} // namespace memtap::report
