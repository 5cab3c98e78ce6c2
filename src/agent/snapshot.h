// The payload of the "snapshot" command (protocol.h: snapshot format).
#ifndef MEMTAP_AGENT_SNAPSHOT_H
#define MEMTAP_AGENT_SNAPSHOT_H

#include "agent/engine.h"
#include "agent/text.h"

namespace memtap_agent {

// kPeak: the breakdown at the traced high-water mark ("snapshot peak").
void formatSnapshot(Text& out, SnapshotKind kind) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_SNAPSHOT_H
