// The agent .so travels inside the memtap binary (.incbin), so nothing is
// installed anywhere, least of all in the target's environment.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/remote_ptr.h"

namespace memtap::inject {

std::span<const uint8_t> agentImage();

// Facts about the embedded image, read once with libelf.
struct AgentImageInfo {
    uint64_t entryOffset = 0; // st_value of memtap_agent_start (a DSO's first PT_LOAD is at 0)
    std::string buildId;      // hex
    std::string memfdName;    // "memtap-agent-<first 12 hex of build id>"
};
const AgentImageInfo& agentImageInfoOrThrow();

} // namespace memtap::inject
