#include "cli/snapshot_store.h"

#include "inject/agent_values.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>

#include "attach/proc.h"
#include "base/error.h"

namespace memtap::cli {
namespace {

constexpr std::string_view kSuffix = ".snapshot";
constexpr std::string_view kJournalSuffix = ".mtj";
// Written into each per-process directory the store makes: the boot it was
// made in, since a PID and start time can recur after a reboot when /tmp persists.
constexpr const char* kBootIdFile = ".boot_id";
constexpr const char* kPrivateHint = "set XDG_RUNTIME_DIR to a directory only you can write";

bool
endsWith(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::optional<std::string>
processStartTime(pid_t pid) {
    auto start = attach::tryReadProcessStartTime(pid);
    return start ? std::optional<std::string>(std::to_string(*start)) : std::nullopt;
}

// This boot's random id (random(4), /proc/sys/kernel/random/boot_id); empty if unreadable.
std::string
currentBootId() {
    auto text = attach::readWholeFile("/proc/sys/kernel/random/boot_id").value_or("");
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
    return text;
}

[[noreturn]] void
refuseStore(const std::string& path, const std::string& cause, const std::string& hint) {
    throw Error(ExitCode::Failure, fmt::format("refusing snapshot store {}: {}", path, cause), hint);
}

// The whole rule for a directory the store may use, checked on an open fd so
// that what is checked is what is used.
std::optional<std::string>
whyNotPrivateDirectory(const struct stat& st) {
    if (!S_ISDIR(st.st_mode)) {
        return "it is not a directory";
    }
    if (st.st_uid != ::geteuid()) {
        return fmt::format("it belongs to uid {}, and memtap runs as uid {}", st.st_uid, ::geteuid());
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        return fmt::format("it is writable by group or others (mode {:04o})", st.st_mode & 07777);
    }
    return std::nullopt;
}

std::optional<std::string>
whyNotOwnFile(const struct stat& st) {
    if (!S_ISREG(st.st_mode)) {
        return "it is not a regular file";
    }
    if (st.st_uid != ::geteuid()) {
        return fmt::format("it belongs to uid {}, and memtap runs as uid {}", st.st_uid, ::geteuid());
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        return fmt::format("it is writable by group or others (mode {:04o})", st.st_mode & 07777);
    }
    return std::nullopt;
}

// Opens `name` in `parentFd` as a directory without following a symlink, and
// verifies it. With `create`, makes it first (mode 0700). Without, a missing
// directory is an invalid fd.
UniqueFd
openPrivateDirectoryOrThrow(int parentFd, const std::string& name, const std::string& path,
                            bool create) {
    if (create && ::mkdirat(parentFd, name.c_str(), 0700) != 0 && errno != EEXIST) {
        throw Error(ExitCode::Failure,
                    describeErrno(fmt::format("creating snapshot store {}", path), errno), kPrivateHint);
    }
    UniqueFd fd(::openat(parentFd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        int err = errno;
        if (err == ENOENT && !create) {
            return {};
        }
        struct stat st {};
        if (::fstatat(parentFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
            refuseStore(path,
                        "it is a symbolic link, which memtap never makes (someone may have planted it)",
                        fmt::format("remove it, or {}", kPrivateHint));
        }
        if (err == ENOTDIR) {
            refuseStore(path, "it is not a directory", fmt::format("remove it, or {}", kPrivateHint));
        }
        throw Error(ExitCode::Failure,
                    describeErrno(fmt::format("opening snapshot store {}", path), err), kPrivateHint);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        throw Error(ExitCode::Failure,
                    describeErrno(fmt::format("checking snapshot store {}", path), errno));
    }
    if (auto why = whyNotPrivateDirectory(st)) {
        refuseStore(
            path, *why,
            fmt::format("someone else may have made it to feed or catch your snapshots: check it and "
                        "remove it, or {}",
                        kPrivateHint));
    }
    return fd;
}

// The text of `file` in the verified directory `dirFd`, or nullopt if there is
// none. A symlink, a non-regular file, or a file someone else owns or could
// have written is refused, not read.
std::optional<std::string>
readOwnFileAtOrThrow(int dirFd, const std::string& dirPath, const std::string& file) {
    std::string path = fmt::format("{}/{}", dirPath, file);
    // O_NONBLOCK: a FIFO must not hang us before fstat can refuse it.
    UniqueFd fd(::openat(dirFd, file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd) {
        int err = errno;
        if (err == ENOENT) {
            return std::nullopt;
        }
        if (err == ELOOP) {
            throw Error(
                ExitCode::Failure,
                fmt::format("refusing snapshot file {}: it is a symbolic link, which memtap never makes",
                            path),
                "remove it and take the snapshot again");
        }
        throw Error(ExitCode::Failure, describeErrno(fmt::format("opening {}", path), err));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        throw Error(ExitCode::Failure, describeErrno(fmt::format("checking {}", path), errno));
    }
    if (auto why = whyNotOwnFile(st)) {
        throw Error(
            ExitCode::Failure, fmt::format("refusing snapshot file {}: {}", path, *why),
            "memtap reads only files it could have written: remove it and take the snapshot again");
    }
    return readAllOrThrow(fd.get(), path);
}

// Writes `file` in the verified directory `dirFd` atomically: an O_EXCL temp
// name (never followed, never someone else's), then renameat over the name.
void
writeFileAtOrThrow(int dirFd, const std::string& dirPath, const std::string& file,
                   const std::string& text) {
    // A leading '.' keeps temp names apart from snapshot names (which never start with one).
    std::string tmp = fmt::format(".{}.{}.tmp", file, ::getpid());
    std::string path = fmt::format("{}/{}", dirPath, file);
    UniqueFd fd(
        ::openat(dirFd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd && errno == EEXIST) {
        // Left by a memtap with our PID that died mid-write; the directory is verified ours.
        ::unlinkat(dirFd, tmp.c_str(), 0);
        fd.reset(
            ::openat(dirFd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    }
    if (!fd) {
        throw Error(ExitCode::Failure, describeErrno(fmt::format("writing {}", path), errno));
    }
    auto failAndRemove = [&](const char* what, int err) {
        ::unlinkat(dirFd, tmp.c_str(), 0);
        throw Error(ExitCode::Failure, describeErrno(fmt::format("{} {}", what, path), err));
    };
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            failAndRemove("writing", errno);
        }
        done += static_cast<size_t>(n);
    }
    if (::close(fd.release()) != 0) {
        failAndRemove("writing", errno);
    }
    if (::renameat(dirFd, tmp.c_str(), dirFd, file.c_str()) != 0) {
        failAndRemove("saving", errno);
    }
}

struct DirCloser {
    void operator()(DIR* dir) const { ::closedir(dir); }
};

// Entry names of the directory `dirFd` (through a fresh fd, so its offset is ours).
std::vector<std::string>
listDirectory(int dirFd) {
    std::vector<std::string> result;
    int fd = ::openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return result;
    }
    std::unique_ptr<DIR, DirCloser> dir(::fdopendir(fd));
    if (!dir) {
        ::close(fd);
        return result;
    }
    while (dirent* entry = ::readdir(dir.get())) {
        std::string name = entry->d_name;
        if (name != "." && name != "..") {
            result.push_back(std::move(name));
        }
    }
    return result;
}

// "PID-STARTTIME", both decimal: the only names the store gives directories.
std::optional<ProcessInstance>
parseInstanceName(const std::string& name) {
    size_t dash = name.find('-');
    auto digits = [](std::string_view s) {
        return !s.empty() && s.size() <= 20 &&
               std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (dash == std::string::npos || !digits(std::string_view(name).substr(0, dash)) ||
        !digits(std::string_view(name).substr(dash + 1)) || dash > 9) {
        return std::nullopt;
    }
    auto pid = inject::tryParseUnsigned(std::string_view(name).substr(0, dash));
    return ProcessInstance{static_cast<pid_t>(pid.value_or(0)), name.substr(dash + 1)};
}

std::string
instanceName(const ProcessInstance& instance) {
    return fmt::format("{}-{}", instance.pid, instance.startTime);
}

// "journal-N.mtj", N decimal: the only names the store gives journals.
std::optional<uint64_t>
journalNumber(const std::string& name) {
    constexpr std::string_view kPrefix = "journal-";
    if (name.size() <= kPrefix.size() + kJournalSuffix.size() ||
        name.compare(0, kPrefix.size(), kPrefix) != 0 || !endsWith(name, kJournalSuffix)) {
        return std::nullopt;
    }
    std::string digits =
        name.substr(kPrefix.size(), name.size() - kPrefix.size() - kJournalSuffix.size());
    if (digits.size() > 9) {
        return std::nullopt;
    }
    return inject::tryParseUnsigned(digits);
}

bool
isOwnTransientFile(const std::string& name) {
    return endsWith(name, kSuffix) || name == kBootIdFile || journalNumber(name) ||
           (name[0] == '.' && endsWith(name, ".tmp"));
}

} // namespace

StoreLocation
StoreLocation::fromEnvironment() {
    if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime && *runtime) {
        return {runtime, "memtap"};
    }
    return {"/tmp", fmt::format("memtap-{}", ::geteuid())};
}

ProcessInstance
ProcessInstance::ofPidOrThrow(pid_t pid) {
    auto start = processStartTime(pid);
    if (!start) {
        throw Error(ExitCode::NoSuchProcess, fmt::format("no process with PID {}", pid),
                    "check the PID with `ps` or `pgrep`");
    }
    return {pid, *start};
}

void
validateSnapshotNameOrThrow(const std::string& name) {
    bool ok = !name.empty() && name.size() <= 64 && name != "now" && name != "peak" && name[0] != '.' &&
              std::all_of(name.begin(), name.end(), [](char c) {
                  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
              });
    if (!ok) {
        throw Error(ExitCode::Usage, fmt::format("'{}' is not a valid snapshot name", name),
                    "use letters, digits, '-', '_' or '.' (and not 'now' or 'peak', which diff reads "
                    "from the agent)");
    }
}

std::vector<std::string>
removeStaleProcessDirectories(int baseFd, const StoreRetention& retention) {
    struct Gone {
        std::string name;
        UniqueFd dir;
        int64_t newest = 0; // newest mtime (seconds) of the directory and its files
    };
    std::vector<Gone> gone;
    std::vector<std::pair<std::string, UniqueFd>> doomed;
    const std::string boot = currentBootId();
    const int64_t now = static_cast<int64_t>(::time(nullptr));
    for (const auto& name : listDirectory(baseFd)) {
        auto instance = parseInstanceName(name);
        if (!instance) {
            continue;
        }
        UniqueFd dir(::openat(baseFd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        struct stat st {};
        if (!dir || ::fstat(dir.get(), &st) != 0 || whyNotPrivateDirectory(st)) {
            continue;
        }
        // Directories made before .boot_id existed have none; they are judged by PID and start time.
        std::optional<std::string> madeInBoot;
        try {
            madeInBoot = readOwnFileAtOrThrow(dir.get(), name, kBootIdFile);
        } catch (const Error&) {
            continue; // a .boot_id the store did not write: not ours to judge
        }
        if (madeInBoot && !boot.empty() && *madeInBoot != boot + "\n") {
            doomed.emplace_back(name, std::move(dir)); // another boot: its PIDs mean nothing now
            continue;
        }
        if (processStartTime(instance->pid) == instance->startTime) {
            continue; // it runs
        }
        int64_t newest = st.st_mtim.tv_sec;
        for (const auto& file : listDirectory(dir.get())) {
            struct stat fileStat {};
            if (::fstatat(dir.get(), file.c_str(), &fileStat, AT_SYMLINK_NOFOLLOW) == 0) {
                newest = std::max<int64_t>(newest, fileStat.st_mtim.tv_sec);
            }
        }
        if (now - newest > retention.maxAgeSeconds) {
            doomed.emplace_back(name, std::move(dir));
        } else {
            gone.push_back(Gone{name, std::move(dir), newest});
        }
    }
    // The newest maxGoneProcesses stay; ties keep a stable order by name.
    std::sort(gone.begin(), gone.end(), [](const Gone& a, const Gone& b) {
        return a.newest != b.newest ? a.newest > b.newest : a.name < b.name;
    });
    for (size_t i = retention.maxGoneProcesses; i < gone.size(); ++i) {
        doomed.emplace_back(gone[i].name, std::move(gone[i].dir));
    }
    std::vector<std::string> removed;
    for (auto& [name, dir] : doomed) {
        for (const auto& file : listDirectory(dir.get())) {
            if (isOwnTransientFile(file)) {
                ::unlinkat(dir.get(), file.c_str(), 0);
            }
        }
        // Fails (ENOTEMPTY) if something the store did not write is in it; then it stays.
        if (::unlinkat(baseFd, name.c_str(), AT_REMOVEDIR) == 0) {
            removed.push_back(name);
        }
    }
    return removed;
}

SnapshotStore
SnapshotStore::openOrThrow(const StoreLocation& where, const ProcessInstance& instance, bool create) {
    // The parent (/tmp or $XDG_RUNTIME_DIR) is the administrator's choice and
    // may be a symlink; everything memtap names itself is verified below.
    UniqueFd parent(::open(where.parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent) {
        if (errno == ENOENT && !create) {
            return SnapshotStore(fmt::format("{}/{}", where.path(), instanceName(instance)), {});
        }
        throw Error(ExitCode::Failure,
                    describeErrno(fmt::format("opening {} for the snapshot store", where.parent), errno),
                    "unset XDG_RUNTIME_DIR or point it at an existing directory");
    }
    const std::string basePath = where.path();
    const std::string path = fmt::format("{}/{}", basePath, instanceName(instance));
    UniqueFd base = openPrivateDirectoryOrThrow(parent.get(), where.name, basePath, create);
    if (!base) {
        return SnapshotStore(path, {});
    }
    if (create) {
        removeStaleProcessDirectories(base.get());
    }
    UniqueFd dir = openPrivateDirectoryOrThrow(base.get(), instanceName(instance), path, create);
    if (!dir) {
        return SnapshotStore(path, {});
    }
    auto madeInBoot = readOwnFileAtOrThrow(dir.get(), path, kBootIdFile);
    if (!madeInBoot && create) {
        writeFileAtOrThrow(dir.get(), path, kBootIdFile, currentBootId() + "\n");
    } else if (madeInBoot && !create) {
        // Same PID and start time in an earlier boot: another process's snapshots.
        std::string boot = currentBootId();
        if (!boot.empty() && *madeInBoot != boot + "\n") {
            return SnapshotStore(path, {});
        }
    }
    return SnapshotStore(path, std::move(dir));
}

SnapshotStore
SnapshotStore::forProcessOrThrow(pid_t pid) {
    return openOrThrow(StoreLocation::fromEnvironment(), ProcessInstance::ofPidOrThrow(pid), true);
}

SnapshotStore
SnapshotStore::existingForProcessOrThrow(pid_t pid) {
    return openOrThrow(StoreLocation::fromEnvironment(), ProcessInstance::ofPidOrThrow(pid), false);
}

std::optional<std::pair<SnapshotStore, ProcessInstance>>
SnapshotStore::mostRecentOfGoneProcessOrThrow(const StoreLocation& where, pid_t pid) {
    UniqueFd parent(::open(where.parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent) {
        return std::nullopt;
    }
    UniqueFd base = openPrivateDirectoryOrThrow(parent.get(), where.name, where.path(), false);
    if (!base) {
        return std::nullopt;
    }
    // Start times count clock ticks from boot, so within one boot the
    // highest is the latest instance; openOrThrow refuses other boots.
    std::optional<ProcessInstance> best;
    for (const auto& name : listDirectory(base.get())) {
        auto instance = parseInstanceName(name);
        if (!instance || instance->pid != pid) {
            continue;
        }
        auto startOf = [](const auto& i) { return inject::tryParseUnsigned(i->startTime).value_or(0); };
        if (!best || startOf(instance) > startOf(best)) {
            best = instance;
        }
    }
    if (!best) {
        return std::nullopt;
    }
    SnapshotStore store = openOrThrow(where, *best, false);
    if (!store.present()) {
        return std::nullopt;
    }
    return std::make_pair(std::move(store), *best);
}

bool
SnapshotStore::exists(const std::string& name) const {
    if (!dir_) {
        return false;
    }
    struct stat st {};
    std::string file = name + std::string(kSuffix);
    return ::fstatat(dir_.get(), file.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
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
    if (!dir_) {
        throw Error(ExitCode::Failure,
                    fmt::format("snapshot store {} was opened read-only", directory_));
    }
    writeFileAtOrThrow(dir_.get(), directory_, name + std::string(kSuffix), text);
}

std::string
SnapshotStore::loadOrThrow(const std::string& name) const {
    std::optional<std::string> text;
    if (dir_) {
        text = readOwnFileAtOrThrow(dir_.get(), directory_, name + std::string(kSuffix));
    }
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
    if (!dir_) {
        return result;
    }
    for (const auto& file : listDirectory(dir_.get())) {
        if (file.size() > kSuffix.size() && file[0] != '.' && endsWith(file, kSuffix)) {
            result.push_back(file.substr(0, file.size() - kSuffix.size()));
        }
    }
    std::sort(result.begin(), result.end());
    return result;
}

std::pair<std::string, UniqueFd>
SnapshotStore::createJournalOrThrow() const {
    if (!dir_) {
        throw Error(ExitCode::Failure,
                    fmt::format("snapshot store {} was opened read-only", directory_));
    }
    uint64_t next = 1;
    for (const auto& name : journalNames()) {
        next = std::max(next, *journalNumber(name) + 1);
    }
    // O_EXCL: another memtap recording the same process takes its own number.
    for (int attempt = 0; attempt < 100; ++attempt, ++next) {
        std::string name = fmt::format("journal-{}{}", next, kJournalSuffix);
        UniqueFd fd(::openat(dir_.get(), name.c_str(),
                             O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_APPEND | O_CLOEXEC, 0600));
        if (fd) {
            return {name, std::move(fd)};
        }
        if (errno != EEXIST) {
            throw Error(ExitCode::Failure,
                        describeErrno(fmt::format("creating {}/{}", directory_, name), errno));
        }
    }
    throw Error(ExitCode::Failure, fmt::format("no free journal name in {}", directory_));
}

std::vector<std::string>
SnapshotStore::journalNames() const {
    std::vector<std::pair<uint64_t, std::string>> found;
    if (dir_) {
        for (const auto& file : listDirectory(dir_.get())) {
            if (auto number = journalNumber(file)) {
                found.emplace_back(*number, file);
            }
        }
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> names;
    for (auto& [number, name] : found) {
        names.push_back(std::move(name));
    }
    return names;
}

std::string
SnapshotStore::loadJournalOrThrow(const std::string& name) const {
    std::optional<std::string> bytes;
    if (dir_ && journalNumber(name)) {
        bytes = readOwnFileAtOrThrow(dir_.get(), directory_, name);
    }
    if (!bytes) {
        throw Error(ExitCode::Failure, fmt::format("no journal {} in {}", name, directory_));
    }
    return *bytes;
}

void
SnapshotStore::removeJournal(const std::string& name) const {
    if (dir_ && journalNumber(name)) {
        ::unlinkat(dir_.get(), name.c_str(), 0);
    }
}

std::string
readAllOrThrow(int fd, const std::string& path) {
    std::string text;
    char buffer[65536];
    while (true) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            throw Error(ExitCode::Failure, describeErrno(fmt::format("reading {}", path), errno));
        }
        if (n == 0) {
            return text;
        }
        text.append(buffer, static_cast<size_t>(n));
    }
}

} // namespace memtap::cli
