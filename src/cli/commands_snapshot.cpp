// snapshot, diff.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "attach/proc.h"
#include "base/error.h"
#include "cli/commands.h"
#include "cli/memory_figures.h"
#include "cli/output_file.h"
#include "cli/snapshot_store.h"
#include "cli/source_lines.h"
#include "cli/target_status.h"
#include "inject/control_client.h"
#include "report/diff.h"
#include "report/html_flamegraph.h"
#include "report/json.h"
#include "report/pprof.h"
#include "report/snapshot.h"
#include "report/speedscope.h"
#include "report/text_report.h"

namespace memtap::cli {

namespace {

inject::AgentClient
connectOrThrow(pid_t pid) {
    attach::readProcessInfoOrThrow(pid); // a process that is gone says so, not "not attached"
    return inject::AgentClient::connectOrThrow(pid,
                                               fmt::format("attach first with `memtap attach {}`", pid));
}

} // namespace

report::GroupBy
parseGroupByOrThrow(const std::string& text) {
    auto by = report::parseGroupBy(text);
    if (!by) {
        throw Error(ExitCode::Usage,
                    fmt::format("--by must be {}, not '{}'", report::groupByChoices(), text));
    }
    return *by;
}

std::string
groupByOptionHelp() {
    return "group by lineno (default), filename, traceback, thread or user";
}

std::string
groupByDetails() {
    return "--by thread: one row per thread that allocated, \"thread TID (NAME)\", NAME being the\n"
           "OS thread name the agent read from /proc when it took the snapshot (\"exited\" when the\n"
           "thread has ended since). CPython before 3.14 does not give threading.Thread.name to the\n"
           "OS: Python threads are named like the process unless the program sets the OS name\n"
           "(prctl(PR_SET_NAME), pthread_setname_np); TID is threading.get_native_id().\n"
           "--by user: each traceback under its first frame (most recent call first) in your own\n"
           "code, outside the standard library (.../lib/pythonX.Y/, <frozen ...>) and site-packages\n"
           "/dist-packages, so what json, a framework or a driver allocates is charged to your line\n"
           "that called it; a traceback with none such is shown at its innermost frame, marked\n"
           "'[no frame in your code]'. Needs a traceback deep enough (attach --frames, default 16).\n";
}

std::string
threadScopeText(int64_t tid, const report::Snapshot& older, const report::Snapshot& newer) {
    return report::threadText(report::threadLabelOf(tid, older, newer));
}

std::string
takeSnapshotTextOrThrow(pid_t pid) {
    return connectOrThrow(pid).snapshotTextOrThrow(inject::SnapshotKind::Now,
                                                   std::chrono::milliseconds(30000));
}

std::string
takePeakSnapshotTextOrThrow(pid_t pid) {
    return connectOrThrow(pid).snapshotTextOrThrow(inject::SnapshotKind::Peak,
                                                   std::chrono::milliseconds(30000));
}

void
resetPeakOrThrow(pid_t pid) {
    connectOrThrow(pid).resetPeakOrThrow(std::chrono::milliseconds(5000));
}

namespace {

int
runSnapshot(const ParsedArgs& args) {
    pid_t pid = parsePidOrThrow(args.positional[0]);
    // A refused store fails before the agent is asked; the directory is made
    // only once there is a snapshot to put in it.
    auto existing = SnapshotStore::existingForProcessOrThrow(pid);
    std::string name = args.positional.size() > 1 ? args.positional[1] : existing.nextDefaultName();
    validateSnapshotNameOrThrow(name);
    std::string text = takeSnapshotTextOrThrow(pid);
    report::parseSnapshotOrThrow(text); // never store what we could not read back
    SnapshotStore::forProcessOrThrow(pid).saveOrThrow(name, text);
    std::printf("%s\n", name.c_str());
    // The snapshot request made the agent check its hooks (and re-install
    // any that were cut out): a reader must know the figures have a gap.
    if (auto agent = tryReadAgentStatus(pid)) {
        if (auto problem = hookChainProblem(agent->values)) {
            std::fprintf(stderr, "memtap: warning: %s\n", problem->c_str());
        }
    }
    return 0;
}

int
writeDiffOutputOrThrow(std::optional<OutputFile>& output, const std::string& data) {
    if (!output) {
        std::fwrite(data.data(), 1, data.size(), stdout);
        return 0;
    }
    output->commitOrThrow(data);
    std::fprintf(stderr, "memtap: wrote %s (%s)\n", output->path().c_str(),
                 report::formatSize(static_cast<double>(data.size()), false).c_str());
    return 0;
}

report::Snapshot
loadOrTake(const SnapshotStore& store, pid_t pid, const std::string& name) {
    if (name == "now") {
        return report::parseSnapshotOrThrow(takeSnapshotTextOrThrow(pid));
    }
    if (name == "peak") {
        return report::parseSnapshotOrThrow(takePeakSnapshotTextOrThrow(pid));
    }
    validateSnapshotNameOrThrow(name);
    return report::parseSnapshotOrThrow(store.loadOrThrow(name));
}

// RSS explained for a diff: what a reader of a diff whose figures are small
// next to RSS needs. pymalloc gets a short wait only.
report::BreakdownInput
diffMemoryInput(pid_t pid, const TargetStatus& status) {
    constexpr std::chrono::milliseconds kDiffPymallocWait{500};
    auto input = breakdownInputFor(pid, status.attached, status.rssBytes, status.agent);
    if (status.attached) {
        input.pymalloc = pollPymalloc(pid, PymallocWait{kDiffPymallocWait, {}});
    }
    return input;
}

std::string
diffMemoryLines(const report::BreakdownInput& input) {
    auto breakdown = report::explainMemory(input);
    std::string out = fmt::format("memory: {}\n", report::renderBreakdownShort(input, breakdown));
    for (const auto& diagnosis : breakdown.diagnoses) {
        out += fmt::format("diagnosis: {}\n", diagnosis);
    }
    return out;
}

int
runPeakReset(const ParsedArgs& args) {
    pid_t pid = parsePidOrThrow(args.positional[0]);
    resetPeakOrThrow(pid);
    auto agent = tryReadAgentStatus(pid);
    std::string peak = "?";
    if (agent && agent->peakTracedBytes) {
        peak = report::formatSize(static_cast<double>(*agent->peakTracedBytes), false);
    }
    std::printf("peak reset: %s traced now\n", peak.c_str());
    return 0;
}

enum class DiffFormat { Text, Json, Html, Pprof, Speedscope };

// The formats that write a file (a page, a profile) rather than a report.
bool
isExport(DiffFormat format) {
    return format == DiffFormat::Html || format == DiffFormat::Pprof || format == DiffFormat::Speedscope;
}

DiffFormat
diffFormatOrThrow(const ParsedArgs& args) {
    auto v = args.value("--format");
    if (args.has("--json")) {
        if (v && *v != "json") {
            throw Error(ExitCode::Usage, fmt::format("--json and --format {} contradict each other", *v),
                        "give one of them");
        }
        return DiffFormat::Json;
    }
    if (!v || *v == "text") {
        return DiffFormat::Text;
    }
    if (*v == "json") {
        return DiffFormat::Json;
    }
    if (*v == "html") {
        return DiffFormat::Html;
    }
    if (*v == "pprof") {
        return DiffFormat::Pprof;
    }
    if (*v == "speedscope") {
        return DiffFormat::Speedscope;
    }
    throw Error(ExitCode::Usage,
                fmt::format("--format must be text, json, html, pprof or speedscope, not '{}'", *v));
}

// -o FILE, or stdout; a binary profile or a page of HTML is not for a terminal.
std::optional<OutputFile>
diffOutputOrThrow(const ParsedArgs& args, DiffFormat format) {
    auto path = args.value("--output");
    if (auto o = args.value("-o")) {
        path = o;
    }
    if (path) {
        return OutputFile::createOrThrow(*path);
    }
    if (isExport(format) && ::isatty(STDOUT_FILENO)) {
        const char* name = format == DiffFormat::Html    ? "html"
                           : format == DiffFormat::Pprof ? "pprof"
                                                         : "speedscope";
        throw Error(ExitCode::Usage, fmt::format("--format {} writes a file, not to a terminal", name),
                    "add -o FILE, or redirect stdout");
    }
    return std::nullopt;
}

int
runDiff(const ParsedArgs& args) {
    pid_t pid = parsePidOrThrow(args.positional[0]);
    DiffFormat format = diffFormatOrThrow(args);
    std::optional<OutputFile> output = diffOutputOrThrow(args, format);
    const std::string& oldName = args.positional[1];
    const std::string& newName = args.positional[2];
    auto by = report::GroupBy::Lineno;
    if (auto v = args.value("--by")) {
        by = parseGroupByOrThrow(*v);
    }
    std::optional<int64_t> onlyThread;
    if (auto v = args.value("--thread")) {
        onlyThread = static_cast<int64_t>(parseUnsignedOrThrow(*v, "--thread", 1, 1u << 30));
    }
    size_t top = 10;
    if (auto v = args.value("--top")) {
        top = parseUnsignedOrThrow(*v, "--top", 1, 100000);
    }
    // diff only reads: it never creates the store, so a failed one leaves nothing behind.
    // The snapshots of a process that is gone are evidence too: its most
    // recent stored instance is used, and the user told so.
    std::optional<SnapshotStore> store;
    bool gone = !attach::tryReadProcessStartTime(pid);
    if (gone) {
        auto found =
            SnapshotStore::mostRecentOfGoneProcessOrThrow(StoreLocation::fromEnvironment(), pid);
        if (!found) {
            throw Error(ExitCode::NoSuchProcess,
                        fmt::format("no process with PID {}, and no snapshots stored for it", pid),
                        "check the PID with `ps` or `pgrep`");
        }
        if (oldName == "now" || newName == "now") {
            throw Error(ExitCode::NoSuchProcess,
                        fmt::format("process {} is gone: no fresh snapshot ('now') can be taken", pid),
                        "compare two of its stored snapshots instead");
        }
        std::fprintf(stderr,
                     "memtap: process %d is gone; using the snapshots stored for it (instance started "
                     "at tick %s of this boot) in %s\n",
                     pid, found->second.startTime.c_str(), found->first.directory().c_str());
        store.emplace(std::move(found->first));
    } else {
        store.emplace(SnapshotStore::existingForProcessOrThrow(pid));
    }
    auto older = loadOrTake(*store, pid, oldName);
    auto newer = loadOrTake(*store, pid, newName);
    if (isExport(format)) {
        if (onlyThread) {
            throw Error(ExitCode::Usage,
                        "--thread does not apply to --format html, pprof or speedscope yet",
                        "drop --thread; the page and the profiles show every thread");
        }
        std::string data;
        if (format == DiffFormat::Html) {
            report::HtmlReportOptions options;
            options.title =
                fmt::format("process {}{}: {} -> {}", pid, gone ? " (gone)" : "", oldName, newName);
            options.oldName = oldName;
            options.newName = newName;
            data = report::renderHtmlFlamegraph(older, newer, options);
        } else if (format == DiffFormat::Pprof) {
            data = report::renderPprof(older, newer, report::PprofOptions{oldName, newName});
        } else {
            data = report::renderSpeedscope(
                older, newer,
                report::SpeedscopeOptions{oldName, newName,
                                          fmt::format("process {}{}: {} -> {}", pid,
                                                      gone ? " (gone)" : "", oldName, newName)});
        }
        return writeDiffOutputOrThrow(output, data);
    }
    auto stats = report::compareSnapshots(older, newer, by, onlyThread);
    // The context a reader needs to judge the numbers: a service whose RSS
    // stays high after its objects are gone shows it as malloc's free bytes.
    TargetStatus status;
    if (!gone) {
        status = readTargetStatusOrThrow(pid);
    }
    auto agentValue = [&](const char* key) -> int64_t { return numberOr(status.agent, key, -1); };
    std::optional<report::BreakdownInput> memory;
    if (!gone) {
        memory = diffMemoryInput(pid, status);
    }
    auto mismatch = report::sessionMismatch(older, newer);
    std::string out;
    if (args.has("--json")) {
        report::DiffContext context{gone ? -1 : status.rssBytes,
                                    agentValue("malloc_free_bytes"),
                                    agentValue("attached_at_unix_ms"),
                                    agentValue("rss_at_attach_bytes"),
                                    mismatch.value_or(""),
                                    memory ? &*memory : nullptr};
        out = report::renderDiffJson(stats, pid, oldName, newName, by, newer.mode, top, context) + "\n";
    } else {
        if (gone) {
            out = fmt::format("process {}: gone; these snapshots were stored before it ended\n", pid);
        } else {
            out = fmt::format(
                "process {}: rss {}, {} free inside glibc malloc's heap\n", pid,
                report::formatSize(static_cast<double>(status.rssBytes), false),
                report::formatSize(
                    static_cast<double>(std::max<int64_t>(0, agentValue("malloc_free_bytes"))), false));
            out += diffMemoryLines(*memory);
            if (auto since = tracedSince(status.agent)) {
                out += *since + "\n";
            }
        }
        SourceLines sources(pid);
        report::TextReportOptions options;
        options.top = top;
        options.oldName = oldName;
        options.newName = newName;
        if (onlyThread) {
            options.scope = fmt::format(", {} only", threadScopeText(*onlyThread, older, newer));
        }
        options.sourceLine = [&](const std::string& file, int line) { return sources.line(file, line); };
        out += report::renderDiffText(stats, older, newer, by, options);
    }
    return writeDiffOutputOrThrow(output, out);
}

} // namespace

std::vector<CommandSpec>
snapshotCommands() {
    return {
        {"snapshot",
         "PID [NAME]",
         "Take a snapshot of what the agent traces now; prints its name.",
         "Names default to s1, s2, ... Snapshots are kept on this machine, per process instance,\n"
         "under $XDG_RUNTIME_DIR/memtap or /tmp/memtap-UID; a directory or file there that is not\n"
         "yours, is a symlink, or that others can write is refused, never used.",
         1,
         2,
         {},
         runSnapshot},
        {"diff",
         "PID OLD NEW",
         "Compare two snapshots, largest growth first ('now' = a fresh snapshot).",
         "'peak' = the breakdown at the traced high-water mark since attach or `memtap peak-reset`\n"
         "(its sizes together are within 1/64 of the peak, or 1 MiB / 8 samples).\n"
         "Text lines follow tracemalloc's StatisticDiff: FILE:LINE: size=... (+...), count=... (+...),\n"
         "average=..., each followed by its source line. In sampled mode figures are estimates; a\n"
         "site resting on fewer than 5 samples is marked '(N samples: rough; ...)' (JSON: samples,\n"
         "samples_old, rough). OLD and NEW from different attach sessions or modes print a warning\n"
         "line (JSON: warning). For a PID that is gone, the snapshots stored for its most recent\n"
         "instance are used, and stderr says so.\n"
         "--format html writes one self-contained page: a flamegraph of the call tree (box width =\n"
         "what NEW holds, or its growth; red grew, blue shrank; click to zoom, type to search) beside\n"
         "the table. --format pprof writes a gzip'd pprof profile (sample types inuse_space,\n"
         "inuse_objects, growth_space, growth_objects) for `go tool pprof`, Pyroscope or Parca.\n"
         "--format speedscope writes a speedscope.app JSON file: two profiles, the bytes NEW holds and\n"
         "the growth (tracebacks that shrank left out), opened on the growth.\n"
         "All three group by traceback; OLD and NEW may be the same snapshot to see one alone.\n"
         "The header says where RSS lives and which\n"
         "allocator holds it in one line ('memory:', JSON: memory, the keys of `memtap status\n"
         "--json`'s RSS explained), with status's diagnoses; pymalloc's figures wait 0.5 s at most.\n" +
             groupByDetails() + "--thread TID counts only that thread's allocations, in every grouping.",
         3,
         3,
         {{"--by", "KEY", groupByOptionHelp()},
          {"--thread", "TID", "count only the allocations of that thread (its native id)"},
          {"--top", "N", "show the N largest (default 10)"},
          {"--json", "", "print JSON (the same as --format json)"},
          {"--format", "FORMAT",
           "text (default), json, html (a flamegraph page), pprof (gzip'd profile.proto) or "
           "speedscope (JSON for speedscope.app)"},
          {"--output", "FILE", "write to FILE instead of stdout (whole or not at all)"},
          {"-o", "FILE", "the same as --output"}},
         runDiff},
        {"peak-reset",
         "PID",
         "Forget the traced peak: it becomes what is traced now.",
         "The peak (status: peak_traced_bytes; diff: the snapshot name 'peak') is kept since\n"
         "attach; after a reset it is kept from then on. watch's `b` key resets it too.",
         1,
         1,
         {},
         runPeakReset},
    };
}

} // namespace memtap::cli
