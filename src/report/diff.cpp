#include "report/diff.h"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <utility>

namespace memtap::report {

namespace {

// A group's identity: the (file, line) of each key frame. Function names are
// labels only, as tracemalloc's frames are (filename, lineno).
using GroupId = std::vector<std::pair<std::string, int>>;

struct Totals {
    int64_t size = 0;
    int64_t count = 0;
};

struct Group {
    std::vector<Frame> key;
    Totals older;
    Totals newer;
};

const Frame&
unknownFrame() {
    static const Frame frame{"<unknown>", 0, ""};
    return frame;
}

std::vector<Frame>
keyOf(const Trace& trace, GroupBy by) {
    if (trace.frames.empty()) {
        return {unknownFrame()};
    }
    switch (by) {
    case GroupBy::Lineno:
        return {trace.frames.front()};
    case GroupBy::Filename:
        return {Frame{trace.frames.front().file, 0, ""}};
    case GroupBy::Traceback:
        return trace.frames;
    }
    return {unknownFrame()};
}

GroupId
idOf(const std::vector<Frame>& key) {
    GroupId id;
    id.reserve(key.size());
    for (const Frame& frame : key) {
        id.emplace_back(frame.file, frame.line);
    }
    return id;
}

void
addSnapshot(std::map<GroupId, Group>& groups, const Snapshot& snapshot, GroupBy by, bool isNewer) {
    for (const Trace& trace : snapshot.traces) {
        std::vector<Frame> key = keyOf(trace, by);
        auto [it, inserted] = groups.try_emplace(idOf(key));
        Group& group = it->second;
        if (inserted) {
            group.key = std::move(key);
        } else {
            // Same (file, line) sequence under another function name: keep
            // the smallest name so the result does not depend on trace order.
            for (size_t i = 0; i < key.size(); ++i) {
                if (key[i].function < group.key[i].function) {
                    group.key[i].function = key[i].function;
                }
            }
        }
        Totals& totals = isNewer ? group.newer : group.older;
        totals.size += trace.size;
        totals.count += trace.count;
    }
}

bool
keyLess(const std::vector<Frame>& a, const std::vector<Frame>& b) {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(), [](const Frame& x, const Frame& y) {
            return std::tie(x.file, x.line, x.function) < std::tie(y.file, y.line, y.function);
        });
}

} // namespace

std::optional<GroupBy>
parseGroupBy(std::string_view text) {
    for (GroupBy by : {GroupBy::Lineno, GroupBy::Filename, GroupBy::Traceback}) {
        if (text == name(by)) {
            return by;
        }
    }
    return std::nullopt;
}

std::string_view
name(GroupBy by) {
    switch (by) {
    case GroupBy::Lineno:
        return "lineno";
    case GroupBy::Filename:
        return "filename";
    case GroupBy::Traceback:
        return "traceback";
    }
    return "lineno";
}

std::vector<StatDiff>
compareSnapshots(const Snapshot& older, const Snapshot& newer, GroupBy by) {
    std::map<GroupId, Group> groups;
    addSnapshot(groups, older, by, false);
    addSnapshot(groups, newer, by, true);

    std::vector<StatDiff> stats;
    stats.reserve(groups.size());
    for (auto& [id, group] : groups) {
        stats.push_back(StatDiff{std::move(group.key), group.newer.size,
                                 group.newer.size - group.older.size, group.newer.count,
                                 group.newer.count - group.older.count});
    }
    std::sort(stats.begin(), stats.end(), [](const StatDiff& a, const StatDiff& b) {
        if (a.sizeDiff != b.sizeDiff) {
            return a.sizeDiff > b.sizeDiff;
        }
        if (a.size != b.size) {
            return a.size > b.size;
        }
        if (a.countDiff != b.countDiff) {
            return a.countDiff > b.countDiff;
        }
        return keyLess(a.key, b.key);
    });
    return stats;
}

} // namespace memtap::report
