// Scratch mappings that a memtap killed mid-attach left in the target
// (scratch_stub.h has the layout): found by their layout and header, and
// whether the next attach may take one over.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "attach/remote_memory.h"
#include "base/remote_ptr.h"

namespace memtap::inject {

// A scratch mapping left by a memtap that was killed mid-attach, safe to
// take over: its owner process is gone and no call of its is in flight.
struct LeftoverScratch {
    RemotePtr base;
    uint64_t size = 0;
    bool adoptable = false;    // false: in use (owner alive, or a call in flight)
    bool dataWritable = false; // false: its memtap died before mapping the data part
};
std::vector<LeftoverScratch> findLeftoverScratch(pid_t pid, const attach::RemoteMemory& memory);

// This process's start time (/proc/self/stat field 22), stored as the owner's.
uint64_t processStartTime(pid_t pid);

} // namespace memtap::inject
