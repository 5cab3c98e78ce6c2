#include "inject/agent_image.h"

#include <sys/mman.h>
#include <unistd.h>

#include "agent/protocol.h"
#include "base/error.h"
#include "base/unique_fd.h"
#include "symbols/elf_file.h"

extern "C" const uint8_t memtap_agent_image_begin[];
extern "C" const uint8_t memtap_agent_image_end[];

namespace memtap::inject {

std::span<const uint8_t>
agentImage() {
    return {memtap_agent_image_begin,
            static_cast<size_t>(memtap_agent_image_end - memtap_agent_image_begin)};
}

const AgentImageInfo&
agentImageInfoOrThrow() {
    static const AgentImageInfo info = [] {
        // libelf reads files; a memfd of our own gives the embedded bytes a path.
        UniqueFd fd(::memfd_create("memtap-agent-image", MFD_CLOEXEC));
        if (!fd) {
            throw Error(ExitCode::Failure, describeErrno("memfd_create", errno));
        }
        auto image = agentImage();
        if (::write(fd.get(), image.data(), image.size()) != static_cast<ssize_t>(image.size())) {
            throw Error(ExitCode::Failure, describeErrno("writing the agent image", errno));
        }
        auto elf = symbols::ElfFile::openOrThrow(fmt::format("/proc/self/fd/{}", fd.get()));
        auto entry = elf.findSymbol(MEMTAP_AGENT_ENTRY);
        if (!entry) {
            throw Error(ExitCode::Failure,
                        "the embedded agent has no " MEMTAP_AGENT_ENTRY " (broken build)");
        }
        AgentImageInfo result;
        result.entryOffset = entry->value - elf.firstLoadVaddr();
        result.buildId = elf.buildId();
        result.memfdName = fmt::format("{}-{}", MEMTAP_AGENT_MEMFD_NAME, result.buildId.substr(0, 12));
        return result;
    }();
    return info;
}

} // namespace memtap::inject
