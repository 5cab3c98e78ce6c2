// Source lines for reports, read from the target's filesystem view
// (/proc/PID/root), so a process in a container shows its own files.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace memtap::cli {

class SourceLines {
public:
    explicit SourceLines(pid_t pid) : pid_(pid) {}
    // The stripped line, or nullopt (no such file, or "<frozen ...>").
    std::optional<std::string> line(const std::string& file, int lineNumber);

private:
    pid_t pid_;
    std::map<std::string, std::optional<std::vector<std::string>>> cache_;
};

} // namespace memtap::cli
