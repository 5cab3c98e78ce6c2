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

enum class GroupBy { Lineno, Filename, Traceback };

// Accepts tracemalloc's key_type names: "lineno", "filename", "traceback".
std::optional<GroupBy> parseGroupBy(std::string_view text);
std::string_view name(GroupBy by);

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
std::vector<StatDiff> compareSnapshots(const Snapshot& older, const Snapshot& newer, GroupBy by);

} // namespace memtap::report
