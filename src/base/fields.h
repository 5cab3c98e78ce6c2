// Splitting the space-separated lines of /proc files (maps, smaps, stat).
#pragma once

#include <cstddef>
#include <string_view>

namespace memtap {

// The next field of rest, skipping leading spaces; rest moves past it.
// Empty once rest holds only spaces.
inline std::string_view
nextField(std::string_view& rest) {
    size_t begin = rest.find_first_not_of(' ');
    if (begin == std::string_view::npos) {
        rest = {};
        return {};
    }
    rest.remove_prefix(begin);
    size_t end = rest.find(' ');
    std::string_view field = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
    return field;
}

} // namespace memtap
