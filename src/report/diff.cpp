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

// A group's identity: its domain (0: PyMem) and the (file, line) of each key
// frame. Function names are labels only, as tracemalloc's frames are
// (filename, lineno).
using GroupId = std::pair<uint32_t, std::vector<std::pair<std::string, int>>>;

struct Totals {
    int64_t size = 0;
    int64_t count = 0;
    int64_t samples = 0; // -1 once a trace without a sample count was added
};

struct Group {
    std::vector<Frame> key;
    int64_t tid = 0;     // of every trace in it, when grouped by thread
    uint32_t domain = 0; // of every trace in it
    Totals older;
    Totals newer;
};

const Frame&
unknownFrame() {
    static const Frame frame{"<unknown>", 0, ""};
    return frame;
}

// The placeholder key frame of a thread's group: (file, line) identify it.
Frame
threadFrame(int64_t tid) {
    return Frame{fmt::format("thread {}", tid), 0, ""};
}

std::vector<Frame>
keyOf(const Trace& trace, GroupBy by) {
    if (by == GroupBy::Thread) {
        return {threadFrame(trace.tid)};
    }
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
    case GroupBy::User:
        return {userFrameOf(trace)};
    case GroupBy::Thread:
        break; // above
    }
    return {unknownFrame()};
}

GroupId
idOf(uint32_t domain, const std::vector<Frame>& key) {
    GroupId id{domain, {}};
    id.second.reserve(key.size());
    for (const Frame& frame : key) {
        id.second.emplace_back(frame.file, frame.line);
    }
    return id;
}

void
addSnapshot(std::map<GroupId, Group>& groups, const Snapshot& snapshot, GroupBy by, bool isNewer,
            std::optional<int64_t> onlyThread) {
    for (const Trace& trace : snapshot.traces) {
        if (onlyThread && trace.tid != *onlyThread) {
            continue;
        }
        std::vector<Frame> key = keyOf(trace, by);
        uint32_t domain = by == GroupBy::Thread ? 0 : trace.domain;
        auto [it, inserted] = groups.try_emplace(idOf(domain, key));
        Group& group = it->second;
        if (inserted) {
            group.key = std::move(key);
            group.tid = trace.tid;
            group.domain = domain;
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

bool
isLibraryFile(std::string_view file) {
    if (file.starts_with("<frozen")) {
        return true;
    }
    if (file.find("/site-packages/") != std::string_view::npos ||
        file.find("/dist-packages/") != std::string_view::npos) {
        return true;
    }
    // ".../lib/python3.11/..." (pyenv, Debian, venvs' base), ".../lib64/
    // python3.11/..." (Fedora's platlib), ".../lib/python311.zip/...": a
    // "python" directory under lib whose name goes on with a digit.
    for (std::string_view lib : {std::string_view("/lib/python"), std::string_view("/lib64/python")}) {
        for (size_t at = file.find(lib); at != std::string_view::npos; at = file.find(lib, at + 1)) {
            size_t next = at + lib.size();
            if (next < file.size() && file[next] >= '0' && file[next] <= '9' &&
                file.find('/', next) != std::string_view::npos) {
                return true;
            }
        }
    }
    return false;
}

ThreadLabel
threadLabelOf(int64_t tid, const Snapshot& older, const Snapshot& newer) {
    // The newer snapshot's name first: a thread may rename itself.
    for (const Snapshot* s : {&newer, &older}) {
        if (auto it = s->threads.find(tid); it != s->threads.end()) {
            return ThreadLabel{tid, it->second.name, it->second.state};
        }
    }
    return ThreadLabel{tid, "", ""};
}

const Frame&
userFrameOf(const Trace& trace) {
    for (const Frame& frame : trace.frames) {
        if (!isLibraryFile(frame.file)) {
            return frame;
        }
    }
    return trace.frames.empty() ? unknownFrame() : trace.frames.front();
}

std::string
threadText(const ThreadLabel& thread) {
    if (thread.tid == 0) {
        return "no thread id";
    }
    std::string detail = thread.name;
    if (thread.state == "exited") {
        detail += detail.empty() ? "exited" : ", exited";
    }
    return detail.empty() ? fmt::format("thread {}", thread.tid)
                          : fmt::format("thread {} ({})", thread.tid, detail);
}

std::string_view
groupByChoices() {
    return "lineno, filename, traceback, thread or user";
}

std::optional<GroupBy>
parseGroupBy(std::string_view text) {
    for (GroupBy by :
         {GroupBy::Lineno, GroupBy::Filename, GroupBy::Traceback, GroupBy::Thread, GroupBy::User}) {
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
    case GroupBy::Thread:
        return "thread";
    case GroupBy::User:
        return "user";
    }
    return "lineno";
}

std::vector<StatDiff>
compareSnapshots(const Snapshot& older, const Snapshot& newer, GroupBy by,
                 std::optional<int64_t> onlyThread) {
    std::map<GroupId, Group> groups;
    addSnapshot(groups, older, by, false, onlyThread);
    addSnapshot(groups, newer, by, true, onlyThread);
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
        StatDiff stat;
        stat.key = std::move(group.key);
        stat.size = group.newer.size;
        stat.sizeDiff = group.newer.size - group.older.size;
        stat.count = group.newer.count;
        stat.countDiff = group.newer.count - group.older.count;
        stat.samples = newerKnows ? group.newer.samples : -1;
        stat.oldSamples = olderKnows ? group.older.samples : -1;
        stat.domain = group.domain;
        stat.domainLabel = group.domain != 0 ? domainLabel(group.domain, older, newer) : "";
        if (by == GroupBy::Thread) {
            stat.thread = threadLabelOf(group.tid, older, newer);
        } else if (by == GroupBy::User) {
            // A user frame is never a library file, so the key tells which it is.
            stat.userFrame = stat.key.front() == unknownFrame() || !isLibraryFile(stat.key.front().file);
        }
        stats.push_back(std::move(stat));
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
        if (a.key != b.key) {
            return keyLess(a.key, b.key);
        }
        return a.domain < b.domain;
    });
    return stats;
}

} // namespace memtap::report
