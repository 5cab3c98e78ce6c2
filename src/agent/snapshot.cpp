#include "agent/snapshot.h"

#include "agent/agent_state.h"
#include "agent/engine.h"

namespace memtap_agent {

void
formatSnapshot(Text& out) noexcept {
    const memtap_start_args& args = g_agent.args;
    EngineTotals totals = engineTotals();
    out.append("memtap-snapshot 1\nmode ");
    out.append(args.mode == MEMTAP_MODE_EXACT ? "exact" : "sampled");
    out.append("\nsample_bytes ");
    out.appendU64(args.sample_bytes);
    out.append("\ntraced_bytes ");
    out.appendU64(totals.tracedBytes);
    out.append("\ntraced_count ");
    out.appendU64(totals.tracedCount);
    out.append("\nend\n");
}

} // namespace memtap_agent
