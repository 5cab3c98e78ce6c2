// The payload of the "snapshot" command (protocol.h: snapshot format).
#ifndef MEMTAP_AGENT_SNAPSHOT_H
#define MEMTAP_AGENT_SNAPSHOT_H

#include "agent/text.h"

namespace memtap_agent {

void formatSnapshot(Text& out) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_SNAPSHOT_H
