// Every memtap command, as a CommandSpec the dispatcher in main.cpp lists.
#pragma once

#include <vector>

#include "cli/args.h"

namespace memtap::cli {

std::vector<CommandSpec> coreCommands();     // attach, status, detach
std::vector<CommandSpec> snapshotCommands(); // snapshot, diff
std::vector<CommandSpec> watchCommands();    // watch

} // namespace memtap::cli
