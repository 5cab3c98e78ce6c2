#include "cli/target_death.h"

#include <sys/wait.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "attach/proc.h"

namespace memtap::cli {

std::string
describeWaitStatus(int status) {
    if (WIFSIGNALED(status)) {
        int signal = WTERMSIG(status);
        const char* abbrev = sigabbrev_np(signal);
        return fmt::format("killed by signal {}{}{}", signal,
                           abbrev ? fmt::format(" (SIG{})", abbrev) : "",
                           WCOREDUMP(status) ? ", core dumped" : "");
    }
    if (WIFEXITED(status)) {
        return fmt::format("exited with code {}", WEXITSTATUS(status));
    }
    return "exited (status unknown to memtap)";
}

std::optional<int>
zombieWaitStatus(std::string_view stat) {
    size_t paren = stat.rfind(')');
    if (paren == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view rest = stat.substr(paren + 1);
    // Field 3 is the first after ')'; field 52 is the 50th.
    int field = 2;
    std::optional<int> status;
    bool zombie = false;
    while (!rest.empty()) {
        size_t start = rest.find_first_not_of(" \n");
        if (start == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(start);
        size_t end = rest.find_first_of(" \n");
        std::string_view value = rest.substr(0, end);
        rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
        ++field;
        if (field == 3) {
            zombie = value == "Z";
        } else if (field == 52) {
            int parsed = 0;
            auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
            if (ec == std::errc{} && ptr == value.data() + value.size()) {
                status = parsed;
            }
            break;
        }
    }
    return zombie ? status : std::nullopt;
}

std::optional<std::string>
tryDescribeDeath(pid_t pid, uint64_t startTime) {
    auto now = attach::tryReadProcessStartTime(pid);
    if (!now || *now != startTime) {
        return "exited (status unknown to memtap)";
    }
    auto stat = attach::readWholeFile(fmt::format("/proc/{}/stat", pid));
    if (!stat) {
        return "exited (status unknown to memtap)";
    }
    if (auto status = zombieWaitStatus(*stat)) {
        return describeWaitStatus(*status);
    }
    // A zombie without field 52 (a kernel before 3.5), or a process that runs.
    size_t paren = stat->rfind(')');
    if (paren != std::string::npos && stat->compare(paren + 1, 3, " Z ") == 0) {
        return "exited (status unknown to memtap)";
    }
    return std::nullopt;
}

} // namespace memtap::cli
