#include "agent/gil_work.h"

namespace memtap_agent {

constinit std::atomic<uint32_t> g_hookGate{0};
constinit std::atomic<size_t> g_objectJumpLimit{0};
constinit std::atomic<size_t> g_rawJumpLimit{0};

void
publishJumpLimits() noexcept {
    // seq_cst throughout: a caller's re-read must see any change whose own
    // publish stored before this caller's stores (gil_work.h).
    uint32_t gate = g_hookGate.load(std::memory_order_seq_cst);
    for (;;) {
        g_objectJumpLimit.store(gate == kGateFastPath ? kFastObjectBytes + 1 : 0,
                                std::memory_order_seq_cst);
        g_rawJumpLimit.store((gate & kGateFastPath) != 0 ? kFastRawBytes + 1 : 0,
                             std::memory_order_seq_cst);
        uint32_t now = g_hookGate.load(std::memory_order_seq_cst);
        if (now == gate) {
            return;
        }
        gate = now;
    }
}

} // namespace memtap_agent
