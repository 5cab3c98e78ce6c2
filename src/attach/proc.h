// What /proc says about a process and its threads, read without ptrace.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/remote_ptr.h"

namespace memtap::attach {

struct ProcessInfo {
    pid_t pid = 0;
    std::string name; // "Name:" in /proc/PID/status (comm)
    char state = '?'; // 'R', 'S', 'D', 'T' (stopped), 't' (tracing stop), 'Z'...
    uid_t effectiveUid = 0;
    pid_t tracerPid = 0;
    int threads = 0;
};

// Error(NoSuchProcess) when /proc/PID does not exist.
ProcessInfo readProcessInfoOrThrow(pid_t pid);

// Thread ids in /proc/PID/task; empty if the process is gone.
std::vector<pid_t> listThreads(pid_t pid);

// /proc/PID/task/TID/syscall, readable without stopping the thread: a blocked
// thread shows the syscall it sleeps in (see proc(5), "syscall").
struct ThreadSyscall {
    enum class Kind { Running, InSyscall, BlockedOutsideSyscall, Unknown } kind = Kind::Unknown;
    long number = -1;
    RemotePtr stackPointer;
    RemotePtr programCounter;
};
ThreadSyscall readThreadSyscall(pid_t pid, pid_t tid);
ThreadSyscall parseThreadSyscall(const std::string& text);

// Current open file descriptors of the process (for tests and sanity checks).
int countOpenFds(pid_t pid);

// A whole file, read to EOF (the st_size of /proc files is 0); nullopt when
// it cannot be opened or read.
std::optional<std::string> readWholeFile(const std::string& path);

// /proc/PID/NAME, whole. Error(NoSuchProcess) when the process is gone,
// Error(PermissionDenied) with processAccessHint() when memtap may not read it.
std::string readProcFileOrThrow(pid_t pid, const std::string& name);

// starttime of a process (/proc/PID/stat field 22, clock ticks since boot):
// with the PID, it names one process and no later one that reuses the PID.
// nullopt if the process is gone.
std::optional<uint64_t> tryReadProcessStartTime(pid_t pid);

} // namespace memtap::attach
