#include "report/watch_columns.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "report/text_width.h"

namespace memtap::report {

namespace {

constexpr std::string_view kSparkLevels[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
constexpr int kTopLevel = 7;

std::vector<int64_t>
lastValues(const std::vector<int64_t>& values, int cells) {
    size_t shown = std::min(values.size(), static_cast<size_t>(std::max(0, cells)));
    return {values.end() - static_cast<std::ptrdiff_t>(shown), values.end()};
}

std::string
padded(const std::vector<int64_t>& shown, int cells) {
    return std::string(static_cast<size_t>(cells) - shown.size(), ' ');
}

std::string
fileLineText(const Frame& frame, std::string_view prefix) {
    std::string file = sanitizeText(frame.file);
    if (!prefix.empty() && file.starts_with(prefix)) {
        file.erase(0, prefix.size());
    }
    return frame.line > 0 ? fmt::format("{}:{}", file, frame.line) : file;
}

// The file name and line only: a caller is context, its directory rarely is.
std::string
shortFrameText(const Frame& frame) {
    std::string file = sanitizeText(frame.file);
    size_t slash = file.rfind('/');
    if (slash != std::string::npos) {
        file.erase(0, slash + 1);
    }
    return frame.line > 0 ? fmt::format("{}:{}", file, frame.line) : file;
}

bool
sameFrame(const Frame& a, const Frame& b) {
    return a.file == b.file && a.line == b.line;
}

} // namespace

std::string
levelSparkline(const std::vector<int64_t>& values, int cells) {
    std::vector<int64_t> shown = lastValues(values, cells);
    std::string out = padded(shown, cells);
    if (shown.empty()) {
        return out;
    }
    auto [low, high] = std::minmax_element(shown.begin(), shown.end());
    int64_t lowest = *low;
    int64_t highest = *high;
    for (int64_t value : shown) {
        int level = 0;
        if (highest > lowest) {
            double scaled = static_cast<double>(value - lowest) / static_cast<double>(highest - lowest);
            level = static_cast<int>(std::round(scaled * kTopLevel));
        } else if (value > 0) {
            level = kTopLevel; // flat and above zero: holding its size
        }
        out += kSparkLevels[std::clamp(level, 0, kTopLevel)];
    }
    return out;
}

std::string
growthSparkline(const std::vector<int64_t>& history, int cells) {
    std::vector<int64_t> shown = lastValues(history, cells);
    std::string out = padded(shown, cells);
    int64_t peak = 0;
    for (int64_t value : shown) {
        peak = std::max(peak, value);
    }
    for (int64_t value : shown) {
        int level = 0;
        if (value > 0 && peak > 0) {
            double scaled =
                std::round(static_cast<double>(value) / static_cast<double>(peak) * kTopLevel);
            level = std::clamp(static_cast<int>(scaled), 1, kTopLevel);
        }
        out += kSparkLevels[level];
    }
    return out;
}

std::vector<int64_t>
sizeTrendOf(const WatchRow& row) {
    std::vector<int64_t> sizes(row.history.size());
    int64_t size = row.sizeGrowth;
    for (size_t i = row.history.size(); i-- > 0;) {
        sizes[i] = size;
        size -= row.history[i];
    }
    return sizes;
}

void
sortWatchRows(std::vector<WatchRow>& rows, WatchSort key) {
    auto measure = [key](const WatchRow& row) -> int64_t {
        switch (key) {
        case WatchSort::Growth:
            return row.sizeGrowth;
        case WatchSort::Last:
            return row.lastIntervalGrowth;
        case WatchSort::Count:
            return row.countDiff;
        case WatchSort::Peak:
            return row.peakGrowth;
        }
        return 0;
    };
    if (key == WatchSort::Growth) {
        return; // the model's order (it also ranks by the peak when it has one)
    }
    std::stable_sort(rows.begin(), rows.end(),
                     [&](const WatchRow& a, const WatchRow& b) { return measure(a) > measure(b); });
}

std::string_view
name(WatchSort key) {
    switch (key) {
    case WatchSort::Growth:
        return "growth";
    case WatchSort::Last:
        return "last interval";
    case WatchSort::Count:
        return "count";
    case WatchSort::Peak:
        return "peak";
    }
    return "growth";
}

WatchSort
nextWatchSort(WatchSort key, bool peakKnown) {
    switch (key) {
    case WatchSort::Growth:
        return WatchSort::Last;
    case WatchSort::Last:
        return WatchSort::Count;
    case WatchSort::Count:
        return peakKnown ? WatchSort::Peak : WatchSort::Growth;
    case WatchSort::Peak:
        return WatchSort::Growth;
    }
    return WatchSort::Growth;
}

std::string
commonDirectoryOf(const std::vector<WatchRow>& rows) {
    std::string common;
    int files = 0;
    for (const WatchRow& row : rows) {
        if (!row.label.empty() || row.key.empty() || row.key.front().file.empty()) {
            continue;
        }
        std::string file = sanitizeText(row.key.front().file);
        if (files++ == 0) {
            common = file.substr(0, file.rfind('/') + 1);
            continue;
        }
        size_t same = 0;
        while (same < common.size() && same < file.size() && common[same] == file[same]) {
            ++same;
        }
        common.resize(same);
        common.resize(common.rfind('/') + 1); // whole directories only; npos + 1 == 0
    }
    // "/" alone says nothing; one file is its own prefix and would vanish.
    return files >= 2 && common.size() > 1 ? common : std::string{};
}

std::vector<std::string>
siteTextsOf(const std::vector<WatchRow>& rows, std::string_view prefix) {
    std::vector<std::string> texts;
    std::map<std::string, std::vector<size_t>> byTop;
    for (size_t i = 0; i < rows.size(); ++i) {
        const WatchRow& row = rows[i];
        if (!row.label.empty()) {
            texts.push_back(sanitizeText(row.label));
        } else if (row.key.empty()) {
            texts.emplace_back("<unknown>");
        } else {
            texts.push_back(fileLineText(row.key.front(), prefix));
            byTop[texts.back()].push_back(i);
        }
    }
    for (const auto& [top, members] : byTop) {
        if (members.size() < 2) {
            continue;
        }
        for (size_t i : members) {
            const std::vector<Frame>& key = rows[i].key;
            // The first depth where some other row of the group differs.
            for (size_t depth = 1; depth < key.size(); ++depth) {
                bool parts = std::any_of(members.begin(), members.end(), [&](size_t j) {
                    const std::vector<Frame>& other = rows[j].key;
                    return j != i && (depth >= other.size() || !sameFrame(other[depth], key[depth]));
                });
                if (parts) {
                    texts[i] += " ← " + shortFrameText(key[depth]);
                    break;
                }
            }
        }
    }
    return texts;
}

} // namespace memtap::report
