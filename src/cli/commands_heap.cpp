// refs and types: the agent's heap walk (src/agent/heap_walk.h), asked for,
// waited on without ever holding the target up, and shown.
#include <poll.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "attach/proc.h"
#include "base/error.h"
#include "cli/commands.h"
#include "cli/heap_walk_client.h"
#include "cli/std_output.h"
#include "cli/terminal.h"
#include "inject/agent_client.h"
#include "report/heap_walk.h"

namespace memtap::cli {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kRequestTimeout{2000};
constexpr milliseconds kPollInterval{50};
constexpr auto kProgressAfter = std::chrono::seconds(1);

bool
interrupted(SignalInbox& signals) {
    return !signals.drain().empty();
}

// Arms one walk and waits for its result, never holding the target: the
// walk runs when a thread of the target that holds the GIL allocates.
report::HeapWalk
runWalkOrThrow(pid_t pid, const std::string& request, Clock::duration timeout, SignalInbox& signals) {
    uint64_t sequence = armHeapWalkOrThrow(pid, request);
    auto start = Clock::now();
    bool toldWaiting = false;
    bool toldRunning = false;
    for (;;) {
        if (interrupted(signals)) {
            cancelHeapWalkQuietly(pid);
            throw Error(ExitCode::Failure, "interrupted: the heap walk was cancelled",
                        "nothing of it is left in the target");
        }
        report::HeapWalk walk = pollHeapWalkOrThrow(pid, sequence);
        std::string state = walk.state();
        if (state == "done") {
            return walk;
        }
        // --timeout bounds the wait for a thread to start the walk; once it
        // runs it ends by itself (--max-objects bounds it) or by Ctrl-C.
        auto now = Clock::now();
        if (state == "armed" && now - start >= timeout) {
            cancelHeapWalkQuietly(pid);
            throw Error(
                ExitCode::Timeout,
                fmt::format("no thread of process {} holding the GIL allocated within {:.1f} s, so the "
                            "heap walk did not run; it was disarmed and nothing is left in the target",
                            pid, std::chrono::duration<double>(timeout).count()),
                "an idle uWSGI worker (no --enable-threads) holds the GIL while it waits for a "
                "request: send it one, or raise --timeout");
        }
        if (state == "armed" && !toldWaiting && now - start >= kProgressAfter) {
            toldWaiting = true;
            std::fprintf(
                stderr,
                "memtap: waiting for a thread of process %d holding the GIL to allocate (an idle "
                "worker runs the walk at its next request); up to %.0f s more, Ctrl-C gives up\n",
                pid, std::chrono::duration<double>(timeout - (now - start)).count());
        }
        if (state == "running" && !toldRunning && now - start >= kProgressAfter) {
            toldRunning = true;
            std::fprintf(stderr,
                         "memtap: walking the heap of process %d (thread %lld; its Python threads "
                         "wait meanwhile, ~0.3 s per million objects); Ctrl-C stops it\n",
                         pid, static_cast<long long>(walk.number("heap_walk_thread")));
        }
        pollfd pfd{signals.fd(), POLLIN, 0};
        ::poll(&pfd, 1, static_cast<int>(kPollInterval.count()));
    }
}

struct WalkOptions {
    uint64_t maxObjects = kDefaultMaxObjects;
    Clock::duration timeout = std::chrono::seconds(10);
    size_t top = 0;
    bool json = false;
};

WalkOptions
walkOptionsFrom(const ParsedArgs& args, size_t defaultTop) {
    WalkOptions o;
    o.top = defaultTop;
    if (auto v = args.value("--max-objects")) {
        o.maxObjects = parseUnsignedOrThrow(*v, "--max-objects", 1000, 1'000'000'000);
    }
    if (auto v = args.value("--timeout")) {
        o.timeout = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(parseSecondsOrThrow(*v, "--timeout")));
    }
    if (auto v = args.value("--top")) {
        o.top = parseUnsignedOrThrow(*v, "--top", 1, 10000);
    }
    o.json = args.has("--json");
    return o;
}

void
printOrThrow(const std::string& text) {
    (void)writeStdoutOrThrow(text);
}

int
runRefs(const ParsedArgs& args) {
    pid_t pid = parsePidOrThrow(args.positional[0]);
    Site site = parseSiteOrThrow(args.positional[1]);
    WalkOptions options = walkOptionsFrom(args, 10);
    attach::readProcessInfoOrThrow(pid);
    inject::AgentStatus status =
        inject::AgentClient::connectOrThrow(pid, attachHint(pid)).statusOrThrow(kRequestTimeout);
    SignalInbox signals(false);
    std::string request = refsRequest(site, options.maxObjects, options.top);
    report::HeapWalk walk = runWalkOrThrow(pid, request, options.timeout, signals);
    report::RefsView view{pid, args.positional[1], status.exact, options.top};
    printOrThrow(options.json ? report::renderRefsJson(walk, view) : report::renderRefsText(walk, view));
    return 0;
}

int
runTypes(const ParsedArgs& args) {
    pid_t pid = parsePidOrThrow(args.positional[0]);
    WalkOptions options = walkOptionsFrom(args, 25);
    double interval = 0;
    if (auto v = args.value("--interval")) {
        interval = parseSecondsOrThrow(*v, "--interval");
    }
    attach::readProcessInfoOrThrow(pid);
    inject::AgentClient::connectOrThrow(pid, attachHint(pid)).statusOrThrow(kRequestTimeout);
    SignalInbox signals(false);
    std::string request = typesRequest(options.maxObjects);
    report::HeapWalk first = runWalkOrThrow(pid, request, options.timeout, signals);
    report::TypesView view{pid, options.top, interval};
    if (interval <= 0) {
        printOrThrow(options.json ? report::renderTypesJson(first, nullptr, view)
                                  : report::renderTypesText(first, nullptr, view));
        return 0;
    }
    std::fprintf(stderr, "memtap: first walk done (%s); the second in %.1f s\n",
                 report::walkCostText(first).c_str(), interval);
    pollfd pfd{signals.fd(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(interval * 1000)) > 0 && interrupted(signals)) {
        throw Error(ExitCode::Failure, "interrupted before the second walk",
                    "nothing is left in the target");
    }
    report::HeapWalk second = runWalkOrThrow(pid, request, options.timeout, signals);
    printOrThrow(options.json ? report::renderTypesJson(second, &first, view)
                              : report::renderTypesText(second, &first, view));
    return 0;
}

std::vector<OptionSpec>
walkOptionSpecs() {
    return {
        {"--max-objects", "N",
         "stop the walk after N objects (default 5,000,000; 25-50 bytes of the target's memory "
         "each, given back when it ends)"},
        {"--timeout", "S",
         "wait at most S seconds for a thread holding the GIL to start the walk (default 10)"},
        {"--json", "", "machine-readable output"},
    };
}

const char* kWalkDetails =
    "The walk runs inside the target, on the next thread holding the GIL that allocates, from\n"
    "within memtap's allocator hook: it reads objects and calls their tp_traverse as the gc does,\n"
    "from every module in sys.modules, then every thread's frame locals, then the objects on the\n"
    "gc's lists that neither reaches: those are told apart as reference cycles reachable only from\n"
    "each other (garbage the gc has not collected yet) or held from outside (C code, an extension,\n"
    "the interpreter). It runs no Python code, creates no object and leaves the gc as it was; its\n"
    "tables are memtap's own mappings, given back when it ends. No memtap thread waits for the\n"
    "GIL: an idle worker that never releases it (uWSGI without --enable-threads) runs the walk at\n"
    "its next request, or --timeout disarms it. Ctrl-C cancels. Exit codes: 2 usage, 3 no such\n"
    "process, 4 interpreter not walkable or agent too old, 6 timeout (walk disarmed), 7 not\n"
    "attached.";

} // namespace

std::vector<CommandSpec>
heapCommands() {
    auto refsOptions = walkOptionSpecs();
    refsOptions.push_back({"--top", "N", "show the N chains that hold the most objects (default 10)"});
    auto typesOptions = walkOptionSpecs();
    typesOptions.push_back({"--top", "N", "show N types (default 25)"});
    typesOptions.push_back({"--interval", "S", "walk twice, S seconds apart, and sort by growth"});
    return {
        {"refs", "PID SITE",
         "What keeps the objects allocated at SITE (FILE:LINE) alive: chains of references from a root.",
         std::string("For the live objects allocated at SITE that memtap traces (all of them with\n"
                     "--exact, the sampled ones otherwise), the chains of references that reach them\n"
                     "from a module global, a frame's local, gc.garbage or a reference cycle nothing\n"
                     "else reaches, grouped and largest first, with the\n"
                     "object that holds them all (\"held by helpers.audit.Audit.entries\"). SITE is a\n"
                     "FILE:LINE as diff and watch show it; FILE may be a tail of the path.\n\n") +
             kWalkDetails,
         2, 2, refsOptions, runRefs},
        {"types", "PID", "Live objects by type (count and size), or their growth between two walks.",
         std::string("Every object the walk reaches, counted by type, whether or not memtap traced its\n"
                     "allocation (objgraph's show_growth with --interval).\n\n") +
             kWalkDetails,
         1, 1, typesOptions, runTypes},
    };
}

} // namespace memtap::cli
