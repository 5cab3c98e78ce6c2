#include "report/diff.h"

#include <time.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include <fmt/format.h>

namespace memtap::report {

namespace {

// A group's identity: the (file, line) of each key frame. Function names are
// labels only, as tracemalloc's frames are (filename, lineno).
using GroupId = std::vector<std::pair<std::string, int>>;

struct Totals {
    int64_t size = 0;
    int64_t count = 0;
    int64_t samples = 0; // -1 once a trace without a sample count was added
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
        totals.samples = totals.samples < 0 || trace.samples < 0 ? -1 : totals.samples + trace.samples;
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

std::optional<int64_t>
fewSamples(const StatDiff& stat, bool sampled) {
    if (!sampled || stat.samples < 0 || stat.oldSamples < 0) {
        return std::nullopt;
    }
    int64_t most = std::max(stat.samples, stat.oldSamples);
    return most < kFewSamples ? std::optional<int64_t>(most) : std::nullopt;
}

namespace {

std::string
clockOf(uint64_t unixMs) {
    time_t seconds = static_cast<time_t>(unixMs / 1000);
    tm local{};
    char text[32] = "?";
    if (localtime_r(&seconds, &local) != nullptr) {
        std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &local);
    }
    return text;
}

std::string
modeOf(const Snapshot& s) {
    return s.mode == "sampled" ? fmt::format("sampled every {} bytes", s.sampleBytes) : s.mode;
}

} // namespace

std::optional<std::string>
sessionMismatch(const Snapshot& older, const Snapshot& newer) {
    std::string out;
    if (older.attachedAtUnixMs != 0 && newer.attachedAtUnixMs != 0 &&
        older.attachedAtUnixMs != newer.attachedAtUnixMs) {
        out = fmt::format("OLD and NEW come from different attach sessions (attached {} and {}): "
                          "tracing restarted in between, so the difference is not growth",
                          clockOf(older.attachedAtUnixMs), clockOf(newer.attachedAtUnixMs));
    }
    bool sameMode =
        older.mode == newer.mode && (older.mode != "sampled" || older.sampleBytes == newer.sampleBytes);
    if (!sameMode) {
        out += fmt::format("{}OLD and NEW were taken in different modes ({} and {})",
                           out.empty() ? "" : "; ", modeOf(older), modeOf(newer));
    }
    return out.empty() ? std::nullopt : std::optional<std::string>(out);
}

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
    // A side with no trace in a group has 0 samples there only if that
    // snapshot counts samples at all.
    auto knows = [](const Snapshot& s) {
        return std::all_of(s.traces.begin(), s.traces.end(),
                           [](const Trace& t) { return t.samples >= 0; });
    };
    bool olderKnows = knows(older);
    bool newerKnows = knows(newer);

    std::vector<StatDiff> stats;
    stats.reserve(groups.size());
    for (auto& [id, group] : groups) {
        stats.push_back(
            StatDiff{std::move(group.key), group.newer.size, group.newer.size - group.older.size,
                     group.newer.count, group.newer.count - group.older.count,
                     newerKnows ? group.newer.samples : -1, olderKnows ? group.older.samples : -1});
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
