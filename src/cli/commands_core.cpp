// attach, status, detach.
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>

#include "base/error.h"
#include "cli/commands.h"
#include "cli/memory_figures.h"
#include "cli/target_status.h"
#include "cli/uwsgi.h"
#include "inject/injector.h"

namespace memtap::cli {
namespace {

void
progressToStderr(const std::string& line) {
    std::fprintf(stderr, "memtap: %s\n", line.c_str());
}

} // namespace

// The agent keeps the mode it was started with: a flag asking for another
// one on a second attach must not be dropped silently (the user would read
// sampled figures as exact ones).
void
refuseModeChangeOrContinue(pid_t pid, const ModeFlags& asked, const inject::AttachOptions& options,
                           const inject::AgentStatus& agent) {
    std::string actual = agent.exact
                             ? std::string("exact mode")
                             : fmt::format("sampled mode (--sample-bytes {})", agent.sampleBytes);
    if (agent.native || asked.native) {
        actual += agent.native ? " with --native" : " without --native";
    }
    bool differs = (asked.exact && !agent.exact) ||
                   (asked.sampleBytes &&
                    (agent.exact || agent.sampleBytes != static_cast<int64_t>(options.sampleBytes))) ||
                   (asked.native && !agent.native);
    if (differs) {
        throw Error(ExitCode::Failure,
                    fmt::format("memtap is already attached to process {} in {}; detach first to change "
                                "the mode",
                                pid, actual),
                    fmt::format("`memtap detach {}`, then attach again with the flags you want", pid));
    }
}

ModeFlags
modeFlagsFrom(const ParsedArgs& args) {
    return ModeFlags{args.has("--exact"), args.has("--sample-bytes"), args.has("--native")};
}

std::vector<OptionSpec>
attachOptionSpecs() {
    return {
        {"--exact", "", "trace every allocation (like tracemalloc; slower)"},
        {"--sample-bytes", "N",
         "sampled mode: mean bytes between samples (default 512K; K/M/G/T suffixes; 1 to 1T)"},
        {"--frames", "N", "traceback depth, 1-64 (default 16)"},
        {"--native", "",
         "also trace what native modules (C extensions, their libraries) take from malloc and mmap"},
        {"--timeout", "S", "give up attaching after S seconds (default 10)"},
    };
}

inject::AttachOptions
attachOptionsFrom(const ParsedArgs& args) {
    inject::AttachOptions options;
    if (args.has("--exact") && args.has("--sample-bytes")) {
        throw Error(ExitCode::Usage, "--exact and --sample-bytes exclude each other",
                    "--exact traces everything; --sample-bytes sets the sampling interval");
    }
    if (args.has("--exact")) {
        options.mode = MEMTAP_MODE_EXACT;
    }
    options.native = args.has("--native");
    if (auto v = args.value("--sample-bytes")) {
        options.sampleBytes = parseByteSizeOrThrow(*v, "--sample-bytes");
    }
    if (auto v = args.value("--frames")) {
        options.frames =
            static_cast<uint32_t>(parseUnsignedOrThrow(*v, "--frames", 1, MEMTAP_MAX_FRAMES));
    }
    if (auto v = args.value("--timeout")) {
        options.timeout =
            std::chrono::milliseconds(static_cast<int64_t>(parseSecondsOrThrow(*v, "--timeout") * 1000));
    }
    options.progress = progressToStderr;
    return options;
}

int
runAttach(const ParsedArgs& args) {
    pid_t pid = parsePidOrThrow(args.positional[0]);
    auto options = attachOptionsFrom(args);
    explainUwsgiMasterOrContinue(pid, "attach");
    auto result = inject::attachOrThrow(pid, options);
    if (result.alreadyAttached) {
        auto agent = tryReadAgentStatus(pid);
        if (agent) {
            refuseModeChangeOrContinue(pid, modeFlagsFrom(args), options, *agent);
        }
        std::string mode = agent ? (agent->exact ? ", exact mode" : ", sampled mode") : "";
        std::printf(
            "memtap is already attached to process %d (CPython %s%s); `memtap detach %d` ends it\n", pid,
            result.python.c_str(), mode.c_str(), pid);
        if (agent) {
            if (auto since = tracedSince(agent->values)) {
                std::printf("%s\n", since->c_str());
            }
        }
        return 0;
    }
    std::printf("attached to process %d (CPython %s), %s mode%s, hooks live in %.1f ms "
                "(longest thread stop %.2f ms)\n",
                pid, result.python.c_str(), options.mode == MEMTAP_MODE_EXACT ? "exact" : "sampled",
                options.native ? " with native modules' malloc/mmap" : "",
                static_cast<double>(result.latency.count()) / 1000.0,
                static_cast<double>(result.longestThreadStop.count()) / 1000.0);
    if (!result.pythonNote.empty()) {
        std::printf("note: %s\n", result.pythonNote.c_str());
    }
    // A process whose chain was cut many times may have no spare hooks left.
    if (auto agent = tryReadAgentStatus(pid)) {
        if (auto since = tracedSince(agent->values)) {
            std::printf("%s\n", since->c_str());
        }
        // Frames off (or read from _Py_DebugOffsets alone, on a CPython newer
        // than memtap's tables): say so now, not only in `status`.
        auto note = agent->values.find("frame_note");
        auto capture = agent->values.find("frame_capture");
        if (note != agent->values.end() &&
            ((capture != agent->values.end() && capture->second == "no") ||
             note->second.starts_with("newer CPython"))) {
            std::printf("frames: %s; sizes and counts are traced\n", note->second.c_str());
        }
        if (auto problem = hookChainProblem(agent->values)) {
            std::fprintf(stderr, "memtap: warning: %s\n", problem->c_str());
        }
    }
    return 0;
}

int
runStatus(const ParsedArgs& args) {
    pid_t pid = parsePidOrThrow(args.positional[0]);
    PymallocWait wait;
    if (auto v = args.value("--timeout")) {
        wait.timeout =
            std::chrono::milliseconds(static_cast<int64_t>(parseSecondsOrThrow(*v, "--timeout") * 1000));
    }
    // Progress only where a person waits: on a terminal. The final report
    // says the same when the read did not come.
    if (::isatty(STDERR_FILENO)) {
        wait.progress = progressToStderr;
    }
    auto status = readTargetStatusOrThrow(pid);
    auto memory = breakdownInputFor(pid, status.attached, status.rssBytes, status.agent);
    if (status.attached) {
        memory.pymalloc = pollPymalloc(pid, wait);
    }
    memory.nowUnixMs = status.nowUnixMs;
    status.memory = memory;
    std::string out = args.has("--json") ? renderStatusJson(status) : renderStatusText(status);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

int
runDetach(const ParsedArgs& args) {
    pid_t pid = parsePidOrThrow(args.positional[0]);
    double seconds = 10;
    if (auto v = args.value("--timeout")) {
        seconds = parseSecondsOrThrow(*v, "--timeout");
    }
    inject::detachOrThrow(pid, std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
    std::printf("detached from process %d; its allocators are back as they were\n", pid);
    return 0;
}

std::vector<CommandSpec>
coreCommands() {
    return {
        {"attach", "PID", "Attach to a running CPython process and hook its allocators.",
         "Returns once the hooks are live. The process keeps running throughout; one of its threads\n"
         "is borrowed for a few milliseconds at a safe point. Nothing is installed in its environment.\n"
         "Says since when memory is traced and how much RSS predates it (never traced). On a process\n"
         "already attached, --exact or --sample-bytes asking for another mode than the agent's is\n"
         "refused with exit 1 (detach first to change the mode).",
         1, 1, attachOptionSpecs(), runAttach},
        {"status",
         "PID",
         "Show whether memtap is attached to PID, and what it has seen.",
         "--json prints one JSON object: attached, pid, python, mode, sample_bytes, frames,\n"
         "attached_at_unix_ms (traced since), rss_at_attach_bytes (RSS then: not traced),\n"
         "allocations_seen, traced_bytes, traced_count, peak_traced_bytes, peak_at (unix ms),\n"
         "peak_unix_ms, peak_breakdown_bytes, malloc_free_bytes, hooks, hook_chain,\n"
         "hook_reinstalls, hook_reinstall_unix_ms, hook_reinstall_domains, hook_problem (plain words,\n"
         "only when hooks were cut out by another allocator hook), rss_bytes, the agent's malloc_*\n"
         "keys (mallinfo2), and RSS explained: rss {rss_bytes, anonymous_bytes, file_bytes,\n"
         "shmem_bytes, agent_code_bytes, heap_bytes, stack_bytes, stacks, other_anonymous_bytes}\n"
         "(from /proc/PID/smaps), pymalloc {state: read|not_read|disabled|old_agent, arenas,\n"
         "arena_bytes, allocated_bytes, available_bytes, unused_pool_bytes, overhead_bytes, "
         "free_bytes,\n"
         "read_unix_ms, stale (when these are an earlier read's: its age); or not_read_reason},\n"
         "malloc_resident_free_bytes, unexplained_bytes, diagnoses.\n"
         "\n"
         "pymalloc's figures are read by the interpreter itself, at its next allocation by a thread\n"
         "holding the GIL (memtap never takes the GIL). A process that allocates nothing (an idle\n"
         "uWSGI worker waiting for a request) does not answer: after --timeout the rest is printed\n"
         "and pymalloc is reported as not read, with exit status 0. No thread waits for it: the read\n"
         "stays armed until the interpreter runs it (a later status shows it) or detach disarms it.",
         1,
         1,
         {{"--json", "", "print JSON"},
          {"--timeout", "S", "wait at most S seconds for pymalloc's figures (default 2)"}},
         runStatus},
        {"detach",
         "PID",
         "Remove the hooks and end the agent's thread; the process runs on as before.",
         "",
         1,
         1,
         {{"--timeout", "S", "wait at most S seconds for the agent (default 10)"}},
         runDetach},
    };
}

} // namespace memtap::cli
