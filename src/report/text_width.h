// Terminal column arithmetic for UTF-8 text. The watch screen must never
// exceed its width, and byte counts over-count every non-ASCII character
// (the sparkline's block characters are 3 bytes but 1 column), so all
// fitting is done in display columns here.
#pragma once

#include <string>
#include <string_view>

namespace memtap::report {

// Replaces what would corrupt a terminal or a log: control characters
// (ESC included) become '?', a tab becomes a space, and bytes that are not
// valid UTF-8 become U+FFFD. File names and source lines come from the
// target and may contain any of these.
std::string sanitizeText(std::string_view text);

// Only the U+FFFD replacement of bytes that are not valid UTF-8 (for JSON,
// which must be UTF-8 but escapes control characters itself).
std::string toValidUtf8(std::string_view text);

// Columns the text occupies: 0 for combining marks and SGR escape sequences
// ("\x1b[...m"), 2 for East Asian wide characters and emoji, 1 otherwise.
int displayWidth(std::string_view text);

// Fits text into `width` columns, marking a cut with "…": truncateRight keeps
// the start (source text), truncateLeft keeps the end (file paths, whose
// most telling part is the file name).
std::string truncateRight(std::string_view text, int width);
std::string truncateLeft(std::string_view text, int width);

// Pads with spaces to exactly `width` columns (truncating on the right first).
std::string padRight(std::string_view text, int width);
std::string padLeft(std::string_view text, int width);

// Drops visible characters past `width` columns but keeps escape sequences,
// so a line that was colored still ends with its reset.
std::string clipToWidth(std::string_view text, int width);

} // namespace memtap::report
