#include "report/watch_screen.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "report/text_report.h"
#include "report/text_width.h"

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
constexpr std::string_view kSparkLevels[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};

// Column widths of the table; the site and source share what is left.
constexpr int kRankWidth = 4; // selection marker + 3-digit rank
constexpr int kSizeWidth = 10;
constexpr int kCountWidth = 9;
constexpr int kFixedWidth =
    kRankWidth + 1 + kSizeWidth + 1 + kSizeWidth + 1 + kCountWidth + 1 + kSparkCells + 1;
// The PEAK column, shown when the agent keeps a peak: a site that rose and
// fell again keeps its height there after its GROWTH is back to zero.
constexpr int kPeakWidth = kSizeWidth + 1;
constexpr int kMinSourceWidth = 8;

// Fixed lines around the table: three header lines, a blank, the column
// titles, and the footer.
constexpr int kChromeLines = 6;

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
    return {fmt::format("pid {}", header.pid), fmt::format("python {}", sanitizeText(header.python)),
            mode, fmt::format("up {}", formatDuration(header.attachedSeconds))};
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
memoryParts(const WatchHeader& header) {
    std::vector<std::string> parts{
        fmt::format("rss {} ({})", formatSize(header.rssBytes, false),
                    formatSize(header.rssChange, true)),
        fmt::format("traced {}", formatSize(header.tracedBytes, false)),
        fmt::format("malloc free {}", formatSize(header.mallocFreeBytes, false)),
        fmt::format("by {}", sanitizeText(header.byName))};
    if (header.peakTracedBytes > 0) {
        parts.insert(parts.begin() + 2,
                     fmt::format("peak {}", formatSize(header.peakTracedBytes, false)));
    }
    if (!header.breakdown.empty()) {
        parts.push_back(sanitizeText(header.breakdown));
    }
    return parts;
}

const Frame&
topFrame(const WatchRow& row) {
    static const Frame unknown{"<unknown>", 0, ""};
    return row.key.empty() ? unknown : row.key.front();
}

// "file:line", or just "file" when grouped by file (line 0).
std::string
siteText(const Frame& frame, int width) {
    std::string file = sanitizeText(frame.file);
    if (frame.line <= 0) {
        return truncateLeft(file, width);
    }
    std::string suffix = fmt::format(":{}", frame.line);
    int fileWidth = width - displayWidth(suffix);
    if (fileWidth < 2) {
        return truncateLeft(file + suffix, width);
    }
    return truncateLeft(file, fileWidth) + suffix;
}

std::string
rowSite(const WatchRow& row, int width) {
    return row.label.empty() ? siteText(topFrame(row), width)
                             : truncateRight(sanitizeText(row.label), width);
}

// Eight cells for the last eight intervals, scaled to the largest growth
// among them; a cell with any growth shows at least the second level, so
// "a little" is visibly different from "none". Missing history is blank.
std::string
sparkline(const std::vector<int64_t>& history) {
    size_t shown = std::min(history.size(), static_cast<size_t>(kSparkCells));
    auto first = history.end() - static_cast<std::ptrdiff_t>(shown);
    int64_t peak = 0;
    for (auto it = first; it != history.end(); ++it) {
        peak = std::max(peak, *it);
    }
    std::string out(static_cast<size_t>(kSparkCells) - shown, ' ');
    for (auto it = first; it != history.end(); ++it) {
        int level = 0;
        if (*it > 0 && peak > 0) {
            double scaled = std::round(static_cast<double>(*it) / static_cast<double>(peak) * 7.0);
            level = std::clamp(static_cast<int>(scaled), 1, 7);
        }
        out += kSparkLevels[level];
    }
    return out;
}

struct Layout {
    bool peak = false; // the PEAK column
    int fixedWidth = kFixedWidth;
    int siteWidth = 0;
    int sourceWidth = 0; // 0: no source column
};

Layout
layoutFor(const WatchScreen& screen, int width) {
    Layout layout;
    layout.peak = screen.header.peakTracedBytes > 0;
    layout.fixedWidth = kFixedWidth + (layout.peak ? kPeakWidth : 0);
    int available = std::max(0, width - layout.fixedWidth);
    int widestSite = 4; // "SITE"
    for (const WatchRow& row : screen.rows) {
        widestSite = std::max(widestSite, displayWidth(rowSite(row, 1 << 20)));
    }
    layout.siteWidth = std::min(widestSite, available * 3 / 5);
    layout.sourceWidth = available - layout.siteWidth - 2;
    if (layout.sourceWidth < kMinSourceWidth) {
        layout.siteWidth = available;
        layout.sourceWidth = 0;
    }
    return layout;
}

std::string
columnTitles(const Layout& layout) {
    std::string peak = layout.peak ? padLeft("PEAK", kSizeWidth) + " " : "";
    std::string line = fmt::format("{} {} {}{} {} {} SITE", padLeft("#", kRankWidth),
                                   padLeft("GROWTH", kSizeWidth), peak, padLeft("LAST", kSizeWidth),
                                   padLeft("COUNT", kCountWidth), padRight("TREND", kSparkCells));
    if (layout.sourceWidth > 0) {
        line = padRight(line, layout.fixedWidth + layout.siteWidth) + "  SOURCE";
    }
    return line;
}

std::string
tableRow(const WatchRow& row, int index, bool selected, const Layout& layout, bool color) {
    // Inside the reverse-video bar of the selected row, inner colors would
    // end the bar at their reset, so that row is painted as one piece.
    bool cellColor = color && !selected;
    std::string rank =
        fmt::format("{}{}", selected ? '>' : ' ', padLeft(fmt::format("{}", index + 1), 3));
    std::string growth = padLeft(formatSize(row.sizeGrowth, true), kSizeWidth);
    std::string_view growthColor = row.sizeGrowth > 0 ? kRed : kGreen;
    std::string peak = layout.peak ? padLeft(formatSize(row.peakGrowth, true), kSizeWidth) + " " : "";
    std::string line =
        fmt::format("{} {} {}{} {} {} {}", rank,
                    row.sizeGrowth != 0 ? paint(growth, growthColor, cellColor) : growth, peak,
                    padLeft(formatSize(row.lastIntervalGrowth, true), kSizeWidth),
                    padLeft(fmt::format("{:+d}", row.countDiff), kCountWidth),
                    paint(sparkline(row.history), kCyan, cellColor), rowSite(row, layout.siteWidth));
    if (layout.sourceWidth > 0 && !row.sourceLine.empty()) {
        line = padRight(line, layout.fixedWidth + layout.siteWidth) + "  ";
        line += truncateRight(sanitizeText(row.sourceLine), layout.sourceWidth);
    }
    if (selected && color) {
        // The bar spans the table's width, not just the row's text.
        return paint(padRight(line, layout.fixedWidth + layout.siteWidth + 2 + layout.sourceWidth),
                     kReverse, true);
    }
    return line;
}

void
appendTable(std::vector<std::string>& lines, const WatchScreen& screen, const ScreenOptions& options) {
    Layout layout = layoutFor(screen, options.width);
    lines.push_back(paint(columnTitles(layout), kBold, options.color));
    if (screen.rows.empty()) {
        lines.push_back("  no allocation sites to show yet");
        return;
    }
    int visible = std::max(1, options.height - kChromeLines);
    int rowCount = static_cast<int>(screen.rows.size());
    int first = 0;
    if (options.selected >= visible) {
        first = std::min(options.selected - visible + 1, rowCount - visible);
    }
    for (int i = first; i < rowCount && i < first + visible; ++i) {
        const WatchRow& row = screen.rows[static_cast<size_t>(i)];
        lines.push_back(tableRow(row, i, i == options.selected, layout, options.color));
    }
}

void
appendTraceback(std::vector<std::string>& lines, const WatchRow& row, int index,
                const ScreenOptions& options) {
    lines.push_back(
        paint(fmt::format("traceback of #{} (most recent call first): growth {}, last interval {}, "
                          "count {:+d}",
                          index + 1, formatSize(row.sizeGrowth, true),
                          formatSize(row.lastIntervalGrowth, true), row.countDiff),
              kBold, options.color));
    // Lines left above the footer; the last one is kept for "… N more".
    size_t limit = static_cast<size_t>(std::max(1, options.height - 1));
    std::vector<Frame> frames = row.key.empty() ? std::vector<Frame>{topFrame(row)} : row.key;
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
        lines.push_back(fmt::format("  {}{}", siteText(frames[i], siteWidth), in));
        if (i == 0 && !row.sourceLine.empty()) {
            lines.push_back("      " + truncateRight(sanitizeText(row.sourceLine), options.width - 6));
        }
    }
}

// The keys the CLI handles; a terser form when the full one does not fit.
std::string
footer(int width) {
    std::string full = "q quit  s snapshot  b baseline  t group-by  ↑/↓ select  Enter traceback";
    if (displayWidth(full) <= width) {
        return full;
    }
    return "q quit s snap b base t group ↑/↓ select Enter trace";
}

} // namespace

std::string
renderWatchScreen(const WatchScreen& screen, const ScreenOptions& options) {
    const WatchHeader& header = screen.header;
    std::vector<std::string> lines;
    std::vector<std::string> identity = identityParts(header);
    identity.insert(identity.begin(), "memtap");
    lines.push_back(paint(fitParts(identity, "  ", options.width), kBold, options.color));
    lines.push_back(fitParts(memoryParts(header), "  ", options.width));
    lines.push_back(sanitizeText(header.statusLine));
    lines.emplace_back();

    bool selectedValid =
        options.selected >= 0 && options.selected < static_cast<int>(screen.rows.size());
    if (options.showTraceback && selectedValid) {
        appendTraceback(lines, screen.rows[static_cast<size_t>(options.selected)], options.selected,
                        options);
    } else {
        appendTable(lines, screen, options);
    }

    int height = std::max(1, options.height);
    if (static_cast<int>(lines.size()) > height - 1) {
        lines.resize(static_cast<size_t>(height - 1));
    }
    lines.push_back(paint(footer(options.width), kDim, options.color));

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
    for (size_t i = 0; i < shown; ++i) {
        const WatchRow& row = screen.rows[i];
        std::string peak = header.peakTracedBytes > 0
                               ? fmt::format(", at peak {}", formatSize(row.peakGrowth, true))
                               : "";
        fmt::format_to(it, "#{} {}: growth {}{}, last interval {}, count {:+d}\n", i + 1,
                       rowSite(row, 1 << 20), formatSize(row.sizeGrowth, true), peak,
                       formatSize(row.lastIntervalGrowth, true), row.countDiff);
        if (!row.sourceLine.empty()) {
            fmt::format_to(it, "    {}\n", sanitizeText(row.sourceLine));
        }
    }
    out += '\n';
    return out;
}

} // namespace memtap::report
