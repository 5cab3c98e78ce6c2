// Comparing two snapshots the way tracemalloc's Snapshot.compare_to does
// (cumulative=False): group the traces of each side, pair groups by key, and
// report each group's size and count in the newer snapshot with the change.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "report/snapshot.h"

namespace memtap::report {

// Lineno, Filename, Traceback: tracemalloc's key types. Thread: one group
// per allocating thread. User: the first frame (most recent call first) in
// the user's own code (isLibraryFile false), so a json.dumps inside a view
// is charged to the view's line; a traceback with no such frame groups under
// its innermost frame, marked (StatDiff::userFrame false).
enum class GroupBy { Lineno, Filename, Traceback, Thread, User };

// Accepts tracemalloc's key_type names, "lineno", "filename", "traceback",
// and "thread" and "user".
std::optional<GroupBy> parseGroupBy(std::string_view text);
std::string_view name(GroupBy by);
// "lineno, filename, traceback, thread or user", for usage errors.
std::string_view groupByChoices();

// The standard library or an installed package, not the user's own code: a
// file under .../lib/pythonX.Y/ (or lib64/, or the zipped stdlib
// pythonXY.zip) outside site-packages and dist-packages, a "<frozen ...>"
// module, or any file under site-packages/ or dist-packages/.
bool isLibraryFile(std::string_view file);
// The frame a trace groups under with GroupBy::User: its first frame (most
// recent call first) that is not a library file, else its innermost frame.
const Frame& userFrameOf(const Trace& trace);

// The thread a group stands for (GroupBy::Thread).
struct ThreadLabel {
    int64_t tid = 0;   // 0: unknown (snapshots before format 3, or a full table)
    std::string name;  // OS name; empty when unknown
    std::string state; // "running" | "exited" | "unknown" | "" (no thread line)

    bool operator==(const ThreadLabel&) const = default;
};
// "thread 4242 (worker-3)", "thread 4242 (worker-3, exited)", "thread 4242
// (exited)", "thread 4242", or "no thread id" for tid 0.
std::string threadText(const ThreadLabel& thread);
// tid's label from the snapshots' thread lines, the newer snapshot's first
// (a thread may rename itself).
ThreadLabel threadLabelOf(int64_t tid, const Snapshot& older, const Snapshot& newer);

struct StatDiff {
    // lineno: the top frame; filename: the top frame's file with line 0 and
    // function ""; traceback: all frames, most recent call first.
    std::vector<Frame> key;
    int64_t size = 0; // in the newer snapshot
    int64_t sizeDiff = 0;
    int64_t count = 0; // in the newer snapshot
    int64_t countDiff = 0;
    // Live records behind the figures in each snapshot (the samples, in
    // sampled mode); -1 when a snapshot does not say (format version 1).
    int64_t samples = -1; // in the newer snapshot
    int64_t oldSamples = -1;
    // GroupBy::Thread: the thread (key is then one placeholder frame
    // {"thread TID", 0, ""} that identifies it as (file, line) keys do).
    std::optional<ThreadLabel> thread{};
    // GroupBy::User: false when no frame of the traceback is in the user's
    // code and the key is its innermost frame.
    bool userFrame = true;
    // Trace::domain of every trace in it: blocks an extension reported
    // through PyTraceMalloc_Track are a group of their own at the same key
    // (except by thread, which totals a thread's allocations).
    uint32_t domain = 0;
    std::string domainLabel; // domainLabel(domain, ...): "numpy", "native libfoo.so"; "" for 0
};

// Below this many samples on both sides, a sampled figure is marked rough.
inline constexpr int64_t kFewSamples = 5;
// The samples a sampled stat rests on when they are few (fewer than
// kFewSamples in both snapshots), else nullopt; always nullopt in exact mode
// or when the count is unknown.
std::optional<int64_t> fewSamples(const StatDiff& stat, bool sampled);

// Why OLD and NEW do not compare as one timeline, in plain words: they come
// from different attach sessions (a detach and re-attach between them: the
// traces restarted, so memory allocated before the second attach is missing
// from NEW) or different modes/sampling intervals. nullopt when they match
// or a snapshot does not say (format version 1).
std::optional<std::string> sessionMismatch(const Snapshot& older, const Snapshot& newer);

// Groups present in only one snapshot appear with the other side's numbers as
// 0. Sorted by sizeDiff descending (largest growth first), then size, then
// countDiff, all descending, then by key (file, line) so output is stable.
// Groups are identified by (file, line) as in tracemalloc; when traces of one
// group name different functions, the smallest name is shown.
// onlyThread: count only the traces of that thread (watch --thread).
std::vector<StatDiff> compareSnapshots(const Snapshot& older, const Snapshot& newer, GroupBy by,
                                       std::optional<int64_t> onlyThread = std::nullopt);

} // namespace memtap::report
