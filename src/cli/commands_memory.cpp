// trim: glibc's free heap memory handed back to the OS, on the user's word.
#include <cstdio>
#include <string>

#include "attach/proc.h"
#include "base/error.h"
#include "cli/commands.h"
#include "cli/target_status.h"
#include "inject/control_client.h"
#include "report/text_report.h"

namespace memtap::cli {

namespace {

std::string
size(int64_t bytes, bool sign = false) {
    return report::formatSize(static_cast<double>(bytes), sign);
}

int
runTrim(const ParsedArgs& args) {
    pid_t pid = parsePidOrThrow(args.positional[0]);
    attach::readProcessInfoOrThrow(pid);
    auto client = inject::AgentClient::connectOrThrow(
        pid, fmt::format("attach first with `memtap attach {}`", pid));
    inject::MallocTrimReply reply;
    try {
        // malloc_trim walks every arena's free chunks; seconds on a heap of many GiB.
        reply = std::move(client).mallocTrimOrThrow(std::chrono::milliseconds(30000));
    } catch (const Error& e) {
        if (std::string(e.what()).find("unknown command") != std::string::npos) {
            throw Error(ExitCode::NotSupported,
                        fmt::format("the agent in process {} predates `memtap trim`", pid),
                        fmt::format("`memtap detach {}` and attach again with this memtap", pid));
        }
        throw;
    }
    int64_t before = reply.rssBeforeBytes;
    int64_t after = reply.rssAfterBytes;
    int64_t freeBefore = reply.mallocFreeBeforeBytes;
    int64_t freeAfter = reply.mallocFreeAfterBytes;
    if (reply.trimResult == -1) {
        throw Error(ExitCode::NotSupported,
                    fmt::format("the C library of process {} has no malloc_trim (not glibc?)", pid));
    }
    bool released = reply.trimResult == 1;
    std::printf("process %d: rss %s -> %s (%s)\n", pid, size(before).c_str(), size(after).c_str(),
                size(after - before, true).c_str());
    if (released) {
        std::printf("glibc returned free memory to the OS (malloc_trim(0) returned 1); it still counts "
                    "%s as free (%s before), their pages no longer resident until reused\n",
                    size(freeAfter).c_str(), size(freeBefore).c_str());
    } else {
        std::printf("glibc had nothing to return (malloc_trim(0) returned 0; %s free inside its heap, "
                    "in pieces smaller than a page or not at a page boundary)\n",
                    size(freeAfter).c_str());
    }
    return 0;
}

} // namespace

std::vector<CommandSpec>
memoryCommands() {
    return {
        {"trim",
         "PID",
         "Ask glibc in PID to return its free heap memory to the OS (malloc_trim(0)).",
         "The agent's thread calls malloc_trim(0) in the target and reports its RSS before and\n"
         "after (from its /proc/self/statm) and glibc's free bytes. Only on your word: memtap never\n"
         "trims by itself. The free memory stays the process's to reuse; its pages are released\n"
         "with madvise and come back, zeroed, when the process allocates there again. The call\n"
         "holds glibc's arena locks while it runs, so other threads' malloc calls wait meanwhile\n"
         "(milliseconds for hundreds of MiB). `memtap status` names the case where it helps.\n"
         "Exit codes: 3 no such process, 4 agent too old, 7 not attached.",
         1,
         1,
         {},
         runTrim},
    };
}

} // namespace memtap::cli
