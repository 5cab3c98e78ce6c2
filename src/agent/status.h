// The payload of the "status" command (protocol.h lists the keys).
#ifndef MEMTAP_AGENT_STATUS_H
#define MEMTAP_AGENT_STATUS_H

#include "agent/text.h"

namespace memtap_agent {

void formatStatus(Text& out) noexcept;

// Records g_agent.attachedAtUnixMs and rssAtAttachBytes (agent thread, once
// the hooks are live). RSS from /proc/self/statm (proc(5): field 2, pages).
void recordAttachMoment() noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_STATUS_H
