// How a target that memtap watched ended, in words, for the one line watch
// prints when its target dies under it.
//
// memtap is not the target's parent, so it cannot wait for it: the wait
// status is read from /proc/PID/stat field 52 (exit_code, proc(5), Linux
// 3.5+), which the kernel fills in once the process is a zombie and keeps
// until its parent reaps it. A process already reaped has left nothing to
// read: then the cause is "status unknown to memtap".
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace memtap::cli {

// "killed by signal 9 (SIGKILL)", "exited with code 3", from a waitpid(2) status.
std::string describeWaitStatus(int status);

// From the text of /proc/PID/stat: the wait status when the state (field 3)
// is Z (zombie) and field 52 is present, else nullopt. The command name
// (field 2) may hold spaces and parentheses: fields are counted after the
// last ')'.
std::optional<int> zombieWaitStatus(std::string_view stat);

// nullopt while the process (the instance started at startTime, /proc field
// 22) runs; else "exited with code 3", "killed by signal 9 (SIGKILL)" or
// "exited (status unknown to memtap)".
std::optional<std::string> tryDescribeDeath(pid_t pid, uint64_t startTime);

} // namespace memtap::cli
