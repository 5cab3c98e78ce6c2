#include "cli/snapshot_store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "attach/proc.h"
#include "base/error.h"

namespace memtap::cli {
namespace {

std::string
processStartTimeOrThrow(pid_t pid) {
    auto stat = attach::readWholeFile(fmt::format("/proc/{}/stat", pid));
    if (!stat) {
        throw Error(ExitCode::NoSuchProcess, fmt::format("no process with PID {}", pid));
    }
    // Field 22, starttime, counted after the ")" closing the command name (proc(5)).
    std::istringstream in(stat->substr(stat->rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 22 && in >> field; ++i) {
    }
    return field;
}

void
makeDirectoryOrThrow(const std::string& path) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        throw Error(ExitCode::Failure, describeErrno(fmt::format("creating {}", path), errno));
    }
}

} // namespace

void
validateSnapshotNameOrThrow(const std::string& name) {
    bool ok = !name.empty() && name.size() <= 64 && name != "now" && name[0] != '.' &&
              std::all_of(name.begin(), name.end(), [](char c) {
                  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
              });
    if (!ok) {
        throw Error(
            ExitCode::Usage, fmt::format("'{}' is not a valid snapshot name", name),
            "use letters, digits, '-', '_' or '.' (and not 'now', which means a fresh snapshot)");
    }
}

SnapshotStore
SnapshotStore::forProcessOrThrow(pid_t pid) {
    std::string base;
    if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime && *runtime) {
        base = fmt::format("{}/memtap", runtime);
    } else {
        base = fmt::format("/tmp/memtap-{}", ::geteuid());
    }
    makeDirectoryOrThrow(base);
    std::string directory = fmt::format("{}/{}-{}", base, pid, processStartTimeOrThrow(pid));
    makeDirectoryOrThrow(directory);
    return SnapshotStore(directory);
}

std::string
SnapshotStore::pathOf(const std::string& name) const {
    return fmt::format("{}/{}.snapshot", directory_, name);
}

bool
SnapshotStore::exists(const std::string& name) const {
    return ::access(pathOf(name).c_str(), F_OK) == 0;
}

std::string
SnapshotStore::nextDefaultName() const {
    for (int i = 1;; ++i) {
        auto name = fmt::format("s{}", i);
        if (!exists(name)) {
            return name;
        }
    }
}

void
SnapshotStore::saveOrThrow(const std::string& name, const std::string& text) const {
    // Write then rename, so a reader never sees half a snapshot.
    std::string tmp = pathOf(name) + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out) {
            throw Error(ExitCode::Failure, fmt::format("cannot write {}", tmp));
        }
    }
    if (::rename(tmp.c_str(), pathOf(name).c_str()) != 0) {
        throw Error(ExitCode::Failure, describeErrno(fmt::format("saving snapshot {}", name), errno));
    }
}

std::string
SnapshotStore::loadOrThrow(const std::string& name) const {
    auto text = attach::readWholeFile(pathOf(name));
    if (!text) {
        auto known = names();
        std::string list;
        for (const auto& n : known) {
            list += (list.empty() ? "" : ", ") + n;
        }
        throw Error(ExitCode::Usage, fmt::format("no snapshot named '{}' for this process", name),
                    known.empty() ? "take one with `memtap snapshot PID [NAME]`, or use 'now'"
                                  : fmt::format("known snapshots: {}; 'now' takes a fresh one", list));
    }
    return *text;
}

std::vector<std::string>
SnapshotStore::names() const {
    std::vector<std::string> result;
    DIR* dir = ::opendir(directory_.c_str());
    if (dir == nullptr) {
        return result;
    }
    while (dirent* entry = ::readdir(dir)) {
        std::string file = entry->d_name;
        const std::string suffix = ".snapshot";
        if (file.size() > suffix.size() &&
            file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0) {
            result.push_back(file.substr(0, file.size() - suffix.size()));
        }
    }
    ::closedir(dir);
    std::sort(result.begin(), result.end());
    return result;
}

} // namespace memtap::cli
