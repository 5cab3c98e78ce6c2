#include "symbols/proc_maps.h"

#include <charconv>

#include <fmt/format.h>

#include "attach/proc.h"
#include "base/fields.h"

namespace memtap::symbols {

namespace {

// Kernel suffix for a mapped file that was unlinked (fs/d_path.c, d_path()).
constexpr std::string_view kDeletedSuffix = " (deleted)";

bool
parseHex(std::string_view field, uint64_t& out) {
    auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), out, 16);
    return ec == std::errc() && ptr == field.data() + field.size();
}

bool
parseDec(std::string_view field, uint64_t& out) {
    auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), out, 10);
    return ec == std::errc() && ptr == field.data() + field.size();
}

// Cuts the next space-delimited field off the front of `rest`.
// One line: "start-end perms offset major:minor inode [path]" (proc(5)).
bool
parseLine(std::string_view line, MapEntry& entry) {
    std::string_view rest = line;
    std::string_view range = nextField(rest);
    std::string_view perms = nextField(rest);
    std::string_view offset = nextField(rest);
    std::string_view device = nextField(rest);
    std::string_view inode = nextField(rest);
    if (inode.empty() || perms.size() < 4 || device.find(':') == std::string_view::npos) {
        return false;
    }
    size_t dash = range.find('-');
    uint64_t start = 0;
    uint64_t end = 0;
    if (dash == std::string_view::npos || !parseHex(range.substr(0, dash), start) ||
        !parseHex(range.substr(dash + 1), end) || !parseHex(offset, entry.offset) ||
        !parseDec(inode, entry.inode)) {
        return false;
    }
    entry.start = RemotePtr(start);
    entry.end = RemotePtr(end);
    entry.readable = perms[0] == 'r';
    entry.writable = perms[1] == 'w';
    entry.executable = perms[2] == 'x';
    entry.isPrivate = perms[3] == 'p';

    // The path is the rest of the line after the padding; it may itself contain spaces.
    size_t pathBegin = rest.find_first_not_of(' ');
    std::string_view path =
        pathBegin == std::string_view::npos ? std::string_view{} : rest.substr(pathBegin);
    entry.deleted = path.ends_with(kDeletedSuffix);
    if (entry.deleted) {
        path.remove_suffix(kDeletedSuffix.size());
    }
    entry.path = std::string(path);
    return true;
}

} // namespace

std::vector<MapEntry>
parseMaps(std::string_view text) {
    std::vector<MapEntry> entries;
    while (!text.empty()) {
        size_t newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
        MapEntry entry;
        if (parseLine(line, entry)) {
            entries.push_back(std::move(entry));
        }
    }
    return entries;
}

std::vector<MapEntry>
readMapsOrThrow(pid_t pid) {
    return parseMaps(attach::readProcFileOrThrow(pid, "maps"));
}

} // namespace memtap::symbols
