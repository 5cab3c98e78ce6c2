// Snapshots live on the host, not in the target: taking one costs the target
// a copy of the agent's traceback table, and nothing stays behind in it.
//
// Layout: the base directory is $XDG_RUNTIME_DIR/memtap, or /tmp/memtap-EUID
// when that is unset; in it, one subdirectory per process instance,
// "PID-STARTTIME" (so a reused PID never mixes), holding NAME.snapshot files,
// journal-N.mtj journals (src/report/journal.h) and ".boot_id", the boot it
// was made in (starttime counts from boot).
//
// Retention: a process's directory is evidence after the process is gone
// (`memtap diff` and `memtap report` read it), so it is kept. Only these go,
// when a command next saves to the store: directories made in another boot
// (their .boot_id differs: the PID and start time may recur), directories of
// gone processes whose newest file is older than 7 days, and, beyond the
// newest 50 directories of gone processes (by newest file), the older ones.
// A running process's directory is never removed.
//
// /tmp is shared, so its names are predictable to everyone. The store trusts
// nothing it did not verify: every directory level is opened with
// O_NOFOLLOW|O_DIRECTORY and checked through its fd (owned by the caller,
// not writable by group or others); files are opened relative to that fd,
// written to an O_EXCL temp name then renamed, and read only if they are
// regular files owned by the caller and not writable by others. Anything
// else is refused with an Error that names the path, never worked around.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/unique_fd.h"

namespace memtap::cli {

// Where the base directory is: `name` inside `parent`.
struct StoreLocation {
    std::string parent; // $XDG_RUNTIME_DIR or /tmp
    std::string name;   // "memtap" or "memtap-EUID"

    std::string path() const { return parent + "/" + name; }
    static StoreLocation fromEnvironment();
};

// One process instance: its PID and field 22 of /proc/PID/stat (proc(5)).
struct ProcessInstance {
    pid_t pid = 0;
    std::string startTime;

    // Error(NoSuchProcess) if the process does not exist.
    static ProcessInstance ofPidOrThrow(pid_t pid);
};

class SnapshotStore {
public:
    // The store of `pid`, created if needed (after removing the directories
    // of processes that are gone). For commands that save snapshots.
    static SnapshotStore forProcessOrThrow(pid_t pid);
    // The store of `pid` if it exists; a missing one is an empty store and
    // nothing is created. For commands that only read.
    static SnapshotStore existingForProcessOrThrow(pid_t pid);
    // For a PID that no longer runs: the store of the most recent instance of
    // that PID stored in this boot (the highest start time), and that
    // instance; nullopt if none is stored. Nothing is created or removed.
    static std::optional<std::pair<SnapshotStore, ProcessInstance>>
    mostRecentOfGoneProcessOrThrow(const StoreLocation& where, pid_t pid);
    // The same at an explicit location (tests use a private one).
    static SnapshotStore openOrThrow(const StoreLocation& where, const ProcessInstance& instance,
                                     bool create);

    // s1, s2, ...: the first free name.
    std::string nextDefaultName() const;
    void saveOrThrow(const std::string& name, const std::string& text) const;
    std::string loadOrThrow(const std::string& name) const;
    bool exists(const std::string& name) const;
    std::vector<std::string> names() const;
    const std::string& directory() const { return directory_; }

    // A new journal, journal-N.mtj with N one more than any there, opened
    // O_EXCL|O_NOFOLLOW|O_APPEND (mode 0600); returns its name and fd.
    std::pair<std::string, UniqueFd> createJournalOrThrow() const;
    // journal-N.mtj names, oldest (lowest N) first.
    std::vector<std::string> journalNames() const;
    // The bytes of a journal, read as snapshots are (own regular files only).
    std::string loadJournalOrThrow(const std::string& name) const;
    // Removes a journal this store holds (one left empty by a failed start).
    void removeJournal(const std::string& name) const;
    // False for a store that does not exist yet (existingForProcessOrThrow).
    bool present() const { return dir_.valid(); }

private:
    SnapshotStore(std::string directory, UniqueFd dir)
        : directory_(std::move(directory)), dir_(std::move(dir)) {}
    std::string directory_;
    UniqueFd dir_; // the verified per-process directory; invalid if absent
};

// How long the directories of gone processes are kept (see Retention above).
struct StoreRetention {
    int64_t maxAgeSeconds = 7 * 24 * 3600;
    size_t maxGoneProcesses = 50;
};

// Applies the retention rule to the per-process directories under the base
// directory. Only what this store makes is touched: directories named
// PID-STARTTIME in the verified base, themselves verified (owned by the
// caller, not writable by others), and in them only the files the store
// writes; a directory holding anything else stays. Returns the names of the
// directories removed. Errors are swallowed: cleanup is a courtesy.
std::vector<std::string> removeStaleProcessDirectories(int baseFd, const StoreRetention& retention = {});

// Names are file names: letters, digits, '-', '_', '.'; not "now" or "peak" (diff's live names).
void validateSnapshotNameOrThrow(const std::string& name);

// All of fd's bytes, retrying EINTR; Error(Failure) naming path and errno.
std::string readAllOrThrow(int fd, const std::string& path);

} // namespace memtap::cli
