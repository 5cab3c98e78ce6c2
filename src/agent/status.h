// The payload of the "status" command (protocol.h lists the keys).
#ifndef MEMTAP_AGENT_STATUS_H
#define MEMTAP_AGENT_STATUS_H

#include "agent/text.h"

namespace memtap_agent {

void formatStatus(Text& out) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_STATUS_H
