// report: what a journal holds, read from the journal alone, so it works
// after the process is gone.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "attach/proc.h"
#include "base/error.h"
#include "cli/commands.h"
#include "cli/snapshot_store.h"
#include "cli/source_lines.h"
#include "inject/agent_values.h"
#include "report/journal.h"
#include "report/journal_report.h"

namespace memtap::cli {
namespace {

struct JournalBytes {
    std::string path;
    std::string bytes;
    std::optional<pid_t> runningPid; // for source lines through /proc/PID/root
};

JournalBytes
readJournalFileOrThrow(const std::string& path) {
    // O_NONBLOCK: a FIFO must not hang us before fstat can refuse it.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!fd) {
        throw Error(ExitCode::Failure, describeErrno(fmt::format("opening {}", path), errno),
                    "give a journal file, or the PID whose newest stored journal to read");
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        throw Error(ExitCode::Failure, fmt::format("{} is not a regular file", path));
    }
    JournalBytes result{path, {}, std::nullopt};
    char buffer[65536];
    while (true) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            throw Error(ExitCode::Failure, describeErrno(fmt::format("reading {}", path), errno));
        }
        if (n == 0) {
            return result;
        }
        result.bytes.append(buffer, static_cast<size_t>(n));
    }
}

// The newest journal stored for PID: its running instance's, or that of
// the most recent instance stored in this boot when it is gone.
JournalBytes
newestStoredJournalOrThrow(pid_t pid) {
    bool running = attach::tryReadProcessStartTime(pid).has_value();
    std::optional<SnapshotStore> store;
    if (running) {
        store.emplace(SnapshotStore::existingForProcessOrThrow(pid));
    } else if (auto found = SnapshotStore::mostRecentOfGoneProcessOrThrow(
                   StoreLocation::fromEnvironment(), pid)) {
        store.emplace(std::move(found->first));
    }
    auto names = store ? store->journalNames() : std::vector<std::string>{};
    if (names.empty()) {
        throw Error(
            running ? ExitCode::Failure : ExitCode::NoSuchProcess,
            running ? fmt::format("no journal stored for process {}", pid)
                    : fmt::format("no process with PID {}, and no journal stored for it", pid),
            fmt::format("`memtap record {}` (or `memtap watch {}`) keeps one while the process runs",
                        pid, pid));
    }
    JournalBytes result{fmt::format("{}/{}", store->directory(), names.back()),
                        store->loadJournalOrThrow(names.back()), std::nullopt};
    if (running) {
        result.runningPid = pid;
    } else {
        std::fprintf(stderr, "memtap: process %d is gone; reading the journal stored for it\n", pid);
    }
    return result;
}

bool
allDigits(const std::string& word) {
    return !word.empty() &&
           std::all_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int
runReport(const ParsedArgs& args) {
    const std::string& what = args.positional[0];
    report::JournalReportOptions options;
    if (auto v = args.value("--top")) {
        options.top = parseUnsignedOrThrow(*v, "--top", 1, 100000);
    }
    if (auto v = args.value("--by")) {
        auto by = report::parseGroupBy(*v);
        if (!by) {
            throw Error(ExitCode::Usage,
                        fmt::format("--by must be lineno, filename or traceback, not '{}'", *v));
        }
        options.by = *by;
    }
    // A word of digits is a PID unless a file of that name is here.
    struct stat st {};
    bool isPid = allDigits(what) && ::stat(what.c_str(), &st) != 0;
    JournalBytes found =
        isPid ? newestStoredJournalOrThrow(parsePidOrThrow(what)) : readJournalFileOrThrow(what);
    report::Journal journal;
    try {
        journal = report::parseJournalOrThrow(found.bytes);
    } catch (const Error& e) {
        throw Error(e.code(), fmt::format("{}: {}", found.path, e.what()), e.hint());
    }
    // Source lines are read through the process's own root while it runs,
    // else from this filesystem (the same files, unless it ran in a container).
    pid_t sourcePid = found.runningPid.value_or(0);
    auto recordedStart = inject::tryParseUnsigned(journal.headers.front().startTime);
    if (sourcePid == 0 && recordedStart &&
        attach::tryReadProcessStartTime(static_cast<pid_t>(journal.headers.front().pid)) ==
            recordedStart) {
        sourcePid = static_cast<pid_t>(journal.headers.front().pid);
    }
    SourceLines sources(sourcePid != 0 ? sourcePid : ::getpid());
    options.path = found.path;
    options.sourceLine = [&](const std::string& file, int line) { return sources.line(file, line); };
    std::string out = args.has("--json") ? report::renderJournalJson(journal, options)
                                         : report::renderJournalText(journal, options);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

} // namespace

std::vector<CommandSpec>
reportCommands() {
    return {
        {"report",
         "FILE|PID",
         "Read a journal kept by `memtap record` or `memtap watch`.",
         "Prints the process, its Python and mode, when the journal was recorded and how the\n"
         "recording ended (the process's death, with its exit code or signal, when it was seen),\n"
         "a compact timeline (time, RSS, traced, peak), the sites that grew from the first record\n"
         "to the last, and the breakdown at the highest peak recorded. A PID reads the newest\n"
         "journal in the snapshot store of that process, running or gone. A torn last record\n"
         "(the writer was killed mid-write) is ignored with a note; damage before it is an error\n"
         "naming the record.",
         1,
         1,
         {{"--top", "N", "sites per table (default 10)"},
          {"--by", "KEY", "group by lineno (default), filename or traceback"},
          {"--json", "", "print JSON"}},
         runReport},
    };
}

} // namespace memtap::cli
