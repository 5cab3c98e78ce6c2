// watch: a live view of growing allocation sites, on a terminal or as plain
// reports for logs. The order of the owners in runWatch is the cleanup
// policy: signals are read as data before anything is attached, the agents
// are detached (only where watch attached them) after the terminal is
// restored, and the signals stay blocked until every detach has finished.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <optional>

#include "attach/proc.h"
#include "base/error.h"
#include "cli/agent_lease.h"
#include "cli/commands.h"
#include "cli/journal_file.h"
#include "cli/memory_figures.h"
#include "cli/snapshot_store.h"
#include "cli/source_lines.h"
#include "cli/std_output.h"
#include "cli/target_death.h"
#include "cli/target_status.h"
#include "cli/terminal.h"
#include "cli/uwsgi.h"
#include "cli/watch_loop.h"
#include "cli/watch_refs.h"
#include "cli/watch_target.h"
#include "report/diff.h"
#include "report/text_report.h"
#include "report/watch_columns.h"
#include "report/watch_screen.h"

namespace memtap::cli {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kPlainTop = 10;
constexpr size_t kScreenTop = 200; // the screen scrolls; this only bounds the work
// Reports the header's rss and traced sparklines remember.
constexpr size_t kHeaderHistory = 120;

void
note(const std::string& line) {
    noteToStderr(line);
}

struct WatchSettings {
    pid_t pid = 0;
    std::chrono::milliseconds interval{2000};
    std::optional<size_t> top;
    report::GroupBy by = report::GroupBy::Lineno;
    std::optional<int64_t> thread; // --thread: rows count only this thread's allocations
    uint64_t count = 0;            // 0: until stopped
    bool allWorkers = false;
    bool journal = true; // --no-journal: none
    inject::AttachOptions attach;
    ModeFlags modeFlags;
};

WatchSettings
settingsFrom(const ParsedArgs& args) {
    WatchSettings settings;
    settings.pid = parsePidOrThrow(args.positional[0]);
    if (auto v = args.value("--interval")) {
        double seconds = parseSecondsOrThrow(*v, "--interval");
        settings.interval =
            std::chrono::milliseconds(std::max<int64_t>(1, std::llround(seconds * 1000)));
    }
    if (auto v = args.value("--top")) {
        settings.top = parseUnsignedOrThrow(*v, "--top", 1, 100000);
    }
    if (auto v = args.value("--by")) {
        settings.by = parseGroupByOrThrow(*v);
    }
    if (auto v = args.value("--thread")) {
        settings.thread = static_cast<int64_t>(parseUnsignedOrThrow(*v, "--thread", 1, 1u << 30));
    }
    if (auto v = args.value("--count")) {
        settings.count = parseUnsignedOrThrow(*v, "--count", 1, 1000000000);
    }
    settings.allWorkers = args.has("--all-workers");
    settings.journal = !args.has("--no-journal");
    settings.attach = attachOptionsFrom(args);
    settings.modeFlags = modeFlagsFrom(args);
    return settings;
}

report::GroupBy
nextGrouping(report::GroupBy by) {
    switch (by) {
    case report::GroupBy::Lineno:
        return report::GroupBy::Filename;
    case report::GroupBy::Filename:
        return report::GroupBy::Traceback;
    case report::GroupBy::Traceback:
        return report::GroupBy::Thread;
    case report::GroupBy::Thread:
        return report::GroupBy::User;
    case report::GroupBy::User:
        return report::GroupBy::Lineno;
    }
    return report::GroupBy::Lineno;
}

// Why the loop ended, for the note on stderr; all of them end in an orderly
// detach and exit 0.
struct StopReason {
    int signal = 0;          // SIGINT, SIGTERM or SIGHUP
    bool readerGone = false; // stdout's reader left (`| head`) or the terminal hung up
};

// The loop: poll the signalfd, stdout (for a reader that leaves) and the
// keyboard with the time left in the interval as timeout, so keys act at
// once, reports stay on schedule and `| head` ends us when head exits.
class WatchLoop {
public:
    WatchLoop(const WatchSettings& settings, std::vector<WatchTarget>& targets, SignalInbox& inbox,
              TerminalSession* session, pid_t master)
        : settings_(settings), targets_(targets), inbox_(inbox), session_(session), master_(master),
          sources_(targets.front().pid()), color_(session != nullptr && colorWanted(STDOUT_FILENO)),
          by_(settings.by), thread_(settings.thread) {}

    // Throws Error when stdout cannot be written (writeStdoutOrThrow).
    StopReason runOrThrow();
    // The report of the latest figures as plain text (what emitPlain writes).
    std::string plainReport();

private:
    void tickOrThrow();
    void handleKey(const Key& key);
    void takeNamedSnapshots();
    void toggleThreadFilter(const std::vector<report::WatchRow>& rows, int selected);
    void recordHistory();
    report::WatchHeader headerFor(const std::vector<WatchTarget*>& targets) const;
    // The rows in the order shown: one process's, or the workers' combined.
    std::vector<report::WatchRow> currentRows(size_t top) const;
    // The selected row: the one whose site was selected, else row 1.
    int selectedIndexIn(const std::vector<report::WatchRow>& rows) const;
    std::vector<report::Frame> fullTracebackOf(const report::WatchRow& row) const;
    // Both write as writeStdoutOrThrow does, interrupted by the signalfd.
    [[nodiscard]] WriteOutcome redraw();
    [[nodiscard]] WriteOutcome emitPlain();

    const WatchSettings& settings_;
    std::vector<WatchTarget>& targets_;
    SignalInbox& inbox_;
    TerminalSession* session_; // null: plain reports
    pid_t master_;             // the uWSGI master with --all-workers, else 0
    mutable SourceLines sources_;
    bool color_;
    report::GroupBy by_;
    Clock::time_point started_ = Clock::now();
    std::string statusLine_;
    std::string selectedSite_; // siteKeyOf the selected row; empty: row 1
    bool showTraceback_ = false;
    WatchRefs refs_; // key r: its walk and, once done, its answer in place of the table
    report::WatchSort sort_ = report::WatchSort::Growth;
    report::WatchTrend trend_ = report::WatchTrend::Size;
    std::deque<int64_t> rssHistory_;
    std::deque<int64_t> tracedHistory_;
    bool stop_ = false;
    std::optional<int64_t> thread_; // the filter every target's rows have
};

StopReason
WatchLoop::runOrThrow() {
    for (auto& target : targets_) {
        target.startOrThrow(by_, thread_);
    }
    started_ = Clock::now();
    recordHistory();
    StopReason reason;
    // The baseline screen, so the terminal is not blank for an interval.
    if (session_ != nullptr && redraw() == WriteOutcome::ReaderGone) {
        reason.readerGone = true;
        return reason;
    }
    uint64_t reports = 0;
    auto next = Clock::now() + settings_.interval;
    while (!stop_) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now());
        if (refs_.pending()) {
            left = std::min(left, std::chrono::milliseconds(100)); // look at the walk soon
        }
        // stdout with no events: poll reports only POLLERR (a pipe whose
        // reader has gone) or POLLHUP (a terminal that hung up) for it.
        pollfd fds[3] = {{inbox_.fd(), POLLIN, 0}, {STDOUT_FILENO, 0, 0}, {STDIN_FILENO, POLLIN, 0}};
        nfds_t count = session_ != nullptr && session_->readsKeys() ? 3 : 2;
        if (::poll(fds, count, static_cast<int>(std::max<int64_t>(0, left.count()))) < 0 &&
            errno != EINTR) {
            throw Error(ExitCode::Failure, describeErrno("poll", errno));
        }
        bool dirty = false;
        for (int signal : inbox_.drain()) {
            if (signal == SIGWINCH) {
                dirty = true;
            } else {
                stop_ = true;
                reason.signal = signal;
            }
        }
        if ((fds[1].revents & (POLLHUP | POLLERR)) != 0) {
            stop_ = true;
            reason.readerGone = true;
        }
        if (count == 3 && (fds[2].revents & POLLIN) != 0) {
            for (const Key& key : decodeKeys(session_->readAvailable())) {
                handleKey(key);
            }
            dirty = true;
        } else if (count == 3 && (fds[2].revents & (POLLHUP | POLLERR)) != 0) {
            stop_ = true; // the terminal went away
        }
        if (stop_) {
            break;
        }
        dirty = refs_.poll(&statusLine_) || dirty;
        if (Clock::now() >= next) {
            tickOrThrow();
            ++reports;
            if (session_ != nullptr) {
                dirty = true;
            } else if (emitPlain() == WriteOutcome::ReaderGone) {
                reason.readerGone = true;
                break;
            }
            if (settings_.count != 0 && reports >= settings_.count) {
                stop_ = true;
            }
            // A slow snapshot must not cause a burst of catch-up reports.
            next = std::max(next + settings_.interval, Clock::now());
        }
        if (dirty && session_ != nullptr && redraw() == WriteOutcome::ReaderGone) {
            reason.readerGone = true;
            break;
        }
    }
    return reason;
}

void
WatchLoop::tickOrThrow() {
    for (auto& target : targets_) {
        target.updateOrThrow();
        if (!target.journalProblem.empty()) {
            statusLine_ = std::exchange(target.journalProblem, {});
        }
    }
    recordHistory();
}

void
WatchLoop::recordHistory() {
    int64_t rss = 0;
    int64_t traced = 0;
    for (const auto& target : targets_) {
        rss += target.lastRss;
        traced += target.status.tracedBytes;
    }
    rssHistory_.push_back(rss);
    tracedHistory_.push_back(traced);
    while (rssHistory_.size() > kHeaderHistory) {
        rssHistory_.pop_front();
        tracedHistory_.pop_front();
    }
}

void
WatchLoop::handleKey(const Key& key) {
    // A traceback or refs panel in place of the table: these keys go back.
    if (showTraceback_ || !refs_.panel().empty()) {
        if (key.kind == KeyKind::Enter || key.kind == KeyKind::Escape ||
            (key.kind == KeyKind::Char && (key.ch == 'q' || key.ch == 'Q'))) {
            showTraceback_ = false;
            refs_.closePanel();
        }
        return;
    }
    auto rows = currentRows(kScreenTop);
    int selected = selectedIndexIn(rows);
    auto select = [&](int index) {
        if (!rows.empty()) {
            index = std::clamp(index, 0, static_cast<int>(rows.size()) - 1);
            selectedSite_ = siteKeyOf(rows[static_cast<size_t>(index)].key);
        }
    };
    switch (key.kind) {
    case KeyKind::Up:
        select(selected - 1);
        return;
    case KeyKind::Down:
        select(selected + 1);
        return;
    case KeyKind::Enter:
        showTraceback_ = selected >= 0;
        return;
    case KeyKind::Escape:
        selectedSite_.clear();
        return;
    case KeyKind::Char:
        break;
    }
    switch (key.ch) {
    case 'q':
    case 'Q':
        stop_ = true;
        break;
    case 's':
        takeNamedSnapshots();
        break;
    case 'b':
        statusLine_ = "baseline reset: growth and peak are counted from now";
        for (auto& target : targets_) {
            target.model->resetBaseline();
            target.rssAtBaseline = readRssBytes(target.pid());
            if (target.status.peakTracedBytes) {
                // The peak restarts with the baseline, in the agent (so
                // status and diff's 'peak' agree with the screen) and here.
                try {
                    resetPeakOrThrow(target.pid());
                    target.status = agentStatusOrThrow(target.pid());
                    target.updatePeakOrThrow();
                } catch (const Error& e) {
                    statusLine_ = fmt::format("baseline reset, but the peak was not: {}", e.what());
                }
            }
        }
        break;
    case 'f':
        if (master_ == 0) {
            toggleThreadFilter(rows, selected);
        }
        break;
    case 'o':
        sort_ = report::nextWatchSort(sort_, targets_.front().status.peakTracedBytes.has_value());
        statusLine_ = fmt::format("sorted by {}", report::name(sort_));
        break;
    case 'g':
        trend_ =
            trend_ == report::WatchTrend::Size ? report::WatchTrend::Growth : report::WatchTrend::Size;
        statusLine_ = trend_ == report::WatchTrend::Size
                          ? "TREND: each site's size over the last intervals"
                          : "DELTAS: each site's growth in each of the last intervals";
        break;
    case 'r':
        if (targets_.size() != 1) {
            statusLine_ = "r works on one process: watch the worker's PID";
        } else if (selected >= 0) {
            statusLine_ = refs_.start(targets_.front().pid(), rows[static_cast<size_t>(selected)], by_,
                                      targets_.front().status.exact);
        }
        break;
    case 't':
        by_ = nextGrouping(by_);
        for (auto& target : targets_) {
            target.model->setGroupBy(by_);
        }
        selectedSite_.clear();
        statusLine_ = fmt::format("grouping by {}", report::name(by_));
        break;
    default:
        break;
    }
}

void
WatchLoop::toggleThreadFilter(const std::vector<report::WatchRow>& rows, int selected) {
    WatchTarget& target = targets_.front();
    if (thread_) {
        thread_.reset();
        statusLine_ = "all threads again";
    } else if (selected >= 0 && rows[static_cast<size_t>(selected)].tid != 0) {
        // The selected thread's own lines: what a filter to it is for.
        thread_ = rows[static_cast<size_t>(selected)].tid;
        by_ = report::GroupBy::Lineno;
        target.model->setGroupBy(by_);
        statusLine_ = fmt::format("only {} (f: all threads)", rows[static_cast<size_t>(selected)].label);
    } else {
        statusLine_ = "f filters to the selected thread: group by thread (t) and select one first";
        return;
    }
    target.model->setThreadFilter(thread_);
    selectedSite_.clear();
}

void
WatchLoop::takeNamedSnapshots() {
    // A snapshot that cannot be saved is news for the status line, not a
    // reason to end the watch.
    std::string saved;
    try {
        for (auto& target : targets_) {
            auto store = SnapshotStore::forProcessOrThrow(target.pid());
            std::string name = store.nextDefaultName();
            std::string text = takeSnapshotTextOrThrow(target.pid());
            report::parseSnapshotOrThrow(text);
            store.saveOrThrow(name, text);
            saved += fmt::format("{}{}", saved.empty() ? "" : ", ",
                                 targets_.size() == 1 ? name : fmt::format("{}:{}", target.pid(), name));
        }
        statusLine_ = targets_.size() == 1
                          ? fmt::format("snapshot {} saved (`memtap diff {} {} now` compares with it)",
                                        saved, targets_.front().pid(), saved)
                          : fmt::format("snapshots saved: {}", saved);
    } catch (const Error& e) {
        statusLine_ = fmt::format("snapshot failed: {}", e.what());
    }
}

report::WatchHeader
WatchLoop::headerFor(const std::vector<WatchTarget*>& targets) const {
    report::WatchHeader header;
    const WatchTarget& first = *targets.front();
    header.pid = master_ != 0 ? master_ : first.pid();
    header.python = first.status.python.empty() ? first.lease.python() : first.status.python;
    header.mode = first.model->latest().mode;
    header.sampleBytes = first.model->latest().sampleBytes;
    header.attachedSeconds = std::chrono::duration<double>(Clock::now() - started_).count();
    for (const WatchTarget* target : targets) {
        int64_t rss = readRssBytes(target->pid());
        if (rss <= 0) {
            rss = target->lastRss; // gone (or a zombie): its last known figure
        }
        header.rssBytes += rss;
        header.rssChange += rss - target->rssAtBaseline;
        header.tracedBytes += target->status.tracedBytes;
        header.peakTracedBytes += target->status.peakTracedBytes.value_or(0);
        header.mallocFreeBytes += numberOr(target->status.values, "malloc_free_bytes", 0);
    }
    if (targets.size() == 1 && !first.status.values.empty()) {
        auto input = breakdownInputFor(first.pid(), true, first.lastRss, first.status.values);
        input.pymalloc = first.pymalloc;
        header.breakdown = report::renderBreakdownShort(input, report::explainMemory(input));
    }
    header.byName = std::string(report::name(by_));
    if (thread_) {
        const report::Snapshot& latest = first.model->latest();
        header.byName += fmt::format(", {} only", threadScopeText(*thread_, latest, latest));
    }
    header.statusLine = statusLine_;
    header.rssHistory.assign(rssHistory_.begin(), rssHistory_.end());
    header.tracedHistory.assign(tracedHistory_.begin(), tracedHistory_.end());
    if (master_ != 0) {
        for (const WatchTarget* target : targets) {
            header.workers.push_back(target->pid());
        }
    }
    return header;
}

std::vector<report::WatchRow>
WatchLoop::currentRows(size_t top) const {
    std::vector<report::WatchRow> rows;
    if (master_ != 0) {
        std::vector<const WatchModel*> models;
        for (const auto& target : targets_) {
            models.push_back(&*target.model);
        }
        rows = combineWorkers(models, 0, sources_);
    } else {
        rows = targets_.front().model->rows(0, sources_);
    }
    report::sortWatchRows(rows, sort_);
    if (top != 0 && rows.size() > top) {
        rows.resize(top);
    }
    return rows;
}

int
WatchLoop::selectedIndexIn(const std::vector<report::WatchRow>& rows) const {
    for (size_t i = 0; i < rows.size(); ++i) {
        if (siteKeyOf(rows[i].key) == selectedSite_) {
            return static_cast<int>(i);
        }
    }
    return rows.empty() ? -1 : 0;
}

std::vector<report::Frame>
WatchLoop::fullTracebackOf(const report::WatchRow& row) const {
    // Of all workers, the one where the site grew most tells its story.
    size_t best = 0;
    for (size_t w = 1; w < row.perWorker.size() && w < targets_.size(); ++w) {
        if (row.perWorker[w] > row.perWorker[best]) {
            best = w;
        }
    }
    return targets_[best].model->fullTracebackOf(row.key, row.tid);
}

WriteOutcome
WatchLoop::redraw() {
    auto size = terminalSizeOf(STDOUT_FILENO).value_or(TerminalSize{});
    std::vector<WatchTarget*> all;
    for (auto& target : targets_) {
        all.push_back(&target);
    }
    report::WatchScreen screen{headerFor(all), currentRows(settings_.top.value_or(kScreenTop))};
    report::ScreenOptions options;
    options.width = size.columns;
    options.height = size.rows;
    options.color = color_;
    options.sort = sort_;
    options.trend = trend_;
    options.selected = selectedIndexIn(screen.rows);
    options.showTraceback = showTraceback_ && options.selected >= 0;
    options.panel = refs_.panel();
    if (options.showTraceback) {
        auto& row = screen.rows[static_cast<size_t>(options.selected)];
        row.key = fullTracebackOf(row);
    }
    return session_->draw(report::renderWatchScreen(screen, options), inbox_.fd());
}

WriteOutcome
WatchLoop::emitPlain() {
    std::string out = plainReport();
    statusLine_.clear(); // shown once in the log, not repeated in every report
    // Interrupted (a stop signal while the reader stalls) leaves the report
    // cut short; the loop then drains the signal and stops.
    return writeStdoutOrThrow(out, inbox_.fd());
}

std::string
WatchLoop::plainReport() {
    std::vector<WatchTarget*> all;
    for (auto& target : targets_) {
        all.push_back(&target);
    }
    report::WatchScreen screen{headerFor(all), currentRows(settings_.top.value_or(kPlainTop))};
    return report::renderWatchPlain(screen, 0);
}

int
runWatch(const ParsedArgs& args) {
    WatchSettings settings = settingsFrom(args);
    std::vector<pid_t> pids{settings.pid};
    pid_t master = 0;
    if (settings.allWorkers) {
        if (!isUwsgiMaster(settings.pid)) {
            throw Error(ExitCode::Usage, fmt::format("process {} is not a uWSGI master", settings.pid),
                        "--all-workers watches every worker of a uWSGI master; drop it for one process");
        }
        master = settings.pid;
        pids = uwsgiWorkersOf(master);
    } else {
        explainUwsgiMasterOrContinue(settings.pid, "watch");
    }

    // Declared in the order they must be set up; destroyed in reverse:
    // terminal restored, then agents detached, then signals unblocked.
    bool screen = screenCapable(STDOUT_FILENO);
    SignalInbox inbox(screen);
    std::vector<WatchTarget> targets;
    for (pid_t pid : pids) {
        targets.emplace_back(
            AgentLease::attachOrThrow(pid, settings.attach, settings.modeFlags, "watch"));
        if (settings.journal) {
            targets.back().openJournalOrContinue(settings.interval);
        }
    }
    std::optional<TerminalSession> session;
    if (screen) {
        session.emplace();
    }
    // Who the targets are, to tell their death from a PID reused later.
    std::vector<uint64_t> startTimes;
    for (auto& target : targets) {
        startTimes.push_back(attach::tryReadProcessStartTime(target.pid()).value_or(0));
    }
    WatchLoop loop(settings, targets, inbox, session ? &*session : nullptr, master);
    StopReason stop;
    try {
        stop = loop.runOrThrow();
    } catch (const Error& e) {
        // A target that died under us is the news, not the failed request
        // that found it: say how it ended and keep the last report in view.
        for (size_t i = 0; i < targets.size(); ++i) {
            auto death = tryDescribeDeath(targets[i].pid(), startTimes[i]);
            if (!death) {
                continue;
            }
            targets[i].lease.forget();
            auto journal = targets[i].endJournal("died", *death);
            for (size_t j = 0; j < targets.size(); ++j) {
                if (j != i) {
                    targets[j].endJournal("stopped",
                                          fmt::format("watch ended: process {} died", targets[i].pid()));
                }
            }
            if (session) {
                // Plain reports are on the screen already; the alternate
                // screen goes away with the session, so print it again.
                session.reset();
                std::string last = loop.plainReport();
                std::fwrite(last.data(), 1, last.size(), stdout);
                std::fflush(stdout);
            }
            throw Error(ExitCode::NoSuchProcess,
                        fmt::format("process {} died while watched: {}", targets[i].pid(), *death),
                        fmt::format("the last report is above; snapshots saved with `s` stay readable "
                                    "with `memtap diff {} OLD NEW`{}",
                                    targets[i].pid(),
                                    journal ? fmt::format(", the journal with `memtap report {}` ({})",
                                                          targets[i].pid(), *journal)
                                            : ""));
        }
        for (auto& target : targets) {
            target.endJournal("failed", e.what());
        }
        throw;
    }
    session.reset();
    std::string why = stop.signal == SIGINT    ? "SIGINT"
                      : stop.signal == SIGTERM ? "SIGTERM"
                      : stop.signal != 0       ? "SIGHUP"
                      : stop.readerGone        ? "stdout's reader has gone"
                                               : "watch ended";
    std::vector<std::string> journals;
    for (auto& target : targets) {
        if (auto path = target.endJournal("stopped", why)) {
            journals.push_back(*path);
        }
    }
    if (stop.signal != 0) {
        note(fmt::format("stopping on {}", stop.signal == SIGINT    ? "SIGINT"
                                           : stop.signal == SIGTERM ? "SIGTERM"
                                                                    : "SIGHUP"));
    } else if (stop.readerGone) {
        // Not an error: `watch | head -n 20` has what it asked for.
        note("stopping: stdout's reader has gone");
    }
    for (auto& target : targets) {
        target.lease.endOrThrow();
    }
    for (const auto& path : journals) {
        note(fmt::format("journal: {} (`memtap report {}` reads it)", path, path));
    }
    return 0;
}

} // namespace

std::vector<CommandSpec>
watchCommands() {
    auto options = std::vector<OptionSpec>{
        {"--interval", "S", "seconds between reports (default 2; fractions allowed)"},
        {"--top", "N", "sites shown (default: what fits on a terminal, 10 in plain reports)"},
        {"--by", "KEY", groupByOptionHelp()},
        {"--thread", "TID", "every row counts only that thread's allocations (its native id)"},
        {"--count", "K", "stop after K reports (default: run until q, Ctrl-C or SIGTERM)"},
        {"--all-workers", "", "PID is a uWSGI master: watch all its workers, a growth column each"},
        {"--no-journal", "", "keep no journal in the snapshot store"},
    };
    auto attach = attachOptionSpecs();
    options.insert(options.end(), attach.begin(), attach.end());
    return {
        {"watch", "PID", "Watch which source lines hold growing memory, live.",
         "Attaches if needed and takes a baseline, then every interval shows for each site its\n"
         "growth since the baseline, its growth in the last interval, the change in block count,\n"
         "a trend of the last intervals and the source line. Stopping (q, Ctrl-C, SIGTERM, --count)\n"
         "detaches if watch attached, and leaves an agent attached before watch started in place.\n"
         "\n"
         "keys: q quit; s save a snapshot (as `memtap snapshot`); b reset the baseline;\n"
         "      t cycle lineno/filename/traceback/thread/user; o sort by growth/last/count/peak;\n"
         "      g TREND as each site's size (default) or DELTAS, its growth per interval;\n"
         "      up/down select a site (row 1 at first); Enter its traceback (Enter, Esc or q\n"
         "      back); f on a thread's row (by thread): only that thread's lines, f again: all;\n"
         "      r what holds the selected line's objects, as `memtap refs` (Enter or Esc back).\n"
         "With --all-workers the table is the same, with a column of growth per worker that\n"
         "fits, and a row's traceback comes from the worker where it grew most.\n"
         "When stdout is not a terminal, or is one whose TERM is unset, empty or 'dumb', plain\n"
         "reports are written one after another, flushed each time, without escape codes (stop\n"
         "them with Ctrl-C or --count). Colors honor NO_COLOR.\n"
         "A reader that goes away (`| head`) stops watch at once: it detaches and exits 0.\n"
         "A target that dies stops watch with how it ended (exit code or signal, when memtap can\n"
         "still read it) and exit 3; the last report stays on the normal screen.\n"
         "Unless --no-journal, watch keeps a journal in the process's snapshot store, one record\n"
         "per interval (as `memtap record` writes; at most 256 MiB), and says where it is when it\n"
         "ends; `memtap report PID` reads it, also after the process is gone.\n"
         "A closed or read-only stdout is refused before attaching; output that cannot be\n"
         "written later (a full disk) stops watch with an error and exit 1, after detaching.\n"
         "\n" +
             groupByDetails() +
             "--thread TID (or f) filters every row, the PEAK column too, to one thread; the header's\n"
             "rss and traced figures stay the whole process's.",
         1, 1, options, runWatch},
    };
}

} // namespace memtap::cli
