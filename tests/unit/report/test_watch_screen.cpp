// The `memtap watch` screen: golden layouts, and the properties the CLI
// relies on at any size (width, height, no escapes without color).
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <algorithm>

#include "fixtures.h"
#include "golden.h"
#include "report/watch_columns.h"
#include "report/watch_screen.h"

using namespace memtap::report;
using memtap::report::test::checkGolden;

namespace {

std::vector<std::string>
splitLines(const std::string& text) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (true) {
        size_t newline = text.find('\n', start);
        lines.push_back(text.substr(start, newline - start));
        if (newline == std::string::npos) {
            return lines;
        }
        start = newline + 1;
    }
}

// Columns counted independently of the library: SGR sequences take none,
// UTF-8 continuation bytes none, the CJK blocks of the fixture two.
int
columns(const std::string& line) {
    int width = 0;
    for (size_t i = 0; i < line.size();) {
        unsigned char c = static_cast<unsigned char>(line[i]);
        if (c == 0x1b) {
            i = line.find('m', i) + 1;
            continue;
        }
        size_t length = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        char32_t cp = c;
        if (length == 3) {
            cp = ((c & 0x0F) << 12) | ((line[i + 1] & 0x3F) << 6) | (line[i + 2] & 0x3F);
        }
        width += (cp >= 0x3000 && cp <= 0x9FFF) ? 2 : 1;
        i += length;
    }
    return width;
}

ScreenOptions
optionsFor(int width, int height, bool color = false, int selected = -1, bool traceback = false) {
    ScreenOptions options;
    options.width = width;
    options.height = height;
    options.color = color;
    options.selected = selected;
    options.showTraceback = traceback;
    return options;
}

} // namespace

TEST_CASE("watch screen golden files", "[watch][golden]") {
    WatchScreen screen = test::fixtureWatchScreen();
    checkGolden("watch_80.txt", renderWatchScreen(screen, optionsFor(80, 30)));
    checkGolden("watch_120_selected.txt", renderWatchScreen(screen, optionsFor(120, 30, false, 1)));
    checkGolden("watch_60_short.txt", renderWatchScreen(screen, optionsFor(60, 9, false, 4)));
    checkGolden("watch_100_traceback.txt",
                renderWatchScreen(screen, optionsFor(100, 30, false, 1, true)));
    checkGolden("watch_plain.txt", renderWatchPlain(screen, 5));
}

TEST_CASE("watch screen never exceeds its size", "[watch]") {
    WatchScreen screen = test::fixtureWatchScreen();
    for (int width : {60, 80, 120, 200}) {
        for (int height : {5, 9, 30}) {
            for (bool color : {false, true}) {
                for (int selected : {-1, 0, 4}) {
                    for (bool traceback : {false, true}) {
                        std::string text = renderWatchScreen(
                            screen, optionsFor(width, height, color, selected, traceback));
                        INFO("width " << width << " height " << height << " color " << color
                                      << " selected " << selected << " traceback " << traceback << "\n"
                                      << text);
                        std::vector<std::string> lines = splitLines(text);
                        CHECK(static_cast<int>(lines.size()) <= height);
                        for (const std::string& line : lines) {
                            CHECK(columns(line) <= width);
                        }
                        CHECK(text.back() != '\n');
                    }
                }
            }
        }
    }
}

TEST_CASE("watch screen has a sparkline of eight cells and the key footer", "[watch]") {
    std::string text = renderWatchScreen(test::fixtureWatchScreen(), optionsFor(120, 30));
    std::vector<std::string> lines = splitLines(text);
    // Row 1 has nine intervals of history: the last eight show. By default
    // the trend is the site's size (always rising here); `g` plots the
    // growth per interval, scaled to the largest.
    CHECK_THAT(lines[4], Catch::Contains("TREND"));
    CHECK_THAT(lines[5], Catch::Contains("▁▂▃▄▅▆▇█"));
    ScreenOptions growth = optionsFor(120, 30);
    growth.trend = WatchTrend::Growth;
    std::vector<std::string> deltas = splitLines(renderWatchScreen(test::fixtureWatchScreen(), growth));
    CHECK_THAT(deltas[4], Catch::Contains("DELTAS"));
    CHECK_THAT(deltas[5], Catch::Contains("▄▆██▇███"));
    CHECK(lines.back() == "q quit  s snapshot  b baseline  t group-by  o sort  g trend  ↑/↓ select  "
                          "Enter traceback  r refs");
}

TEST_CASE("a panel (watch's r) stands in place of the table until Enter or Esc", "[watch]") {
    ScreenOptions options = optionsFor(120, 30);
    options.panel = "process 4242: 2,000 live objects allocated at app/cache.py:42 were reached\n"
                    "\n#1 2,000 objects, 125 KiB, held by app.cache.Cache.entries";
    std::vector<std::string> lines = splitLines(renderWatchScreen(test::fixtureWatchScreen(), options));
    CHECK(std::find(lines.begin(), lines.end(),
                    "#1 2,000 objects, 125 KiB, held by app.cache.Cache.entries") != lines.end());
    for (const std::string& line : lines) {
        CHECK_THAT(line, !Catch::Contains("GROWTH")); // no table
    }
    CHECK(lines.back() == "Enter/Esc back to the table  q back");
}

TEST_CASE("a site that stopped growing reads flat at the top of its trend", "[watch]") {
    WatchRow stopped{{Frame{"app/a.py", 1, "f"}}, 300, 0, 3, {100, 100, 100, 0, 0, 0}, ""};
    CHECK(sizeTrendOf(stopped) == std::vector<int64_t>{100, 200, 300, 300, 300, 300});
    CHECK(levelSparkline(sizeTrendOf(stopped), 8) == "  ▁▅████");
    // Per interval, the same site reads as having stopped.
    CHECK(growthSparkline(stopped.history, 8) == "  ███▁▁▁");
    // Holding a size from the first report on: flat at the top, not blank.
    CHECK(levelSparkline({5, 5, 5}, 4) == " ███");
    CHECK(levelSparkline({0, 0}, 4) == "  ▁▁");
}

TEST_CASE("paths lose the directory all rows share, named in the titles", "[watch]") {
    WatchScreen screen;
    screen.rows = {WatchRow{{Frame{"/srv/app/cache.py", 42, "put"}}, 2000, 0, 2, {}, "x"},
                   WatchRow{{Frame{"/srv/app/lib/parse.py", 7, "tok"}}, 1000, 0, 1, {}, "y"},
                   WatchRow{{}, 10, 0, 1, {}, ""}};
    CHECK(commonDirectoryOf(screen.rows) == "/srv/app/");
    std::vector<std::string> lines = splitLines(renderWatchScreen(screen, optionsFor(100, 20)));
    CHECK(lines[3] == "paths under /srv/app/");
    CHECK_THAT(lines[5], Catch::Contains(" cache.py:42 "));
    CHECK_THAT(lines[6], Catch::Contains(" lib/parse.py:7 "));
    // The <unknown> row is explained once, under the table.
    CHECK_THAT(lines[8], Catch::StartsWith("<unknown>: no Python frame"));
    // One file is its own prefix: nothing is taken off.
    screen.rows.resize(1);
    CHECK(commonDirectoryOf(screen.rows).empty());
}

TEST_CASE("rows that share a top frame are told apart by the caller where they part", "[watch]") {
    Frame top{"app/db.py", 10, "query"};
    std::vector<WatchRow> rows = {
        WatchRow{{top, Frame{"app/views/users.py", 30, "list"}, Frame{"app/main.py", 5, "run"}},
                 3,
                 0,
                 1,
                 {},
                 ""},
        WatchRow{{top, Frame{"app/views/orders.py", 8, "list"}, Frame{"app/main.py", 5, "run"}},
                 2,
                 0,
                 1,
                 {},
                 ""},
        WatchRow{{Frame{"app/other.py", 1, "g"}}, 1, 0, 1, {}, ""}};
    std::vector<std::string> sites = siteTextsOf(rows, "");
    CHECK(sites[0] == "app/db.py:10 ← users.py:30");
    CHECK(sites[1] == "app/db.py:10 ← orders.py:8");
    CHECK(sites[2] == "app/other.py:1");
}

TEST_CASE("rows sort by the key the user picks, stable among equals", "[watch]") {
    std::vector<WatchRow> rows = test::fixtureWatchScreen().rows;
    sortWatchRows(rows, WatchSort::Count);
    CHECK(rows[0].countDiff == 2000);
    CHECK(rows[1].countDiff == 1000);
    sortWatchRows(rows, WatchSort::Last);
    CHECK(rows[0].lastIntervalGrowth == 250000);
    CHECK(nextWatchSort(WatchSort::Count, false) == WatchSort::Growth);
    CHECK(nextWatchSort(WatchSort::Count, true) == WatchSort::Peak);
    ScreenOptions options = optionsFor(120, 30);
    options.sort = WatchSort::Count;
    CHECK_THAT(renderWatchScreen(test::fixtureWatchScreen(), options),
               Catch::Contains("by lineno, sorted by count"));
}

TEST_CASE("the header plots rss and traced bytes over the reports so far", "[watch]") {
    WatchScreen screen = test::fixtureWatchScreen();
    screen.header.rssHistory = {100, 200, 300, 400};
    screen.header.tracedHistory = {10, 10, 40, 40};
    std::vector<std::string> lines = splitLines(renderWatchScreen(screen, optionsFor(120, 30)));
    CHECK(lines[2] == "rss ▁▃▆█ 150 MiB   traced ▁▁██ 45.2 MiB");
    // A short screen keeps its rows instead.
    CHECK(splitLines(renderWatchScreen(screen, optionsFor(120, 12)))[2] == "snapshot s2 taken");
}

TEST_CASE("all workers: the same table with a column per worker", "[watch][workers]") {
    WatchScreen screen = test::fixtureWorkersScreen();
    checkGolden("watch_workers_120.txt", renderWatchScreen(screen, optionsFor(120, 20, false, 0)));
    checkGolden("watch_workers_traceback.txt",
                renderWatchScreen(screen, optionsFor(120, 20, false, 0, true)));
    checkGolden("watch_workers_plain.txt", renderWatchPlain(screen, 0));
    for (int width : {40, 60, 80, 200}) {
        for (const std::string& line :
             splitLines(renderWatchScreen(screen, optionsFor(width, 20, true, 1)))) {
            CHECK(columns(line) <= width);
        }
    }
    // Worker columns that do not fit are dropped, the site keeps its room.
    CHECK(renderWatchScreen(screen, optionsFor(60, 20)).find("5602") == std::string::npos);
}

TEST_CASE("tiny or odd screens stay in bounds", "[watch]") {
    WatchScreen screen = test::fixtureWatchScreen();
    screen.header.attachedSeconds = 1e300;
    WatchScreen empty;
    for (const WatchScreen* s : {&screen, &empty}) {
        for (int width : {0, 1, 10, 30, 45}) {
            for (int height : {1, 2, 6}) {
                for (int selected : {-1, 0, 5, 99}) {
                    std::string text =
                        renderWatchScreen(*s, optionsFor(width, height, true, selected, selected == 0));
                    INFO("width " << width << " height " << height << " selected " << selected << "\n"
                                  << text);
                    std::vector<std::string> lines = splitLines(text);
                    CHECK(static_cast<int>(lines.size()) <= height);
                    for (const std::string& line : lines) {
                        CHECK(columns(line) <= width);
                    }
                }
            }
        }
    }
    CHECK_THAT(renderWatchPlain(empty, 10), Catch::Contains("no allocation sites to show yet\n"));
}

TEST_CASE("without color there are no escape bytes", "[watch]") {
    WatchScreen screen = test::fixtureWatchScreen();
    screen.header.statusLine = "status with \x1b[31m an escape";
    screen.rows[0].sourceLine = "print('\x1b[2J')";
    for (int width : {60, 80, 120, 200}) {
        for (bool traceback : {false, true}) {
            std::string text = renderWatchScreen(screen, optionsFor(width, 30, false, 0, traceback));
            CHECK(text.find('\x1b') == std::string::npos);
        }
    }
    CHECK(renderWatchPlain(screen, 0).find('\x1b') == std::string::npos);
}

TEST_CASE("with color the selected row is highlighted", "[watch]") {
    WatchScreen screen = test::fixtureWatchScreen();
    for (int selected : {0, 2, 5}) {
        std::vector<std::string> lines =
            splitLines(renderWatchScreen(screen, optionsFor(120, 30, true, selected)));
        // Rows start after three header lines, a blank and the column titles.
        for (int row = 0; row < static_cast<int>(screen.rows.size()); ++row) {
            const std::string& line = lines[static_cast<size_t>(5 + row)];
            INFO("selected " << selected << " row " << row << ": " << line);
            bool highlighted = line.rfind("\x1b[7m", 0) == 0;
            CHECK(highlighted == (row == selected));
            std::string plain = highlighted ? line.substr(4) : line;
            CHECK((plain.front() == '>') == (row == selected));
        }
    }
}

TEST_CASE("the table scrolls to keep the selected row visible", "[watch]") {
    WatchScreen screen = test::fixtureWatchScreen();
    // height 9: three rows fit between the header and the footer.
    std::vector<std::string> lines = splitLines(renderWatchScreen(screen, optionsFor(100, 9, false, 5)));
    REQUIRE(lines.size() == 9);
    CHECK_THAT(lines[7], Catch::StartsWith(">  6"));
    CHECK_THAT(lines[5], Catch::StartsWith("   4"));
}

TEST_CASE("plain watch output lists the top rows", "[watch]") {
    std::string text = renderWatchPlain(test::fixtureWatchScreen(), 2);
    CHECK_THAT(text, Catch::Contains(
                         "#1 app/cache.py:42: growth +1953 KiB, last interval +244 KiB, count +2000\n"
                         "    self._entries.append(value)\n"));
    CHECK(text.find("#3") == std::string::npos);
    CHECK_THAT(text, Catch::EndsWith("\n\n"));
}

TEST_CASE("with a peak: the header shows it and a PEAK column holds each site's height",
          "[watch][peak]") {
    WatchScreen screen = test::fixtureWatchScreen();
    // Without a peak from the agent there is no PEAK column (the goldens above).
    CHECK(renderWatchScreen(screen, optionsFor(120, 30)).find("PEAK") == std::string::npos);
    screen.header.peakTracedBytes = 300 * 1024 * 1024;
    // A burst that came and went: no growth left, 250 MiB at the peak.
    WatchRow burst{{Frame{"/srv/app/report.py", 42, "build"}},
                   0,
                   0,
                   0,
                   {0, 0},
                   "rows = load_all()",
                   250 * 1024 * 1024};
    screen.rows.insert(screen.rows.begin(), burst);
    std::vector<std::string> lines = splitLines(renderWatchScreen(screen, optionsFor(120, 30)));
    CHECK_THAT(lines[1], Catch::Contains("traced 45.2 MiB  peak 300 MiB  malloc free"));
    CHECK_THAT(lines[4],
               Catch::StartsWith("   #     GROWTH       PEAK       LAST     COUNT TREND    SITE"));
    // The burst's height sits under PEAK, right-aligned with the title.
    CHECK(lines[5].find("+250 MiB") + 8 == lines[4].find("PEAK") + 4);
    CHECK_THAT(lines[5], Catch::StartsWith("   1       +0 B"));
    CHECK_THAT(lines[5], Catch::Contains("/srv/app/report.py:42"));
    // The other rows keep their growth under GROWTH and a PEAK of their own.
    CHECK_THAT(lines[6], Catch::StartsWith("   2  +1953 KiB       +0 B   +244 KiB"));
    for (int width : {40, 60, 80, 120}) {
        for (const std::string& line :
             splitLines(renderWatchScreen(screen, optionsFor(width, 30, true, 0)))) {
            CHECK(columns(line) <= width);
        }
    }
    // At 80 columns PEAK stays and COUNT and LAST give way to the source.
    std::vector<std::string> narrow = splitLines(renderWatchScreen(screen, optionsFor(80, 30)));
    CHECK_THAT(narrow[4], Catch::StartsWith("   #     GROWTH       PEAK TREND    SITE"));
    CHECK_THAT(narrow[6], Catch::Contains("self._entries.append("));
    std::string plain = renderWatchPlain(screen, 2);
    CHECK_THAT(plain, Catch::Contains("traced 45.2 MiB, peak 300 MiB, malloc free"));
    CHECK_THAT(plain, Catch::Contains("#1 /srv/app/report.py:42: growth +0 B, at peak +250 MiB"));

    // RSS explained in short closes the header line, cut to the width.
    screen.header.breakdown =
        "anon 484 MiB, file 6740 KiB; pymalloc 486 MiB in 486 arenas (474 MiB free)";
    CHECK_THAT(renderWatchPlain(screen, 2),
               Catch::Contains("by lineno, anon 484 MiB, file 6740 KiB; "
                               "pymalloc 486 MiB in 486 arenas (474 MiB free)"));
    for (int width : {40, 80, 200}) {
        for (const std::string& line : splitLines(renderWatchScreen(screen, optionsFor(width, 30)))) {
            CHECK(columns(line) <= width);
        }
    }
    CHECK_THAT(renderWatchScreen(screen, optionsFor(200, 30)), Catch::Contains("pymalloc 486 MiB"));
}
