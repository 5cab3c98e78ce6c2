// The OS names of the target's threads, read by the agent when it formats a
// snapshot (protocol.h, "thread" lines).
//
// Why the agent and not the host: the thread ids come from gettid() in the
// target, so they are ids of the target's pid namespace. The agent's
// /proc/self/task/TID/comm names the same thread; a host in another pid
// namespace (a container seen from outside) would look up another id, or
// none. And a name read at snapshot time is stored with the snapshot, so a
// diff of stored snapshots still names threads that have exited since.
//
// Agent thread only (snapshots are formatted there).
#ifndef MEMTAP_AGENT_THREAD_NAMES_H
#define MEMTAP_AGENT_THREAD_NAMES_H

#include <cstdint>

namespace memtap_agent {

enum class ThreadLife : uint8_t {
    kRunning, // /proc/self/task/TID exists: name is its comm now
    kExited,  // no such thread any more: name is what an earlier snapshot read, or ""
    kUnknown, // /proc is not readable here: nothing can be said
};

struct ThreadName {
    // comm is at most 15 bytes (TASK_COMM_LEN 16 with the NUL, linux
    // include/linux/sched.h).
    char text[16];
    ThreadLife state;
};

// Reads the name of thread tid of this process; remembers it, so that a
// thread that exited before a later snapshot keeps its last name there.
void readThreadName(uint32_t tid, ThreadName* out) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_THREAD_NAMES_H
