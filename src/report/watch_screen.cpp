#include "report/watch_screen.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "report/text_report.h"
#include "report/text_width.h"
#include "report/watch_columns.h"

namespace memtap::report {

namespace {

// SGR codes; kept few so the screen reads on 8-color terminals too.
constexpr std::string_view kBold = "1";
constexpr std::string_view kDim = "2";
constexpr std::string_view kReverse = "7";
constexpr std::string_view kRed = "31";
constexpr std::string_view kGreen = "32";
constexpr std::string_view kCyan = "36";

constexpr int kSparkCells = 8;

// Column widths of the table; the site and source share what is left.
constexpr int kRankWidth = 4; // selection marker + 3-digit rank
constexpr int kSizeWidth = 10;
constexpr int kCountWidth = 9;
constexpr int kCellWidth = kSizeWidth + 1; // a size column and its separator
// Below this width the LAST column goes: its figure is the trend's last cell.
constexpr int kWidthForLast = 100;
// With a PEAK column, below this width COUNT goes too, so SOURCE keeps room.
constexpr int kWidthForCountWithPeak = 90;
// SITE gets at most this share of what the fixed columns leave, and SOURCE
// the rest: the code is what a person reads first.
constexpr int kMinSiteWidth = 20;
constexpr int kMinSourceWidth = 12;
// The header's history line needs a screen with room to spare.
constexpr int kHeightForHistory = 14;
constexpr int kMaxHistoryCells = 60;

std::string
paint(std::string_view text, std::string_view sgr, bool color) {
    if (!color || text.empty()) {
        return std::string(text);
    }
    return fmt::format("\x1b[{}m{}\x1b[0m", sgr, text);
}

std::string
formatDuration(double seconds) {
    // Clamped before the conversion: a double past the range of long is UB.
    double clamped = std::isfinite(seconds) ? std::clamp(seconds, 0.0, 1e12) : 0.0;
    long total = static_cast<long>(clamped);
    return fmt::format("{}:{:02d}:{:02d}", total / 3600, (total / 60) % 60, total % 60);
}

std::string
join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const std::string& part : parts) {
        if (!out.empty()) {
            out += separator;
        }
        out += part;
    }
    return out;
}

std::vector<std::string>
identityParts(const WatchHeader& header) {
    std::string mode = header.mode == "sampled"
                           ? fmt::format("sampled (mean {}, estimates)",
                                         formatSize(static_cast<double>(header.sampleBytes), false))
                           : sanitizeText(header.mode);
    std::vector<std::string> parts;
    if (header.workers.empty()) {
        parts.push_back(fmt::format("pid {}", header.pid));
    } else {
        parts.push_back(fmt::format("uWSGI master {}", header.pid));
        parts.push_back(fmt::format("{} workers", header.workers.size()));
    }
    parts.push_back(fmt::format("python {}", sanitizeText(header.python)));
    parts.push_back(mode);
    parts.push_back(fmt::format("up {}", formatDuration(header.attachedSeconds)));
    return parts;
}

// Joins parts while they fit; the first one that does not is shortened with
// "…" (if a few columns are left) and the rest dropped, so a narrow terminal
// loses the end of a line rather than showing a number cut in the middle.
std::string
fitParts(const std::vector<std::string>& parts, std::string_view separator, int width) {
    constexpr int kMinPartial = 6;
    std::string out;
    for (const std::string& part : parts) {
        std::string joiner = out.empty() ? "" : std::string(separator);
        if (displayWidth(out) + displayWidth(joiner) + displayWidth(part) <= width) {
            out += joiner + part;
            continue;
        }
        int left = width - displayWidth(out) - displayWidth(joiner);
        if (left >= kMinPartial) {
            out += joiner + truncateRight(part, left);
        }
        break;
    }
    return out;
}

std::vector<std::string>
memoryParts(const WatchHeader& header, WatchSort sort = WatchSort::Growth) {
    std::string rss = header.workers.empty() ? "rss" : "workers' rss";
    std::string by = fmt::format("by {}", sanitizeText(header.byName));
    if (sort != WatchSort::Growth) {
        by += fmt::format(", sorted by {}", name(sort));
    }
    std::vector<std::string> parts{
        fmt::format("{} {} ({})", rss, formatSize(header.rssBytes, false),
                    formatSize(header.rssChange, true)),
        fmt::format("traced {}", formatSize(header.tracedBytes, false)),
        fmt::format("malloc free {}", formatSize(header.mallocFreeBytes, false)), by};
    if (header.peakTracedBytes > 0) {
        parts.insert(parts.begin() + 2,
                     fmt::format("peak {}", formatSize(header.peakTracedBytes, false)));
    }
    if (!header.breakdown.empty()) {
        parts.push_back(sanitizeText(header.breakdown));
    }
    return parts;
}

// The header's third line: RSS and traced bytes over the reports so far.
std::string
historyLine(const WatchHeader& header, int width) {
    size_t points = std::max(header.rssHistory.size(), header.tracedHistory.size());
    int cells = std::clamp((width - 30) / 2, 0, kMaxHistoryCells);
    cells = std::min(cells, static_cast<int>(points));
    if (points < 2 || cells < 2) {
        return {};
    }
    std::string rss = header.workers.empty() ? "rss" : "workers' rss";
    return fmt::format("{} {} {}   traced {} {}", rss, levelSparkline(header.rssHistory, cells),
                       formatSize(header.rssBytes, false), levelSparkline(header.tracedHistory, cells),
                       formatSize(header.tracedBytes, false));
}

struct Layout {
    bool peak = false;     // the PEAK column
    bool last = true;      // the LAST column
    bool count = true;     // the COUNT column
    int workerColumns = 0; // per-worker columns that fit, in header.workers order
    int fixedWidth = 0;
    int siteWidth = 0;
    int sourceWidth = 0;            // 0: no source column
    std::string prefix;             // taken off every SITE, named in the titles
    std::vector<std::string> sites; // aligned with the rows, before fitting
};

int
fixedWidthOf(const Layout& layout) {
    return kRankWidth + 1 + kCellWidth + (layout.peak ? kCellWidth : 0) +
           (layout.last ? kCellWidth : 0) + (layout.count ? kCountWidth + 1 : 0) + kSparkCells + 1 +
           layout.workerColumns * kCellWidth;
}

Layout
layoutFor(const WatchScreen& screen, int width) {
    Layout layout;
    layout.peak = screen.header.peakTracedBytes > 0;
    layout.last = width >= kWidthForLast;
    layout.count = !layout.peak || width >= kWidthForCountWithPeak;
    layout.prefix = commonDirectoryOf(screen.rows);
    layout.sites = siteTextsOf(screen.rows, layout.prefix);
    int workers = static_cast<int>(screen.header.workers.size());
    layout.workerColumns = workers;
    while (layout.workerColumns > 0 && width - fixedWidthOf(layout) < kMinSiteWidth) {
        --layout.workerColumns;
    }
    layout.fixedWidth = fixedWidthOf(layout);
    int available = std::max(0, width - layout.fixedWidth);
    int widestSite = 4; // "SITE"
    for (const std::string& site : layout.sites) {
        widestSite = std::max(widestSite, displayWidth(site));
    }
    layout.siteWidth = std::min(widestSite, std::max(kMinSiteWidth, available * 2 / 5));
    layout.sourceWidth = available - layout.siteWidth - 2;
    if (layout.sourceWidth < kMinSourceWidth) {
        layout.siteWidth = available;
        layout.sourceWidth = 0;
    }
    return layout;
}

std::string
columnTitles(const WatchScreen& screen, const Layout& layout, const ScreenOptions& options) {
    std::string line = fmt::format("{} {} ", padLeft("#", kRankWidth), padLeft("GROWTH", kSizeWidth));
    if (layout.peak) {
        line += padLeft("PEAK", kSizeWidth) + " ";
    }
    if (layout.last) {
        line += padLeft("LAST", kSizeWidth) + " ";
    }
    if (layout.count) {
        line += padLeft("COUNT", kCountWidth) + " ";
    }
    line += padRight(options.trend == WatchTrend::Size ? "TREND" : "DELTAS", kSparkCells) + " ";
    for (int w = 0; w < layout.workerColumns; ++w) {
        line +=
            padLeft(fmt::format("{}", screen.header.workers[static_cast<size_t>(w)]), kSizeWidth) + " ";
    }
    line += "SITE";
    if (layout.sourceWidth > 0) {
        line = padRight(line, layout.fixedWidth + layout.siteWidth) + "  SOURCE";
    }
    return line;
}

std::string
trendCells(const WatchRow& row, WatchTrend trend) {
    return trend == WatchTrend::Size ? levelSparkline(sizeTrendOf(row), kSparkCells)
                                     : growthSparkline(row.history, kSparkCells);
}

std::string
tableRow(const WatchRow& row, size_t index, bool selected, const Layout& layout,
         const ScreenOptions& options) {
    // Inside the reverse-video bar of the selected row, inner colors would
    // end the bar at their reset, so that row is painted as one piece.
    bool cellColor = options.color && !selected;
    std::string line =
        fmt::format("{}{} ", selected ? '>' : ' ', padLeft(fmt::format("{}", index + 1), 3));
    std::string growth = padLeft(formatSize(row.sizeGrowth, true), kSizeWidth);
    std::string_view growthColor = row.sizeGrowth > 0 ? kRed : kGreen;
    line += (row.sizeGrowth != 0 ? paint(growth, growthColor, cellColor) : growth) + " ";
    if (layout.peak) {
        line += padLeft(formatSize(row.peakGrowth, true), kSizeWidth) + " ";
    }
    if (layout.last) {
        line += padLeft(formatSize(row.lastIntervalGrowth, true), kSizeWidth) + " ";
    }
    if (layout.count) {
        line += padLeft(fmt::format("{:+d}", row.countDiff), kCountWidth) + " ";
    }
    line += paint(trendCells(row, options.trend), kCyan, cellColor) + " ";
    for (int w = 0; w < layout.workerColumns; ++w) {
        size_t at = static_cast<size_t>(w);
        int64_t growthThere = at < row.perWorker.size() ? row.perWorker[at] : 0;
        line += padLeft(formatSize(growthThere, true), kSizeWidth) + " ";
    }
    const std::string& site = layout.sites[index];
    line += row.label.empty() && !row.key.empty() ? truncateLeft(site, layout.siteWidth)
                                                  : truncateRight(site, layout.siteWidth);
    if (layout.sourceWidth > 0 && !row.sourceLine.empty()) {
        line = padRight(line, layout.fixedWidth + layout.siteWidth) + "  ";
        line += truncateRight(sanitizeText(row.sourceLine), layout.sourceWidth);
    }
    if (selected && options.color) {
        // The bar spans the table's width, not just the row's text.
        return paint(padRight(line, layout.fixedWidth + layout.siteWidth + 2 + layout.sourceWidth),
                     kReverse, true);
    }
    return line;
}

// Why a row has no file: said once under the table when such a row is shown.
constexpr std::string_view kUnknownNote =
    "<unknown>: no Python frame on the stack (interpreter internals, C-only threads)";

void
appendTable(std::vector<std::string>& lines, const WatchScreen& screen, const ScreenOptions& options) {
    Layout layout = layoutFor(screen, options.width);
    if (!layout.prefix.empty() && !lines.empty() && lines.back().empty()) {
        // The blank line above the titles names what every SITE is under.
        lines.back() =
            paint(truncateLeft("paths under " + layout.prefix, options.width), kDim, options.color);
    }
    lines.push_back(paint(columnTitles(screen, layout, options), kBold, options.color));
    if (screen.rows.empty()) {
        lines.push_back("  no allocation sites to show yet");
        return;
    }
    // What is left above the footer.
    int room = std::max(1, options.height - static_cast<int>(lines.size()) - 1);
    bool anyUnknown = std::any_of(screen.rows.begin(), screen.rows.end(), [](const WatchRow& row) {
        return row.key.empty() && row.label.empty();
    });
    bool note = anyUnknown && room >= 4;
    int visible = note ? room - 1 : room;
    int rowCount = static_cast<int>(screen.rows.size());
    int first = 0;
    if (options.selected >= visible) {
        first = std::min(options.selected - visible + 1, rowCount - visible);
    }
    bool unknownShown = false;
    for (int i = first; i < rowCount && i < first + visible; ++i) {
        const WatchRow& row = screen.rows[static_cast<size_t>(i)];
        unknownShown = unknownShown || (row.key.empty() && row.label.empty());
        lines.push_back(tableRow(row, static_cast<size_t>(i), i == options.selected, layout, options));
    }
    if (note && unknownShown) {
        lines.push_back(paint(truncateRight(kUnknownNote, options.width), kDim, options.color));
    }
}

std::string
workerFigures(const WatchHeader& header, const WatchRow& row) {
    std::vector<std::string> parts;
    for (size_t w = 0; w < header.workers.size() && w < row.perWorker.size(); ++w) {
        parts.push_back(fmt::format("{} {}", header.workers[w], formatSize(row.perWorker[w], true)));
    }
    return parts.empty() ? std::string{} : fmt::format(" (workers: {})", join(parts, ", "));
}

void
appendTraceback(std::vector<std::string>& lines, const WatchScreen& screen,
                const ScreenOptions& options) {
    size_t index = static_cast<size_t>(options.selected);
    const WatchRow& row = screen.rows[index];
    lines.push_back(
        paint(fmt::format("traceback of #{} (most recent call first): growth {}, last interval {}, "
                          "count {:+d}",
                          index + 1, formatSize(row.sizeGrowth, true),
                          formatSize(row.lastIntervalGrowth, true), row.countDiff),
              kBold, options.color));
    std::string workers = workerFigures(screen.header, row);
    if (!workers.empty()) {
        lines.push_back(" " + workers);
    }
    if (row.key.empty()) {
        lines.push_back("  " + std::string(kUnknownNote));
        return;
    }
    // Lines left above the footer; the last one is kept for "… N more".
    size_t limit = static_cast<size_t>(std::max(1, options.height - 1));
    const std::vector<Frame>& frames = row.key;
    for (size_t i = 0; i < frames.size(); ++i) {
        size_t need = (i == 0 && !row.sourceLine.empty()) ? 2 : 1;
        bool last = i + 1 == frames.size();
        if (lines.size() + need + (last ? 0 : 1) > limit) {
            lines.push_back(fmt::format("  … {} more frames", frames.size() - i));
            break;
        }
        std::string function = sanitizeText(frames[i].function);
        std::string in = function.empty() ? "" : fmt::format("  in {}", function);
        int siteWidth = std::max(8, options.width - 2 - std::min(displayWidth(in), options.width / 3));
        std::string file = sanitizeText(frames[i].file);
        std::string site = frames[i].line > 0 ? fmt::format("{}:{}", file, frames[i].line) : file;
        lines.push_back(fmt::format("  {}{}", truncateLeft(site, siteWidth), in));
        if (i == 0 && !row.sourceLine.empty()) {
            lines.push_back("      " + truncateRight(sanitizeText(row.sourceLine), options.width - 6));
        }
    }
}

// The keys the CLI handles; a terser form when the full one does not fit.
std::string
footer(int width, bool traceback) {
    if (traceback) {
        return "Enter/Esc back to the table  q back";
    }
    std::string full =
        "q quit  s snapshot  b baseline  t group-by  o sort  g trend  ↑/↓ select  Enter traceback  "
        "r refs";
    if (displayWidth(full) <= width) {
        return full;
    }
    std::string compact = "q quit s snap b base t group o sort g trend ↑↓ Enter trace r refs";
    if (displayWidth(compact) <= width) {
        return compact;
    }
    return "q quit s snap b base t group o sort g trend ↑↓ Enter trace";
}

} // namespace

std::string
renderWatchScreen(const WatchScreen& screen, const ScreenOptions& options) {
    const WatchHeader& header = screen.header;
    std::vector<std::string> lines;
    std::vector<std::string> identity = identityParts(header);
    identity.insert(identity.begin(), "memtap");
    lines.push_back(paint(fitParts(identity, "  ", options.width), kBold, options.color));
    lines.push_back(fitParts(memoryParts(header, options.sort), "  ", options.width));
    if (options.height >= kHeightForHistory) {
        std::string history = historyLine(header, options.width);
        if (!history.empty()) {
            lines.push_back(std::move(history));
        }
    }
    lines.push_back(sanitizeText(header.statusLine));
    lines.emplace_back();

    bool selectedValid =
        options.selected >= 0 && options.selected < static_cast<int>(screen.rows.size());
    bool traceback = options.showTraceback && selectedValid;
    if (!options.panel.empty()) {
        traceback = true; // the same way back to the table
        size_t start = 0;
        while (start < options.panel.size()) {
            size_t end = options.panel.find('\n', start);
            end = end == std::string::npos ? options.panel.size() : end;
            lines.push_back(sanitizeText(options.panel.substr(start, end - start)));
            start = end + 1;
        }
    } else if (traceback) {
        appendTraceback(lines, screen, options);
    } else {
        appendTable(lines, screen, options);
    }

    int height = std::max(1, options.height);
    if (static_cast<int>(lines.size()) > height - 1) {
        lines.resize(static_cast<size_t>(height - 1));
    }
    lines.push_back(paint(footer(options.width, traceback), kDim, options.color));

    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) {
            out += '\n';
        }
        out += clipToWidth(lines[i], options.width);
    }
    return out;
}

std::string
renderWatchPlain(const WatchScreen& screen, size_t top) {
    const WatchHeader& header = screen.header;
    std::string out;
    auto it = std::back_inserter(out);
    fmt::format_to(it, "memtap watch: {}\n", join(identityParts(header), ", "));
    fmt::format_to(it, "{}\n", join(memoryParts(header), ", "));
    if (!header.statusLine.empty()) {
        fmt::format_to(it, "{}\n", sanitizeText(header.statusLine));
    }
    size_t shown = top == 0 ? screen.rows.size() : std::min(top, screen.rows.size());
    if (shown == 0) {
        out += "no allocation sites to show yet\n";
    }
    std::vector<std::string> sites = siteTextsOf(screen.rows, "");
    for (size_t i = 0; i < shown; ++i) {
        const WatchRow& row = screen.rows[i];
        std::string peak = header.peakTracedBytes > 0
                               ? fmt::format(", at peak {}", formatSize(row.peakGrowth, true))
                               : "";
        fmt::format_to(it, "#{} {}: growth {}{}, last interval {}, count {:+d}{}\n", i + 1, sites[i],
                       formatSize(row.sizeGrowth, true), peak, formatSize(row.lastIntervalGrowth, true),
                       row.countDiff, workerFigures(header, row));
        if (!row.sourceLine.empty()) {
            fmt::format_to(it, "    {}\n", sanitizeText(row.sourceLine));
        }
    }
    out += '\n';
    return out;
}

} // namespace memtap::report
