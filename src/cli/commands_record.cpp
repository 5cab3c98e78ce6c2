// record: a journal of periodic snapshots that outlives the process
// (src/report/journal.h). The order of the owners in runRecord is the
// cleanup policy, as in watch: the journal file is opened (and a bad -o
// refused) before anything is attached, signals are read as data before the
// attach, and the agent is detached (only if record attached it) before the
// signals are unblocked.
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "attach/proc.h"
#include "base/error.h"
#include "cli/agent_lease.h"
#include "cli/commands.h"
#include "cli/journal_file.h"
#include "cli/snapshot_store.h"
#include "cli/target_death.h"
#include "cli/target_status.h"
#include "cli/terminal.h"
#include "cli/uwsgi.h"
#include "report/snapshot.h"
#include "report/text_report.h"

namespace memtap::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct RecordSettings {
    pid_t pid = 0;
    std::chrono::milliseconds interval{10000};
    std::optional<std::chrono::milliseconds> duration;
    uint64_t count = 0; // 0: until stopped
    std::optional<std::string> output;
    uint64_t maxBytes = kRecordJournalLimit;
    bool progress = false;
    inject::AttachOptions attach;
    ModeFlags modeFlags;
};

std::chrono::milliseconds
millisecondsOrThrow(const std::string& word, const char* what) {
    double seconds = parseSecondsOrThrow(word, what);
    return std::chrono::milliseconds(std::max<int64_t>(1, std::llround(seconds * 1000)));
}

RecordSettings
settingsFrom(const ParsedArgs& args) {
    RecordSettings settings;
    settings.pid = parsePidOrThrow(args.positional[0]);
    if (auto v = args.value("--interval")) {
        settings.interval = millisecondsOrThrow(*v, "--interval");
    }
    if (auto v = args.value("--duration")) {
        settings.duration = millisecondsOrThrow(*v, "--duration");
    }
    if (auto v = args.value("--count")) {
        settings.count = parseUnsignedOrThrow(*v, "--count", 1, 1000000000);
    }
    if (auto v = args.value("-o")) {
        if (v->empty()) {
            throw Error(ExitCode::Usage, "-o needs a file name");
        }
        settings.output = *v;
    }
    if (auto v = args.value("--max-bytes")) {
        settings.maxBytes = parseByteSizeOrThrow(*v, "--max-bytes");
    }
    settings.progress = args.has("--progress") || ::isatty(STDERR_FILENO) == 1;
    settings.attach = attachOptionsFrom(args);
    settings.modeFlags = modeFlagsFrom(args);
    return settings;
}

// A pidfd (pidfd_open(2), Linux 5.3) polls readable once the process has
// exited, so a death is noticed at once, not at the next interval; without
// one (an older kernel) the next sample finds it.
UniqueFd
tryOpenPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
    (void)pid;
    return {};
#endif
}

// One interval's record: the agent's figures, RSS, the snapshot, and the
// peak breakdown when the peak moved since the last record that carried it.
report::JournalSample
takeSampleOrThrow(pid_t pid, const JournalFile& journal) {
    auto status = agentStatusOrThrow(pid);
    int64_t rss = readRssBytes(pid);
    auto now = report::parseSnapshotOrThrow(takeSnapshotTextOrThrow(pid));
    std::optional<report::Snapshot> peak;
    if (status.peakTracedBytes && journal.wantsPeak(*status.peakTracedBytes, status.peakUnixMs)) {
        peak = report::parseSnapshotOrThrow(takePeakSnapshotTextOrThrow(pid));
    }
    return journalSampleFrom(status, rss, unixNowMs(), std::move(now), std::move(peak));
}

const char*
signalName(int signal) {
    return signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "SIGHUP";
}

int
runRecord(const ParsedArgs& args) {
    RecordSettings settings = settingsFrom(args);
    pid_t pid = settings.pid;
    explainUwsgiMasterOrContinue(pid, "record");
    ProcessInstance instance = ProcessInstance::ofPidOrThrow(pid);
    // Every file problem (a bad -o, a refused store) before the attach.
    JournalFile journal = settings.output ? JournalFile::openOutputOrThrow(*settings.output, instance)
                                          : JournalFile::createInStoreOrThrow(instance);
    journal.setLimit(settings.maxBytes);
    SignalInbox inbox(false);
    std::optional<AgentLease> lease;
    try {
        lease.emplace(AgentLease::attachOrThrow(pid, settings.attach, settings.modeFlags, "record"));
    } catch (...) {
        journal.removeIfUnused();
        throw;
    }
    UniqueFd pidfd = tryOpenPidfd(pid);
    const uint64_t startTime = inject::tryParseUnsigned(instance.startTime).value_or(0);
    uint64_t records = 0;
    const auto started = Clock::now();
    // A target that died under us is the news, not the failed request that
    // found it: the journal gets an end record saying how, and is kept. Any
    // other failure ends the journal too, saying what it was.
    auto endOrRethrow = [&](const Error& error, const char* when) {
        auto death = tryDescribeDeath(pid, startTime);
        if (!death) {
            try {
                journal.endOrThrow(report::JournalEnd{unixNowMs(), "failed", error.what()});
            } catch (const Error&) {
                // The journal's own failure: the first error is the news.
            }
            throw;
        }
        lease->forget();
        journal.endOrThrow(report::JournalEnd{unixNowMs(), "died", *death});
        throw Error(ExitCode::NoSuchProcess, fmt::format("process {} died {}: {}", pid, when, *death),
                    fmt::format("{} record{} kept: `memtap report {}`", records, records == 1 ? "" : "s",
                                journal.path()));
    };
    try {
        journal.startOrThrow(journalHeaderFrom(instance, agentStatusOrThrow(pid), lease->python(),
                                               static_cast<uint64_t>(settings.interval.count()),
                                               "record"));
    } catch (const Error& e) {
        endOrRethrow(e, "while the recording started");
    }
    // The path on stdout at once, so a script has it even if memtap is killed later.
    std::printf("%s\n", journal.path().c_str());
    std::fflush(stdout);
    noteToStderr(fmt::format("recording process {} every {} s into {} (Ctrl-C stops)", pid,
                             static_cast<double>(settings.interval.count()) / 1000, journal.path()));

    std::string stopped;
    auto next = Clock::now();
    while (stopped.empty()) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now());
        pollfd fds[2] = {{inbox.fd(), POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
        if (::poll(fds, pidfd ? 2 : 1, static_cast<int>(std::max<int64_t>(0, left.count()))) < 0 &&
            errno != EINTR) {
            throw Error(ExitCode::Failure, describeErrno("poll", errno));
        }
        for (int signal : inbox.drain()) {
            stopped = signalName(signal);
        }
        if (!stopped.empty()) {
            break;
        }
        bool exited = pidfd && (fds[1].revents & (POLLIN | POLLHUP)) != 0;
        if (!exited && Clock::now() < next) {
            continue;
        }
        report::JournalSample sample;
        try {
            if (exited) {
                throw Error(ExitCode::NoSuchProcess, fmt::format("process {} exited", pid));
            }
            sample = takeSampleOrThrow(pid, journal);
            if (!journal.appendSampleOrThrow(sample)) {
                stopped = "size limit";
                noteToStderr(
                    fmt::format("the journal reached its size limit ({}); stopping (--max-bytes "
                                "sets another)",
                                report::formatSize(static_cast<double>(journal.limit()), false)));
                break;
            }
        } catch (const Error& e) {
            endOrRethrow(e, "while recorded");
        }
        ++records;
        if (settings.progress) {
            noteToStderr(fmt::format(
                "record {}: rss {}, traced {}{}", records,
                report::formatSize(static_cast<double>(sample.rssBytes), false),
                report::formatSize(static_cast<double>(sample.tracedBytes), false),
                sample.peakTracedBytes >= 0
                    ? ", peak " + report::formatSize(static_cast<double>(sample.peakTracedBytes), false)
                    : ""));
        }
        if (settings.count != 0 && records >= settings.count) {
            stopped = "--count";
        } else if (settings.duration &&
                   Clock::now() - started + settings.interval > *settings.duration) {
            stopped = "--duration";
        }
        next = std::max(next + settings.interval, Clock::now());
    }
    journal.endOrThrow(report::JournalEnd{unixNowMs(), "stopped", stopped});
    if (stopped.rfind("SIG", 0) == 0) {
        noteToStderr(fmt::format("stopping on {}", stopped));
    }
    lease->endOrThrow();
    noteToStderr(fmt::format("{} record{} in {} (`memtap report {}` reads it)", records,
                             records == 1 ? "" : "s", journal.path(), journal.path()));
    return 0;
}

} // namespace

std::vector<CommandSpec>
recordCommands() {
    auto options = std::vector<OptionSpec>{
        {"-o", "FILE",
         "the journal: a new or empty file, or this process's journal (appended to); default: a new "
         "journal-N.mtj in its snapshot store"},
        {"--interval", "S", "seconds between records (default 10; fractions allowed)"},
        {"--duration", "S", "stop after S seconds"},
        {"--count", "K", "stop after K records"},
        {"--max-bytes", "N",
         "stop when the journal would grow past N bytes (default 1G; K/M/G/T suffixes)"},
        {"--progress", "", "a line per record on stderr even when it is not a terminal"},
    };
    auto attach = attachOptionSpecs();
    options.insert(options.end(), attach.begin(), attach.end());
    return {
        {"record", "PID", "Keep a journal of periodic snapshots that outlives the process.",
         "Attaches if needed, then every interval appends one record to the journal: wall clock,\n"
         "RSS, traced bytes and count, the traced peak and its time, the snapshot, and the breakdown\n"
         "at the peak when the peak moved. Each record is written with one write() and fdatasync(),\n"
         "so an OOM kill of the process (or of memtap) loses at most the last interval. Prints the\n"
         "journal's path on stdout when it starts; a line per record on stderr when stderr is a\n"
         "terminal (or with --progress). `memtap report FILE` (or `memtap report PID`) reads it,\n"
         "also after the process is gone.\n"
         "Stopping (Ctrl-C, SIGTERM, --count, --duration) writes an end record and detaches if\n"
         "record attached. A process that dies while recorded ends record with how it died (exit\n"
         "code or signal), an end record saying so, and exit 3. A -o FILE that exists and is not a\n"
         "journal of this process is refused before attaching. The record that would take the\n"
         "journal past --max-bytes is not written: an end record says so, and record stops.",
         1, 1, options, runRecord},
    };
}

} // namespace memtap::cli
