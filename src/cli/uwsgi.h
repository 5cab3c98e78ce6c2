// uWSGI awareness: a master process forks the workers that run the app.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace memtap::cli {

// Direct children of `pid` that are uWSGI workers (same executable).
std::vector<pid_t> uwsgiWorkersOf(pid_t pid);
bool isUwsgiMaster(pid_t pid);

// For a uWSGI master, throws Error(Usage) explaining that the workers do the
// work and listing them; for anything else, returns.
void explainUwsgiMasterOrContinue(pid_t pid, const std::string& command);

} // namespace memtap::cli
