// The `memtap watch` screen: golden layouts, and the properties the CLI
// relies on at any size (width, height, no escapes without color).
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fixtures.h"
#include "golden.h"
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
    // Row 1 has nine intervals of history: the last eight show, peak is full.
    CHECK_THAT(lines[5], Catch::Contains("▄▆██▇███"));
    CHECK(lines.back() == "q quit  s snapshot  b baseline  t group-by  ↑/↓ select  Enter traceback");
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
