// Every memtap command, as a CommandSpec the dispatcher in main.cpp lists.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "cli/args.h"
#include "inject/agent_client.h"
#include "inject/injector.h"
#include "report/diff.h"
#include "report/snapshot.h"

namespace memtap::cli {

std::vector<CommandSpec> coreCommands();     // attach, status, detach
std::vector<CommandSpec> snapshotCommands(); // snapshot, diff, peak-reset
std::vector<CommandSpec> watchCommands();    // watch
std::vector<CommandSpec> recordCommands();   // record
std::vector<CommandSpec> reportCommands();   // report
std::vector<CommandSpec> memoryCommands();   // trim
std::vector<CommandSpec> heapCommands();     // refs, types

// Shared by the commands that attach (attach, watch): the options and how
// they become AttachOptions (commands_core.cpp).
std::vector<OptionSpec> attachOptionSpecs();
inject::AttachOptions attachOptionsFrom(const ParsedArgs& args);

// Which mode flags the command line gave (a default is not a request).
struct ModeFlags {
    bool exact = false;
    bool sampleBytes = false;
    bool native = false;
};
ModeFlags modeFlagsFrom(const ParsedArgs& args);
// For an agent already serving (its status keys): Error(Failure) when the
// flags ask for another mode or sampling interval than the one it runs,
// because the agent keeps its mode and a dropped flag would pass sampled
// figures off as exact ones.
void refuseModeChangeOrContinue(pid_t pid, const ModeFlags& asked, const inject::AttachOptions& options,
                                const inject::AgentStatus& agent);

// The agent's "snapshot" reply, as text (commands_snapshot.cpp).
// Error(NotAttached) when no agent serves the process.
std::string takeSnapshotTextOrThrow(pid_t pid);
// The agent's "snapshot peak" reply: the breakdown at the traced peak.
std::string takePeakSnapshotTextOrThrow(pid_t pid);
// "peak-reset": the peak becomes what is traced now.
void resetPeakOrThrow(pid_t pid);

// --by for diff and watch (commands_snapshot.cpp): Error(Usage) on a bad key.
report::GroupBy parseGroupByOrThrow(const std::string& text);
std::string groupByOptionHelp();
// The --help paragraph on --by thread and --by user.
std::string groupByDetails();
// "thread 4242 (worker-3)" from the snapshots' thread lines, newer first.
std::string threadScopeText(int64_t tid, const report::Snapshot& older, const report::Snapshot& newer);

} // namespace memtap::cli
