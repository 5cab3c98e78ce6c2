// Snapshots live on the host, not in the target: taking one costs the target
// a copy of the agent's traceback table, and nothing stays behind in it.
// Directory: $XDG_RUNTIME_DIR/memtap (or /tmp/memtap-UID), one subdirectory
// per process instance ("PID-STARTTIME", so a reused PID never mixes).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace memtap::cli {

class SnapshotStore {
public:
    static SnapshotStore forProcessOrThrow(pid_t pid);

    // s1, s2, ...: the first free name.
    std::string nextDefaultName() const;
    void saveOrThrow(const std::string& name, const std::string& text) const;
    std::string loadOrThrow(const std::string& name) const;
    bool exists(const std::string& name) const;
    std::vector<std::string> names() const;
    const std::string& directory() const { return directory_; }

private:
    explicit SnapshotStore(std::string directory) : directory_(std::move(directory)) {}
    std::string pathOf(const std::string& name) const;
    std::string directory_;
};

// Names are file names: letters, digits, '-', '_', '.'; not "now".
void validateSnapshotNameOrThrow(const std::string& name);

} // namespace memtap::cli
