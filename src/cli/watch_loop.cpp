#include "cli/watch_loop.h"

#include <algorithm>

#include <fmt/format.h>

#include "cli/source_lines.h"
#include "report/text_report.h"
#include "report/text_width.h"

namespace memtap::cli {
namespace {

std::map<std::string, int64_t>
growthBySite(const report::Snapshot& older, const report::Snapshot& newer, report::GroupBy by,
             std::optional<int64_t> onlyThread) {
    std::map<std::string, int64_t> growth;
    for (const auto& stat : report::compareSnapshots(older, newer, by, onlyThread)) {
        growth[siteKeyOf(stat.key)] = stat.sizeDiff;
    }
    return growth;
}

int64_t
lookup(const std::map<std::string, int64_t>& growth, const std::string& key) {
    auto it = growth.find(key);
    return it == growth.end() ? 0 : it->second;
}

std::string
sourceOf(const std::vector<report::Frame>& key, SourceLines& sources) {
    if (key.empty() || key.front().line <= 0) {
        return {};
    }
    return sources.line(key.front().file, key.front().line).value_or("");
}

std::string
siteText(const std::vector<report::Frame>& key) {
    if (key.empty()) {
        return "<unknown>";
    }
    const report::Frame& top = key.front();
    std::string file = report::sanitizeText(top.file);
    return top.line > 0 ? fmt::format("{}:{}", file, top.line) : file;
}

} // namespace

std::string
siteKeyOf(const std::vector<report::Frame>& key) {
    std::string text;
    for (const auto& frame : key) {
        text += fmt::format("{}\x1f{}\x1e", frame.file, frame.line);
    }
    return text;
}

WatchModel::WatchModel(report::Snapshot baseline, report::GroupBy by)
    : by_(by), baseline_(std::move(baseline)) {
    recent_.push_back(baseline_);
    recompute();
}

void
WatchModel::addSnapshot(report::Snapshot current) {
    intervals_.push_back(growthBySite(recent_.back(), current, by_, onlyThread_));
    recent_.push_back(std::move(current));
    while (recent_.size() > kHistory + 1) {
        recent_.pop_front();
    }
    while (intervals_.size() > kHistory) {
        intervals_.pop_front();
    }
    recompute();
}

void
WatchModel::resetBaseline() {
    baseline_ = recent_.back();
    recompute();
}

void
WatchModel::setGroupBy(report::GroupBy by) {
    by_ = by;
    recomputeIntervals();
    recompute();
}

void
WatchModel::setThreadFilter(std::optional<int64_t> tid) {
    onlyThread_ = tid;
    recomputeIntervals();
    recompute();
}

void
WatchModel::recomputeIntervals() {
    intervals_.clear();
    for (size_t i = 1; i < recent_.size(); ++i) {
        intervals_.push_back(growthBySite(recent_[i - 1], recent_[i], by_, onlyThread_));
    }
}

void
WatchModel::setPeak(report::Snapshot peak) {
    peak_ = std::move(peak);
    recompute();
}

void
WatchModel::recompute() {
    sinceBaseline_ = report::compareSnapshots(baseline_, recent_.back(), by_, onlyThread_);
    peakSinceBaseline_.clear();
    if (peak_) {
        peakSinceBaseline_ = report::compareSnapshots(baseline_, *peak_, by_, onlyThread_);
    }
}

std::vector<int64_t>
WatchModel::historyOf(const std::vector<report::Frame>& key) const {
    std::string site = siteKeyOf(key);
    std::vector<int64_t> history;
    history.reserve(intervals_.size());
    for (const auto& interval : intervals_) {
        history.push_back(lookup(interval, site));
    }
    return history;
}

std::vector<report::WatchRow>
WatchModel::rows(size_t top, SourceLines& sources) const {
    // Ranked by the larger of growth now and growth at the peak (stable, so
    // without a peak the order is compareSnapshots'): a burst that came and
    // went stays on the screen at the height it reached.
    std::map<std::string, int64_t> atPeak;
    std::vector<const report::StatDiff*> order;
    for (const auto& stat : sinceBaseline_) {
        order.push_back(&stat);
    }
    for (const auto& stat : peakSinceBaseline_) {
        std::string site = siteKeyOf(stat.key);
        atPeak[site] = stat.sizeDiff;
    }
    std::map<std::string, bool> present;
    for (const auto* stat : order) {
        present[siteKeyOf(stat->key)] = true;
    }
    // A site only the peak holds (everything of it freed, and nothing left in
    // the latest snapshot) still gets a row.
    std::vector<report::StatDiff> peakOnly;
    for (const auto& stat : peakSinceBaseline_) {
        if (stat.sizeDiff > 0 && !present.count(siteKeyOf(stat.key))) {
            report::StatDiff gone;
            gone.key = stat.key;
            gone.thread = stat.thread;
            gone.userFrame = stat.userFrame;
            peakOnly.push_back(gone);
        }
    }
    for (const auto& stat : peakOnly) {
        order.push_back(&stat);
    }
    auto rank = [&](const report::StatDiff* stat) {
        return std::max(stat->sizeDiff, lookup(atPeak, siteKeyOf(stat->key)));
    };
    if (!atPeak.empty()) {
        std::stable_sort(order.begin(), order.end(),
                         [&](const auto* a, const auto* b) { return rank(a) > rank(b); });
    }
    size_t shown = top == 0 ? order.size() : std::min(top, order.size());
    std::vector<report::WatchRow> rows;
    rows.reserve(shown);
    for (size_t i = 0; i < shown; ++i) {
        const report::StatDiff& stat = *order[i];
        report::WatchRow row;
        row.key = stat.key;
        row.label = rowLabelOf(stat);
        row.tid = stat.thread ? stat.thread->tid : 0;
        row.sizeGrowth = stat.sizeDiff;
        row.peakGrowth = lookup(atPeak, siteKeyOf(stat.key));
        row.countDiff = stat.countDiff;
        row.history = historyOf(stat.key);
        row.lastIntervalGrowth = row.history.empty() ? 0 : row.history.back();
        row.sourceLine = sourceOf(stat.key, sources);
        rows.push_back(std::move(row));
    }
    return rows;
}

std::string
rowLabelOf(const report::StatDiff& stat) {
    if (stat.thread) {
        return report::threadText(*stat.thread);
    }
    if (!stat.userFrame && !stat.key.empty()) {
        return fmt::format("{} [no frame in your code]", siteText(stat.key));
    }
    return {};
}

std::vector<report::Frame>
WatchModel::fullTracebackOf(const std::vector<report::Frame>& key, int64_t tid) const {
    if (by_ == report::GroupBy::Traceback || key.empty()) {
        return key;
    }
    const report::Frame& wanted = key.front();
    auto inGroup = [&](const report::Trace& trace) {
        if (onlyThread_ && trace.tid != *onlyThread_) {
            return false;
        }
        if (by_ == report::GroupBy::Thread) {
            return trace.tid == tid && !trace.frames.empty();
        }
        if (trace.frames.empty()) {
            return false;
        }
        const report::Frame& site =
            by_ == report::GroupBy::User ? report::userFrameOf(trace) : trace.frames.front();
        return site.file == wanted.file &&
               (by_ == report::GroupBy::Filename || site.line == wanted.line);
    };
    const report::Trace* best = nullptr;
    for (const auto& trace : latest().traces) {
        if (inGroup(trace) && (best == nullptr || trace.size > best->size)) {
            best = &trace;
        }
    }
    return best == nullptr ? key : best->frames;
}

std::vector<report::WatchRow>
combineWorkers(const std::vector<const WatchModel*>& models, size_t top, SourceLines& sources) {
    std::map<std::string, report::WatchRow> bySite;
    for (size_t w = 0; w < models.size(); ++w) {
        for (const auto& row : models[w]->rows(0, sources)) {
            auto [it, inserted] = bySite.try_emplace(siteKeyOf(row.key));
            report::WatchRow& sum = it->second;
            if (inserted) {
                sum.key = row.key;
                sum.label = row.label;
                sum.sourceLine = row.sourceLine;
                sum.perWorker.assign(models.size(), 0);
            }
            sum.perWorker[w] = row.sizeGrowth;
            sum.sizeGrowth += row.sizeGrowth;
            sum.lastIntervalGrowth += row.lastIntervalGrowth;
            sum.countDiff += row.countDiff;
            sum.peakGrowth += row.peakGrowth;
            // Workers attached at different times hold histories of different
            // lengths: their newest intervals line up.
            if (sum.history.size() < row.history.size()) {
                sum.history.insert(sum.history.begin(), row.history.size() - sum.history.size(), 0);
            }
            size_t offset = sum.history.size() - row.history.size();
            for (size_t i = 0; i < row.history.size(); ++i) {
                sum.history[offset + i] += row.history[i];
            }
        }
    }
    std::vector<report::WatchRow> rows;
    rows.reserve(bySite.size());
    for (auto& [site, row] : bySite) {
        rows.push_back(std::move(row));
    }
    // Sum first; the site key keeps equal sums in a stable order.
    std::stable_sort(rows.begin(), rows.end(), [](const report::WatchRow& a, const report::WatchRow& b) {
        return std::max(a.sizeGrowth, a.peakGrowth) > std::max(b.sizeGrowth, b.peakGrowth);
    });
    if (top != 0 && rows.size() > top) {
        rows.resize(top);
    }
    return rows;
}

} // namespace memtap::cli
