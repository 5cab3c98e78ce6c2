#include "inject/padding_slot.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "base/error.h"
#include "base/unique_fd.h"
#include "inject/scratch_stub.h"
#include "symbols/elf_file.h"

namespace memtap::inject {
namespace {

std::optional<PaddingSlot>
tryFindPaddingSlot(const symbols::Module& module) {
    auto elf = symbols::ElfFile::openOrThrow(module.hostPath);
    auto padding = elf.executablePadding();
    if (!padding) {
        return std::nullopt;
    }
    // The slot sits at the end of the padding, 16-byte aligned.
    uint64_t slotVaddr = (padding->end - kPaddingStubBytes) & ~uint64_t{15};
    if (padding->end < kPaddingStubBytes || slotVaddr < padding->start) {
        return std::nullopt;
    }
    PaddingSlot slot{module.loadBias + slotVaddr, std::vector<uint8_t>(kPaddingStubBytes)};
    UniqueFd fd(::open(module.hostPath.c_str(), O_RDONLY | O_CLOEXEC));
    auto offset = static_cast<off_t>(padding->fileOffset + (slotVaddr - padding->start));
    if (!fd || ::pread(fd.get(), slot.original.data(), slot.original.size(), offset) !=
                   static_cast<ssize_t>(slot.original.size())) {
        return std::nullopt;
    }
    return slot;
}

} // namespace

PaddingSlot
findPaddingSlotOrThrow(pid_t pid, const symbols::ProcessModules& modules,
                       const symbols::PythonTarget& python) {
    for (const symbols::Module* module : {modules.libc(), &python.module}) {
        if (module != nullptr) {
            if (auto slot = tryFindPaddingSlot(*module)) {
                return *slot;
            }
        }
    }
    throw Error(ExitCode::NotSupported,
                fmt::format("no room for memtap's {}-byte stub after the code of libc or CPython in "
                            "process {}",
                            kPaddingStubBytes, pid));
}

PaddingRestore::~PaddingRestore() {
    try {
        memory_.writeOrThrow(slot_.address, slot_.original.data(), slot_.original.size());
    } catch (const std::exception& e) {
        if (::kill(memory_.pid(), 0) == 0) {
            spdlog::warn("could not put back the padding bytes at {}: {}", slot_.address, e.what());
        }
    }
}

} // namespace memtap::inject
