#include "report/text_width.h"

#include <cstdint>
#include <vector>

namespace memtap::report {

namespace {

constexpr std::string_view kEllipsis = "…";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD"; // U+FFFD

// One decoded unit of text: a code point, or a whole SGR escape sequence.
struct Unit {
    size_t offset = 0;
    size_t length = 0;
    char32_t codePoint = 0;
    bool valid = true;
    bool escape = false;
};

// Decodes one UTF-8 sequence at `offset`; an invalid byte is a unit of its own.
Unit
decodeAt(std::string_view text, size_t offset) {
    Unit unit{offset, 1, static_cast<unsigned char>(text[offset]), true, false};
    unsigned char lead = static_cast<unsigned char>(text[offset]);
    if (lead == 0x1b && offset + 1 < text.size() && text[offset + 1] == '[') {
        size_t end = offset + 2;
        while (end < text.size() && ((text[end] >= '0' && text[end] <= '9') || text[end] == ';')) {
            ++end;
        }
        if (end < text.size() && text[end] == 'm') {
            unit.length = end + 1 - offset;
            unit.escape = true;
            return unit;
        }
    }
    if (lead < 0x80) {
        return unit;
    }
    size_t length = 0;
    char32_t cp = 0;
    char32_t minimum = 0;
    if ((lead & 0xE0) == 0xC0) {
        length = 2, cp = lead & 0x1F, minimum = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
        length = 3, cp = lead & 0x0F, minimum = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
        length = 4, cp = lead & 0x07, minimum = 0x10000;
    } else {
        unit.valid = false;
        return unit;
    }
    if (offset + length > text.size()) {
        unit.valid = false;
        return unit;
    }
    for (size_t i = 1; i < length; ++i) {
        unsigned char c = static_cast<unsigned char>(text[offset + i]);
        if ((c & 0xC0) != 0x80) {
            unit.valid = false;
            return unit;
        }
        cp = (cp << 6) | (c & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if (cp < minimum || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        unit.valid = false;
        return unit;
    }
    unit.length = length;
    unit.codePoint = cp;
    return unit;
}

std::vector<Unit>
decodeAll(std::string_view text) {
    std::vector<Unit> units;
    for (size_t offset = 0; offset < text.size();) {
        units.push_back(decodeAt(text, offset));
        offset += units.back().length;
    }
    return units;
}

bool
inRanges(char32_t cp, std::initializer_list<std::pair<char32_t, char32_t>> ranges) {
    for (auto [low, high] : ranges) {
        if (cp >= low && cp <= high) {
            return true;
        }
    }
    return false;
}

// A compact approximation of wcwidth(): the common combining blocks and the
// wide blocks of East Asian scripts and emoji. Exact Unicode tables would be
// thousands of lines for characters that rarely appear in Python file paths.
int
codePointWidth(char32_t cp) {
    if (cp == 0) {
        return 0;
    }
    if (inRanges(cp, {{0x0300, 0x036F},
                      {0x0483, 0x0489},
                      {0x0591, 0x05BD},
                      {0x0610, 0x061A},
                      {0x064B, 0x065F},
                      {0x1AB0, 0x1AFF},
                      {0x1DC0, 0x1DFF},
                      {0x200B, 0x200F},
                      {0x20D0, 0x20FF},
                      {0xFE00, 0xFE0F},
                      {0xFE20, 0xFE2F}})) {
        return 0;
    }
    if (inRanges(cp, {{0x1100, 0x115F},
                      {0x2E80, 0x303E},
                      {0x3041, 0x33FF},
                      {0x3400, 0x4DBF},
                      {0x4E00, 0x9FFF},
                      {0xA000, 0xA4CF},
                      {0xAC00, 0xD7A3},
                      {0xF900, 0xFAFF},
                      {0xFE30, 0xFE4F},
                      {0xFF00, 0xFF60},
                      {0xFFE0, 0xFFE6},
                      {0x1F300, 0x1F64F},
                      {0x1F900, 0x1F9FF},
                      {0x20000, 0x3FFFD}})) {
        return 2;
    }
    return 1;
}

int
unitWidth(const Unit& unit) {
    if (unit.escape) {
        return 0;
    }
    return unit.valid ? codePointWidth(unit.codePoint) : 1;
}

} // namespace

std::string
sanitizeText(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t offset = 0; offset < text.size();) {
        Unit unit = decodeAt(text, offset);
        offset += unit.length;
        if (!unit.valid) {
            out += kReplacement;
        } else if (unit.escape) {
            // A complete SGR sequence in a name: keep it visible as text.
            out += '?';
            out.append(text.substr(unit.offset + 1, unit.length - 1));
        } else if (unit.codePoint == '\t') {
            out += ' ';
        } else if (unit.codePoint < 0x20 || unit.codePoint == 0x7F ||
                   (unit.codePoint >= 0x80 && unit.codePoint < 0xA0)) {
            out += '?';
        } else {
            out.append(text.substr(unit.offset, unit.length));
        }
    }
    return out;
}

std::string
toValidUtf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t offset = 0; offset < text.size();) {
        Unit unit = decodeAt(text, offset);
        offset += unit.length;
        if (unit.valid) {
            out.append(text.substr(unit.offset, unit.length));
        } else {
            out += kReplacement;
        }
    }
    return out;
}

int
displayWidth(std::string_view text) {
    int width = 0;
    for (const Unit& unit : decodeAll(text)) {
        width += unitWidth(unit);
    }
    return width;
}

std::string
truncateRight(std::string_view text, int width) {
    if (displayWidth(text) <= width) {
        return std::string(text);
    }
    if (width <= 0) {
        return {};
    }
    std::string out;
    int used = 0;
    for (const Unit& unit : decodeAll(text)) {
        int w = unitWidth(unit);
        if (used + w > width - 1) {
            break;
        }
        used += w;
        out.append(text.substr(unit.offset, unit.length));
    }
    out += kEllipsis;
    return out;
}

std::string
truncateLeft(std::string_view text, int width) {
    if (displayWidth(text) <= width) {
        return std::string(text);
    }
    if (width <= 0) {
        return {};
    }
    std::vector<Unit> units = decodeAll(text);
    size_t start = units.size();
    int used = 0;
    while (start > 0 && used + unitWidth(units[start - 1]) <= width - 1) {
        used += unitWidth(units[--start]);
    }
    std::string out(kEllipsis);
    if (start < units.size()) {
        out.append(text.substr(units[start].offset));
    }
    return out;
}

std::string
padRight(std::string_view text, int width) {
    std::string out = truncateRight(text, width);
    int pad = width - displayWidth(out);
    out.append(pad > 0 ? static_cast<size_t>(pad) : 0, ' ');
    return out;
}

std::string
padLeft(std::string_view text, int width) {
    std::string fitted = truncateRight(text, width);
    int pad = width - displayWidth(fitted);
    return std::string(pad > 0 ? static_cast<size_t>(pad) : 0, ' ') + fitted;
}

std::string
clipToWidth(std::string_view text, int width) {
    std::string out;
    int used = 0;
    bool full = false;
    for (const Unit& unit : decodeAll(text)) {
        int w = unitWidth(unit);
        if (unit.escape) {
            out.append(text.substr(unit.offset, unit.length)); // a later reset must survive
            continue;
        }
        full = full || used + w > width;
        if (full) {
            continue;
        }
        used += w;
        out.append(text.substr(unit.offset, unit.length));
    }
    return out;
}

} // namespace memtap::report
