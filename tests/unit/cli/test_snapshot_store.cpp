// The snapshot store trusts only what it made: planted symlinks, directories
// and files are refused with an error naming the path, and cleanup removes
// only its own directories of processes that are gone. Each case runs in a
// private temporary directory with real files, directories and processes.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "cli/snapshot_store.h"

using namespace memtap::cli;
using memtap::ExitCode;
namespace fs = std::filesystem;

namespace {

class TempDir {
public:
    TempDir() {
        char pattern[] = "/tmp/memtap-store-test-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored); // never follows symlinks
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

std::string
readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void
writeFile(const std::string& path, const std::string& text, mode_t mode = 0600) {
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
    }
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

// The Error a call throws (its code and "what (hint)"), or Ok.
struct Outcome {
    ExitCode code = ExitCode::Ok;
    std::string text;
};

Outcome
outcomeOf(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const memtap::Error& e) {
        return {e.code(), std::string(e.what()) + " (" + e.hint() + ")"};
    }
    return {};
}

ProcessInstance
self() {
    return ProcessInstance::ofPidOrThrow(::getpid());
}

bool
isDirectory(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

const char* kText =
    "memtap-snapshot 1\nmode exact\nsample_bytes 0\ntraced_bytes 0\ntraced_count 0\nend\n";

} // namespace

TEST_CASE("the store saves, lists and loads in private files", "[store]") {
    TempDir tmp;
    StoreLocation where{tmp.path(), "memtap-test"};
    auto store = SnapshotStore::openOrThrow(where, self(), true);
    REQUIRE(store.present());
    CHECK(store.nextDefaultName() == "s1");
    store.saveOrThrow("s1", kText);
    store.saveOrThrow("before", "other");
    store.saveOrThrow("s1", kText); // replaces
    CHECK(store.names() == std::vector<std::string>{"before", "s1"});
    CHECK(store.nextDefaultName() == "s2");
    CHECK(store.loadOrThrow("s1") == kText);

    struct stat st {};
    REQUIRE(::stat(where.path().c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    REQUIRE(::stat(store.directory().c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    REQUIRE(::stat((store.directory() + "/s1.snapshot").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    // No temp file is left behind, and the directory says which boot made it.
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(store.directory())) {
        files.push_back(entry.path().filename());
    }
    std::sort(files.begin(), files.end());
    CHECK(files == std::vector<std::string>{".boot_id", "before.snapshot", "s1.snapshot"});
    CHECK(readFile(store.directory() + "/.boot_id") == readFile("/proc/sys/kernel/random/boot_id"));

    auto missing = outcomeOf([&] { store.loadOrThrow("nope"); });
    CHECK(missing.code == ExitCode::Usage);
    CHECK_THAT(missing.text, Catch::Contains("known snapshots: before, s1"));
}

TEST_CASE("a store opened to read creates nothing", "[store]") {
    TempDir tmp;
    StoreLocation where{tmp.path(), "memtap-test"};
    auto store = SnapshotStore::openOrThrow(where, self(), false);
    CHECK_FALSE(store.present());
    CHECK(store.names().empty());
    CHECK(store.nextDefaultName() == "s1");
    CHECK(outcomeOf([&] { store.loadOrThrow("s1"); }).code == ExitCode::Usage);
    CHECK_FALSE(fs::exists(where.path()));

    // With the base there but not the process's directory: still nothing made.
    SnapshotStore::openOrThrow(where, ProcessInstance{::getpid(), "1"}, true);
    auto again = SnapshotStore::openOrThrow(where, self(), false);
    CHECK_FALSE(again.present());
    CHECK_FALSE(fs::exists(again.directory()));
    CHECK(outcomeOf([] { ProcessInstance::ofPidOrThrow(4194000); }).code == ExitCode::NoSuchProcess);
}

TEST_CASE("a planted symlink for a store directory is refused, not followed", "[store]") {
    TempDir tmp;
    StoreLocation where{tmp.path(), "memtap-test"};
    std::string victim = tmp.path() + "/victim";
    REQUIRE(::mkdir(victim.c_str(), 0700) == 0);
    REQUIRE(::symlink(victim.c_str(), where.path().c_str()) == 0);
    for (bool create : {true, false}) {
        auto refused = outcomeOf([&] { SnapshotStore::openOrThrow(where, self(), create); });
        CHECK(refused.code == ExitCode::Failure);
        CHECK_THAT(refused.text, Catch::Contains("refusing snapshot store " + where.path()) &&
                                     Catch::Contains("symbolic link") && Catch::Contains("remove it"));
    }
    CHECK(fs::is_empty(victim));

    // One level down: the base is ours, the per-process directory is a link.
    REQUIRE(::unlink(where.path().c_str()) == 0);
    REQUIRE(::mkdir(where.path().c_str(), 0700) == 0);
    auto instance = self();
    std::string dir = fmt::format("{}/{}-{}", where.path(), instance.pid, instance.startTime);
    REQUIRE(::symlink(victim.c_str(), dir.c_str()) == 0);
    auto refused = outcomeOf([&] { SnapshotStore::openOrThrow(where, instance, true); });
    CHECK(refused.code == ExitCode::Failure);
    CHECK_THAT(refused.text, Catch::Contains(dir) && Catch::Contains("symbolic link"));
    CHECK(fs::is_empty(victim));
}

TEST_CASE("a store directory others can write is refused", "[store]") {
    TempDir tmp;
    StoreLocation where{tmp.path(), "memtap-test"};
    REQUIRE(::mkdir(where.path().c_str(), 0700) == 0);
    for (mode_t mode : {0777, 0770, 0702}) {
        REQUIRE(::chmod(where.path().c_str(), mode) == 0);
        for (bool create : {true, false}) {
            auto refused = outcomeOf([&] { SnapshotStore::openOrThrow(where, self(), create); });
            CHECK(refused.code == ExitCode::Failure);
            CHECK_THAT(refused.text, Catch::Contains(where.path()) &&
                                         Catch::Contains(fmt::format("mode {:04o}", mode)));
        }
    }
    REQUIRE(::chmod(where.path().c_str(), 0755) == 0); // readable by others is fine
    CHECK(SnapshotStore::openOrThrow(where, self(), true).present());

    // A plain file where the directory should be.
    StoreLocation file{tmp.path(), "a-file"};
    writeFile(file.path(), "x");
    auto refused = outcomeOf([&] { SnapshotStore::openOrThrow(file, self(), true); });
    CHECK(refused.code == ExitCode::Failure);
    CHECK_THAT(refused.text, Catch::Contains("not a directory"));
}

TEST_CASE("a store directory someone else owns is refused (root only)", "[store]") {
    if (::geteuid() != 0) {
        WARN("not root: cannot make a directory owned by another user here");
        return;
    }
    TempDir tmp;
    StoreLocation where{tmp.path(), "memtap-test"};
    REQUIRE(::mkdir(where.path().c_str(), 0700) == 0);
    REQUIRE(::chown(where.path().c_str(), 65534, 65534) == 0);
    for (bool create : {true, false}) {
        auto refused = outcomeOf([&] { SnapshotStore::openOrThrow(where, self(), create); });
        CHECK(refused.code == ExitCode::Failure);
        CHECK_THAT(refused.text,
                   Catch::Contains(where.path()) && Catch::Contains("belongs to uid 65534"));
    }
}

TEST_CASE("snapshot files are read only if they are the caller's own", "[store]") {
    TempDir tmp;
    StoreLocation where{tmp.path(), "memtap-test"};
    auto store = SnapshotStore::openOrThrow(where, self(), true);
    std::string victim = tmp.path() + "/victim";
    writeFile(victim, "precious\n");

    // A symlink is neither read nor written through: saving replaces the link itself.
    REQUIRE(::symlink(victim.c_str(), (store.directory() + "/link.snapshot").c_str()) == 0);
    auto refused = outcomeOf([&] { store.loadOrThrow("link"); });
    CHECK(refused.code == ExitCode::Failure);
    CHECK_THAT(refused.text, Catch::Contains(store.directory() + "/link.snapshot") &&
                                 Catch::Contains("symbolic link"));
    store.saveOrThrow("link", kText);
    CHECK(readFile(victim) == "precious\n");
    CHECK(store.loadOrThrow("link") == kText);

    writeFile(store.directory() + "/open.snapshot", kText, 0666);
    refused = outcomeOf([&] { store.loadOrThrow("open"); });
    CHECK(refused.code == ExitCode::Failure);
    CHECK_THAT(refused.text, Catch::Contains("open.snapshot") && Catch::Contains("mode 0666"));

    REQUIRE(::mkfifo((store.directory() + "/fifo.snapshot").c_str(), 0600) == 0);
    refused = outcomeOf([&] { store.loadOrThrow("fifo"); }); // must not block
    CHECK_THAT(refused.text, Catch::Contains("not a regular file"));

    if (::geteuid() == 0) {
        writeFile(store.directory() + "/theirs.snapshot", kText, 0600);
        REQUIRE(::chown((store.directory() + "/theirs.snapshot").c_str(), 65534, 65534) == 0);
        refused = outcomeOf([&] { store.loadOrThrow("theirs"); });
        CHECK(refused.code == ExitCode::Failure);
        CHECK_THAT(refused.text,
                   Catch::Contains("theirs.snapshot") && Catch::Contains("belongs to uid 65534"));
    }
}

namespace {

// Sets the mtime of a directory and everything in it to `secondsAgo` in the past.
void
age(const std::string& dir, int64_t secondsAgo) {
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = ::time(nullptr) - secondsAgo;
    times[0].tv_nsec = times[1].tv_nsec = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
        REQUIRE(::utimensat(AT_FDCWD, entry.path().c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
    }
    REQUIRE(::utimensat(AT_FDCWD, dir.c_str(), times, 0) == 0);
}

} // namespace

TEST_CASE("cleanup keeps gone processes' directories as evidence, within the retention rule",
          "[store]") {
    TempDir tmp;
    StoreLocation where{tmp.path(), "memtap-test"};

    // A real process that then exits: its directory is evidence and stays.
    int gate[2];
    REQUIRE(::pipe(gate) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        char c;
        ::close(gate[1]);
        (void)::read(gate[0], &c, 1);
        ::_exit(0);
    }
    ::close(gate[0]);
    auto gone = ProcessInstance::ofPidOrThrow(child);
    auto goneStore = SnapshotStore::openOrThrow(where, gone, true);
    goneStore.saveOrThrow("s1", kText);
    auto [journalName, journalFd] = goneStore.createJournalOrThrow();
    CHECK(journalName == "journal-1.mtj");
    ::close(gate[1]);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);

    // A live PID with another start time: a reused PID, i.e. a gone process: kept too.
    auto reused = ProcessInstance{::getpid(), "1"};
    SnapshotStore::openOrThrow(where, reused, true).saveOrThrow("s1", kText);
    // A live instance whose .boot_id names another boot: removed.
    int other[2];
    REQUIRE(::pipe(other) == 0);
    pid_t sibling = ::fork();
    if (sibling == 0) {
        char c;
        ::close(other[1]);
        (void)::read(other[0], &c, 1);
        ::_exit(0);
    }
    ::close(other[0]);
    auto earlierBoot = ProcessInstance::ofPidOrThrow(sibling);
    auto stale = SnapshotStore::openOrThrow(where, earlierBoot, true);
    writeFile(stale.directory() + "/.boot_id", "00000000-0000-0000-0000-000000000000\n");
    // A gone process whose newest file is 8 days old: removed, its journal with it.
    auto old = ProcessInstance{4190001, "5"};
    auto oldStore = SnapshotStore::openOrThrow(where, old, true);
    oldStore.saveOrThrow("s1", kText);
    oldStore.createJournalOrThrow();
    age(oldStore.directory(), 8 * 24 * 3600);
    // One 6 days old: kept.
    auto recent = ProcessInstance{4190002, "5"};
    auto recentStore = SnapshotStore::openOrThrow(where, recent, true);
    recentStore.saveOrThrow("s1", kText);
    age(recentStore.directory(), 6 * 24 * 3600);
    // A gone process's directory with a file the store never writes: left alone.
    std::string foreign = fmt::format("{}/{}-{}", where.path(), child, "7");
    REQUIRE(::mkdir(foreign.c_str(), 0700) == 0);
    writeFile(foreign + "/notes.txt", "mine");
    age(foreign, 30 * 24 * 3600);
    // A symlink with a store-like name: neither followed nor removed.
    std::string victim = tmp.path() + "/victim";
    REQUIRE(::mkdir(victim.c_str(), 0700) == 0);
    writeFile(victim + "/s1.snapshot", kText);
    std::string link = fmt::format("{}/{}-{}", where.path(), child, "8");
    REQUIRE(::symlink(victim.c_str(), link.c_str()) == 0);
    // A name the store never gives.
    std::string other_name = where.path() + "/keep";
    REQUIRE(::mkdir(other_name.c_str(), 0700) == 0);

    auto live = SnapshotStore::openOrThrow(where, self(), true); // runs the cleanup
    live.saveOrThrow("s1", kText);

    CHECK(isDirectory(goneStore.directory()));
    CHECK(readFile(goneStore.directory() + "/s1.snapshot") == kText);
    CHECK(fs::exists(goneStore.directory() + "/journal-1.mtj"));
    CHECK(isDirectory(fmt::format("{}/{}-1", where.path(), ::getpid())));
    CHECK_FALSE(isDirectory(stale.directory()));
    CHECK_FALSE(isDirectory(oldStore.directory()));
    CHECK(isDirectory(recentStore.directory()));
    CHECK(isDirectory(live.directory()));
    CHECK(readFile(foreign + "/notes.txt") == "mine");
    CHECK(fs::is_symlink(link));
    CHECK(readFile(victim + "/s1.snapshot") == kText);
    CHECK(isDirectory(other_name));

    // The gone PID's store is found again by PID, journal included.
    auto found = SnapshotStore::mostRecentOfGoneProcessOrThrow(where, child);
    REQUIRE(found);
    CHECK(found->first.journalNames() == std::vector<std::string>{"journal-1.mtj"});

    ::close(other[1]);
    REQUIRE(::waitpid(sibling, &status, 0) == sibling);
}

TEST_CASE("cleanup keeps the newest 50 gone processes and never a running one", "[store]") {
    TempDir tmp;
    StoreLocation where{tmp.path(), "memtap-test"};
    // 53 gone processes, the i-th i+1 minutes old, made as the store makes
    // them (without its cleanup running in between); the running one older than all.
    auto live = SnapshotStore::openOrThrow(where, self(), true);
    for (int i = 0; i < 53; ++i) {
        std::string dir = fmt::format("{}/{}-5", where.path(), 4190100 + i);
        REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
        writeFile(dir + "/.boot_id", readFile("/proc/sys/kernel/random/boot_id"));
        writeFile(dir + "/s1.snapshot", kText);
        age(dir, 60 * (i + 1));
    }
    live.saveOrThrow("s1", kText);
    age(live.directory(), 30 * 24 * 3600);
    SnapshotStore::openOrThrow(where, self(), true); // runs the cleanup
    for (int i = 0; i < 53; ++i) {
        INFO("gone process " << i);
        CHECK(isDirectory(fmt::format("{}/{}-5", where.path(), 4190100 + i)) == (i < 50));
    }
    CHECK(isDirectory(live.directory()));

    // An explicit rule: the newest 2.
    memtap::UniqueFd base(::open(where.path().c_str(), O_RDONLY | O_DIRECTORY));
    auto removed = removeStaleProcessDirectories(base.get(), StoreRetention{7 * 24 * 3600, 2});
    CHECK(removed.size() == 48);
    CHECK(isDirectory(fmt::format("{}/{}-5", where.path(), 4190100)));
    CHECK(isDirectory(fmt::format("{}/{}-5", where.path(), 4190101)));
    CHECK_FALSE(isDirectory(fmt::format("{}/{}-5", where.path(), 4190102)));
    CHECK(isDirectory(live.directory()));
}

TEST_CASE("journals in the store get the next free number and are read as own files", "[store]") {
    TempDir tmp;
    StoreLocation where{tmp.path(), "memtap-test"};
    auto store = SnapshotStore::openOrThrow(where, self(), true);
    auto [first, fd1] = store.createJournalOrThrow();
    auto [second, fd2] = store.createJournalOrThrow();
    CHECK(first == "journal-1.mtj");
    CHECK(second == "journal-2.mtj");
    REQUIRE(::write(fd2.get(), "abc", 3) == 3);
    struct stat st {};
    REQUIRE(::stat((store.directory() + "/" + second).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(store.loadJournalOrThrow(second) == "abc");
    store.removeJournal(first);
    CHECK(store.journalNames() == std::vector<std::string>{"journal-2.mtj"});
    // A planted symlink is neither numbered over nor read.
    std::string victim = tmp.path() + "/victim";
    writeFile(victim, "precious\n");
    REQUIRE(::symlink(victim.c_str(), (store.directory() + "/journal-3.mtj").c_str()) == 0);
    auto [third, fd3] = store.createJournalOrThrow();
    CHECK(third == "journal-4.mtj");
    auto refused = outcomeOf([&] { store.loadJournalOrThrow("journal-3.mtj"); });
    CHECK(refused.code == ExitCode::Failure);
    CHECK_THAT(refused.text, Catch::Contains("symbolic link"));
    CHECK(readFile(victim) == "precious\n");
    // Names the store does not give are not journals.
    CHECK(outcomeOf([&] { store.loadJournalOrThrow("../victim"); }).code == ExitCode::Failure);
}
