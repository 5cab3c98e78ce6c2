// A small streaming JSON writer for memtap's machine-readable output
// (`diff --json`, `status --json`). Compact output, no dependencies; it
// places the commas, the caller places the structure.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "report/diff.h"

namespace memtap::report {

class JsonWriter {
public:
    void beginObject();
    void endObject();
    void beginArray();
    void endArray();
    // Inside an object: the name of the next value.
    void key(std::string_view name);

    void value(std::string_view text);
    void value(const char* text) { value(std::string_view(text)); } // not bool
    void value(int64_t number);
    void value(uint64_t number);
    void value(double number); // NaN and infinities have no JSON form: null
    void value(bool flag);
    // Other integer types (int, long long, size_t...) without ambiguity.
    template <std::integral T>
    requires(!std::same_as<T, bool>) void value(T number) {
        if constexpr (std::is_signed_v<T>) {
            value(static_cast<int64_t>(number));
        } else {
            value(static_cast<uint64_t>(number));
        }
    }
    void null();

    // The document written so far.
    const std::string& str() const { return out_; }

private:
    void beforeValue();
    void appendString(std::string_view text);

    std::string out_;
    // One entry per open container: whether it has no element yet.
    std::vector<bool> empty_;
    bool afterKey_ = false;
};

// `memtap diff --json`:
// {"pid", "old", "new", "by", "mode", "estimated", "stats": [{"file", "line",
//  "function", "size", "size_diff", "count", "count_diff",
//  "samples", "samples_old" (when the snapshots count them), "rough" (true
//  when a sampled figure rests on fewer than kFewSamples samples),
//  "traceback": [{"file", "line", "function"}, ...],
//  by thread: "tid", "thread_name" (the OS name, may be ""), "thread_state"
//  ("running", "exited" or "unknown"), with file "thread TID";
//  by user: "user_frame" (false: no frame in the user's code, the key is the
//  innermost frame)}, ...]}, plus the DiffContext keys that are set
// stats in the given (sorted) order, the first `top` of them (0: all).
struct BreakdownInput; // memory_breakdown.h

// Process context printed with a diff; negative values are left out.
struct DiffContext {
    int64_t rssBytes = -1;
    int64_t mallocFreeBytes = -1;
    int64_t attachedAtUnixMs = -1; // "attached_at_unix_ms": traced since
    int64_t rssAtAttachBytes = -1; // "rss_at_attach_bytes": RSS never traced
    std::string warning;           // "warning" (sessionMismatch), when not empty
    // "memory": RSS explained (writeBreakdownJson's keys), when set.
    const BreakdownInput* memory = nullptr;
};

// The "stats" array of renderDiffJson (its first `top` stats, 0: all), for
// other documents that carry diffs (`memtap report --json`).
void writeStatsJson(JsonWriter& json, const std::vector<StatDiff>& stats, GroupBy by,
                    std::string_view mode, size_t top);

std::string renderDiffJson(const std::vector<StatDiff>& stats, int pid, std::string_view oldName,
                           std::string_view newName, GroupBy by, std::string_view mode, size_t top,
                           const DiffContext& context = {});

} // namespace memtap::report
