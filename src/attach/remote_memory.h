// Reads and writes of the target's memory through /proc/PID/mem. Writes go
// through even to read-only or executable pages (the kernel uses FOLL_FORCE
// for a ptrace-capable writer), which is why every write is done by a guard
// that knows how to undo it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/remote_ptr.h"
#include "base/unique_fd.h"

namespace memtap::attach {

class RemoteMemory {
public:
    // Read and write.
    static RemoteMemory openOrThrow(pid_t pid);
    // Read only, for looking (symbols, the unwinder); nullopt when memtap may
    // not, or the process is gone. /proc/PID/mem rather than process_vm_readv:
    // it reads pages that are not readable to the process (PROT_NONE guard
    // pages, with FOLL_FORCE; proc(5)) and container seccomp profiles that
    // refuse process_vm_readv allow it.
    static std::optional<RemoteMemory> tryOpenForReading(pid_t pid);

    void readOrThrow(RemotePtr address, void* buffer, size_t size) const;
    bool tryRead(RemotePtr address, void* buffer, size_t size) const;
    void writeOrThrow(RemotePtr address, const void* data, size_t size) const;
    std::string readCStringOrThrow(RemotePtr address, size_t maxLength = 4096) const;

    template <typename T> T readOrThrow(RemotePtr address) const {
        T value{};
        readOrThrow(address, &value, sizeof(T));
        return value;
    }

    pid_t pid() const { return pid_; }

private:
    RemoteMemory(pid_t pid, UniqueFd fd) : pid_(pid), fd_(std::move(fd)) {}
    pid_t pid_;
    UniqueFd fd_;
};

} // namespace memtap::attach
