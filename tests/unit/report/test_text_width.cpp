// Column arithmetic used to fit the watch screen.
#include <catch2/catch.hpp>

#include "report/text_width.h"

using namespace memtap::report;

TEST_CASE("display width counts columns, not bytes", "[text_width]") {
    CHECK(displayWidth("") == 0);
    CHECK(displayWidth("abc") == 3);
    CHECK(displayWidth("▁▂▃▄▅▆▇█") == 8);
    CHECK(displayWidth("…↑↓") == 3);
    CHECK(displayWidth("日本") == 4);
    CHECK(displayWidth("e\xCC\x81") == 1); // e + combining acute
    CHECK(displayWidth("\x1b[7mab\x1b[0m") == 2);
    CHECK(displayWidth("\xff") == 1);
}

TEST_CASE("truncation keeps the telling end and marks the cut", "[text_width]") {
    CHECK(truncateRight("hello world", 20) == "hello world");
    CHECK(truncateRight("hello world", 6) == "hello…");
    CHECK(truncateRight("hello", 1) == "…");
    CHECK(truncateRight("hello", 0) == "");
    CHECK(truncateLeft("/very/long/path/file.py", 10) == "…h/file.py");
    CHECK(truncateLeft("abc", 3) == "abc");
    // A wide character that does not fit is dropped whole.
    CHECK(truncateRight("日本語", 4) == "日…");
    CHECK(truncateLeft("日本語", 4) == "…語");
    CHECK(padRight("ab", 4) == "ab  ");
    CHECK(padLeft("ab", 4) == "  ab");
    CHECK(padLeft("abcdef", 4) == "abc…");
}

TEST_CASE("clipToWidth keeps escape sequences", "[text_width]") {
    CHECK(clipToWidth("\x1b[7mabcdef\x1b[0m", 3) == "\x1b[7mabc\x1b[0m");
    CHECK(clipToWidth("a日b", 2) == "a");
}

TEST_CASE("sanitizeText removes what would corrupt a terminal", "[text_width]") {
    CHECK(sanitizeText("a\tb") == "a b");
    CHECK(sanitizeText("a\nb\rc\x7f") == "a?b?c?");
    CHECK(sanitizeText("\x1b[31mred") == "?[31mred");
    CHECK(sanitizeText("caf\xe9") == "caf\xEF\xBF\xBD");
    CHECK(sanitizeText("\xC2\x9B"
                       "2J") == "?2J"); // C1 CSI
    CHECK(sanitizeText("日本 ▁") == "日本 ▁");
    CHECK(toValidUtf8("a\tb\xff") == "a\tb\xEF\xBF\xBD");
}
