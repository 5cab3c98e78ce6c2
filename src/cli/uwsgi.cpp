#include "cli/uwsgi.h"

#include <unistd.h>

#include <sstream>

#include "attach/proc.h"
#include "base/error.h"

namespace memtap::cli {
namespace {

std::string
exeOf(pid_t pid) {
    char buffer[4096];
    ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid).c_str(), buffer, sizeof(buffer) - 1);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

pid_t
parentOf(pid_t pid) {
    auto stat = attach::readWholeFile(fmt::format("/proc/{}/stat", pid));
    if (!stat) {
        return 0;
    }
    // Field 4 follows the ")" that closes the command name (proc(5)).
    auto close = stat->rfind(')');
    std::istringstream in(stat->substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    in >> state >> ppid;
    return ppid;
}

} // namespace

std::vector<pid_t>
uwsgiWorkersOf(pid_t pid) {
    std::vector<pid_t> workers;
    std::string exe = exeOf(pid);
    auto children = attach::readWholeFile(fmt::format("/proc/{}/task/{}/children", pid, pid));
    if (exe.empty() || !children) {
        return workers;
    }
    std::istringstream in(*children);
    for (pid_t child; in >> child;) {
        if (exeOf(child) == exe && parentOf(child) == pid) {
            workers.push_back(child);
        }
    }
    return workers;
}

bool
isUwsgiMaster(pid_t pid) {
    auto name = exeOf(pid);
    if (name.find("uwsgi") == std::string::npos) {
        return false;
    }
    return !uwsgiWorkersOf(pid).empty();
}

void
explainUwsgiMasterOrContinue(pid_t pid, const std::string& command) {
    if (!isUwsgiMaster(pid)) {
        return;
    }
    auto workers = uwsgiWorkersOf(pid);
    std::string list;
    for (pid_t w : workers) {
        list += (list.empty() ? "" : " ") + std::to_string(w);
    }
    throw Error(
        ExitCode::Usage,
        fmt::format("process {} is a uWSGI master; its workers run the application: {}", pid, list),
        fmt::format("run `memtap {} WORKER_PID` on one of them, or `memtap watch --all-workers {}`",
                    command, pid));
}

} // namespace memtap::cli
