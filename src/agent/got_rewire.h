// Rewiring the GOT slots through which loaded modules call a function.
//
// A module calls an imported function through its GOT: a slot that ld.so
// fills with the function's address (R_X86_64_JUMP_SLOT for PLT calls,
// R_X86_64_GLOB_DAT for -fno-plt calls and address-taken functions). A
// GotRewirer points the slots its chooser picks at hooks, one aligned 8-byte
// store each (a slot inside PT_GNU_RELRO has its page made writable for that
// store only), remembers what each held, and puts it back on restore(). A
// slot that no longer holds our hook on restore was written by someone else
// and is left as it is. Hooks must stay callable after restore (the agent is
// never unloaded): a caller may have read the slot just before.
//
// Agent thread only; a few hundred bytes of static state, no allocation.
#ifndef MEMTAP_AGENT_GOT_REWIRE_H
#define MEMTAP_AGENT_GOT_REWIRE_H

#include <cstdint>
#include <link.h>

namespace memtap_agent {

// The hook for `symbol` in module number `module` (GotRewirer assigns the
// numbers, in the order modules are first rewired), or 0 to leave it.
using ChooseHook = uintptr_t (*)(const char* symbol, uint32_t module, void* context);
// Whether a module is to be looked at at all (the agent itself never is).
using WantModule = bool (*)(const dl_phdr_info* info, void* context);

class GotRewirer {
public:
    static constexpr uint32_t kMaxSlots = 256;
    static constexpr uint32_t kMaxModules = 32;

    // Points the chosen slots of every wanted module at their hooks (again,
    // for slots someone rewrote since: lazy binding resolving a PLT entry at
    // the moment we wrote it). Cheap when no module was loaded since the
    // last call and every slot still holds our hook.
    void rewire(WantModule want, ChooseHook choose, void* context) noexcept;
    // Puts back every slot that still holds our hook; returns how many.
    uint32_t restore() noexcept;

    uint32_t slots() const noexcept { return ours_; }
    uint32_t skipped() const noexcept { return skipped_; }
    // Comma-separated basenames of the rewired modules (truncated), or "".
    const char* moduleNames() const noexcept { return names_; }
    // The basename of module number `module`, "" if none.
    const char* moduleName(uint32_t module) const noexcept;
    // "MODULE: reason" of the first slot left alone, or "".
    const char* skipNote() const noexcept { return skipNote_; }

    // For the scan callbacks (got_rewire.cpp).
    struct Scan;
    void scanModule(const dl_phdr_info* info, Scan& scan) noexcept;

private:
    struct Slot {
        uintptr_t address;    // the GOT entry
        uintptr_t original;   // what it held before our hook
        uintptr_t moduleBase; // dlpi_addr of its module, to find it again
        uintptr_t hook;       // the hook written there
    };
    bool rewireSlot(const dl_phdr_info* info, uintptr_t address, uintptr_t hook) noexcept;
    uint32_t moduleIndex(const dl_phdr_info* info) noexcept;
    void skip(const dl_phdr_info* info, const char* why) noexcept;
    bool allSlotsOurs() const noexcept;

    Slot slots_[kMaxSlots] = {};
    uint32_t slotCount_ = 0;
    uintptr_t moduleBases_[kMaxModules] = {};
    char moduleNames_[kMaxModules][96] = {};
    uint32_t moduleCount_ = 0;
    unsigned long long seenAdds_ = ~0ULL; // dlpi_adds at the last full scan
    // Of the last full scan:
    uint32_t ours_ = 0;
    uint32_t skipped_ = 0;
    char names_[512] = {};
    char skipNote_[160] = {};
};

} // namespace memtap_agent

#endif // MEMTAP_AGENT_GOT_REWIRE_H
