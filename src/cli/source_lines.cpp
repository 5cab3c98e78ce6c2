#include "cli/source_lines.h"

#include <fstream>

#include <fmt/format.h>

namespace memtap::cli {

std::optional<std::string>
SourceLines::line(const std::string& file, int lineNumber) {
    if (file.empty() || file[0] != '/' || lineNumber <= 0) {
        return std::nullopt;
    }
    auto [it, inserted] = cache_.try_emplace(file);
    if (inserted) {
        std::ifstream in(fmt::format("/proc/{}/root{}", pid_, file));
        if (in) {
            std::vector<std::string> lines;
            for (std::string text; std::getline(in, text);) {
                lines.push_back(std::move(text));
            }
            it->second = std::move(lines);
        }
    }
    if (!it->second || static_cast<size_t>(lineNumber) > it->second->size()) {
        return std::nullopt;
    }
    const std::string& text = (*it->second)[static_cast<size_t>(lineNumber) - 1];
    auto begin = text.find_first_not_of(" \t");
    auto end = text.find_last_not_of(" \t\r");
    if (begin == std::string::npos) {
        return std::string();
    }
    return text.substr(begin, end - begin + 1);
}

} // namespace memtap::cli
