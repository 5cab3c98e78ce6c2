// Where the padding stub (scratch_stub.h) goes: the padding after the last
// executable segment of libc or CPython's module, and the bytes the file has
// there, which go back when the borrow ends (a killed memtap's stub bytes are
// overwritten the same way).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "attach/remote_memory.h"
#include "base/remote_ptr.h"
#include "symbols/process_modules.h"
#include "symbols/python_discovery.h"

namespace memtap::inject {

struct PaddingSlot {
    RemotePtr address;
    std::vector<uint8_t> original;
};

// NotSupported when neither module has room for kPaddingStubBytes.
PaddingSlot findPaddingSlotOrThrow(pid_t pid, const symbols::ProcessModules& modules,
                                   const symbols::PythonTarget& python);

// Writes the file's bytes back over the padding slot when the borrow ends.
class PaddingRestore {
public:
    PaddingRestore(const attach::RemoteMemory& memory, const PaddingSlot& slot)
        : memory_(memory), slot_(slot) {}
    ~PaddingRestore();
    PaddingRestore(const PaddingRestore&) = delete;
    PaddingRestore& operator=(const PaddingRestore&) = delete;

private:
    const attach::RemoteMemory& memory_;
    const PaddingSlot& slot_;
};

} // namespace memtap::inject
