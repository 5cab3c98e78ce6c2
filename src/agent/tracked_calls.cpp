#include "agent/tracked_calls.h"

#include "agent/engine.h"
#include "agent/thread_state.h"

#include <cstring>
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

namespace memtap_agent {
namespace {

using TrackFn = int (*)(unsigned int, unsigned long, size_t);
using UntrackFn = int (*)(unsigned int, unsigned long);

// Written by the agent thread before any slot points at a hook, never again.
constinit TrackFn g_realTrack = nullptr;
constinit UntrackFn g_realUntrack = nullptr;

int
trackHook(unsigned int domain, unsigned long ptr, size_t size) {
    ThreadState& t = g_thread;
    if (t.busy || !g_recording.load(std::memory_order_relaxed)) {
        return g_realTrack(domain, ptr, size);
    }
    // busy covers the real call too: a running tracemalloc allocates its
    // trace through the raw domain, which must not be counted again.
    t.busy = 1;
    int rc = g_realTrack(domain, ptr, size);
    engineOnTracked(t, domain, ptr, size);
    t.busy = 0;
    return rc;
}

int
untrackHook(unsigned int domain, unsigned long ptr) {
    ThreadState& t = g_thread;
    if (t.busy || !g_recording.load(std::memory_order_relaxed)) {
        return g_realUntrack(domain, ptr);
    }
    t.busy = 1;
    int rc = g_realUntrack(domain, ptr);
    engineOnUntracked(t, domain, ptr);
    t.busy = 0;
    return rc;
}

// One slot per (module, function); numpy has two. 64 covers every
// extension of a large service; past that a slot is skipped and said so.
constexpr uint32_t kMaxSlots = 64;

struct Slot {
    uintptr_t address;    // the GOT entry
    uintptr_t original;   // what it held before our hook
    uintptr_t moduleBase; // dlpi_addr of its module, to find it again
    uintptr_t hook;       // the hook written there
};

constinit Slot g_slots[kMaxSlots] = {};
constinit uint32_t g_slotCount = 0;
constinit unsigned long long g_seenAdds = ~0ULL; // dlpi_adds at the last scan
constinit TrackedCallsReport g_report = {};

void
appendText(char* out, size_t capacity, const char* text) {
    size_t used = std::strlen(out);
    while (*text != '\0' && used + 1 < capacity) {
        out[used++] = *text++;
    }
    out[used] = '\0';
}

const char*
baseName(const char* path) {
    const char* slash = std::strrchr(path, '/');
    return slash != nullptr ? slash + 1 : path;
}

// The in-memory dynamic section: glibc relocates most d_ptr values by the
// load bias, the vDSO's are not; a value below the bias is unrelocated.
uintptr_t
dynamicAddress(const dl_phdr_info* info, ElfW(Addr) value) {
    return value < info->dlpi_addr ? value + info->dlpi_addr : value;
}

struct ScanContext {
    const PythonApi* api;
    uintptr_t selfBase; // the agent's own module, never rewired
    unsigned long long adds;
};

Slot*
findSlot(uintptr_t address) {
    for (uint32_t i = 0; i < g_slotCount; ++i) {
        if (g_slots[i].address == address) {
            return &g_slots[i];
        }
    }
    return nullptr;
}

void
skip(const dl_phdr_info* info, const char* why) {
    if (g_report.skipped++ == 0) {
        appendText(g_report.skippedWhy, sizeof(g_report.skippedWhy), baseName(info->dlpi_name));
        appendText(g_report.skippedWhy, sizeof(g_report.skippedWhy), ": ");
        appendText(g_report.skippedWhy, sizeof(g_report.skippedWhy), why);
    }
}

// One aligned 8-byte store, atomic for callers reading the slot; a RELRO
// page is read-only and is made writable for the store alone.
bool
writeSlot(const dl_phdr_info* info, uintptr_t address, uintptr_t value) {
    uintptr_t relroStart = 0;
    uintptr_t relroEnd = 0;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type == PT_GNU_RELRO) {
            relroStart = info->dlpi_addr + ph.p_vaddr;
            relroEnd = relroStart + ph.p_memsz;
        }
    }
    bool inRelro = address >= relroStart && address < relroEnd;
    auto pageSize = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    void* page = reinterpret_cast<void*>(address & ~(pageSize - 1));
    if (inRelro && mprotect(page, pageSize, PROT_READ | PROT_WRITE) != 0) {
        return false;
    }
    __atomic_store_n(reinterpret_cast<uintptr_t*>(address), value, __ATOMIC_RELEASE);
    if (inRelro) {
        mprotect(page, pageSize, PROT_READ);
    }
    return true;
}

// True when the slot holds our hook afterwards.
bool
rewireSlot(const dl_phdr_info* info, uintptr_t address, uintptr_t hook) {
    if (address % sizeof(uintptr_t) != 0) {
        skip(info, "misaligned GOT slot");
        return false;
    }
    uintptr_t current = __atomic_load_n(reinterpret_cast<uintptr_t*>(address), __ATOMIC_ACQUIRE);
    if (current == hook) {
        return true;
    }
    // Known and rewritten by someone since (lazy binding), or new.
    Slot* slot = findSlot(address);
    bool added = slot == nullptr;
    if (added) {
        if (g_slotCount == kMaxSlots) {
            skip(info, "too many modules call PyTraceMalloc_Track");
            return false;
        }
        slot = &g_slots[g_slotCount++];
    }
    *slot = Slot{address, current, info->dlpi_addr, hook};
    if (!writeSlot(info, address, hook)) {
        if (added) {
            --g_slotCount;
        }
        skip(info, "its GOT page could not be made writable");
        return false;
    }
    return true;
}

// Relocations of one table (DT_JMPREL or DT_RELA) that name our symbols;
// returns how many of their slots hold our hooks now.
uint32_t
scanRelocations(const dl_phdr_info* info, const ScanContext& scan, const ElfW(Rela) * relocs,
                size_t bytes, const ElfW(Sym) * symbols, const char* strings) {
    uint32_t ours = 0;
    for (size_t i = 0; i < bytes / sizeof(ElfW(Rela)); ++i) {
        const ElfW(Rela)& r = relocs[i];
        uint32_t type = ELF64_R_TYPE(r.r_info);
        if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) {
            continue;
        }
        const char* name = strings + symbols[ELF64_R_SYM(r.r_info)].st_name;
        uintptr_t hook = 0;
        if (std::strcmp(name, scan.api->traceMallocTrackName) == 0) {
            hook = reinterpret_cast<uintptr_t>(&trackHook);
        } else if (std::strcmp(name, scan.api->traceMallocUntrackName) == 0) {
            hook = reinterpret_cast<uintptr_t>(&untrackHook);
        } else {
            continue;
        }
        ours += rewireSlot(info, info->dlpi_addr + r.r_offset, hook) ? 1 : 0;
    }
    return ours;
}

int
scanModule(dl_phdr_info* info, size_t size, void* arg) {
    auto& scan = *static_cast<ScanContext*>(arg);
    if (size >= offsetof(dl_phdr_info, dlpi_adds) + sizeof(info->dlpi_adds)) {
        scan.adds = info->dlpi_adds;
    }
    if (info->dlpi_addr == scan.selfBase) {
        return 0;
    }
    const ElfW(Dyn)* dynamic = nullptr;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) {
            dynamic = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
        }
    }
    if (dynamic == nullptr) {
        return 0;
    }
    const ElfW(Sym)* symbols = nullptr;
    const char* strings = nullptr;
    const ElfW(Rela)* jmprel = nullptr;
    const ElfW(Rela)* rela = nullptr;
    size_t jmprelBytes = 0;
    size_t relaBytes = 0;
    bool pltIsRela = true;
    for (const ElfW(Dyn)* d = dynamic; d->d_tag != DT_NULL; ++d) {
        switch (d->d_tag) {
        case DT_SYMTAB:
            symbols = reinterpret_cast<const ElfW(Sym)*>(dynamicAddress(info, d->d_un.d_ptr));
            break;
        case DT_STRTAB:
            strings = reinterpret_cast<const char*>(dynamicAddress(info, d->d_un.d_ptr));
            break;
        case DT_JMPREL:
            jmprel = reinterpret_cast<const ElfW(Rela)*>(dynamicAddress(info, d->d_un.d_ptr));
            break;
        case DT_PLTRELSZ:
            jmprelBytes = d->d_un.d_val;
            break;
        case DT_PLTREL:
            pltIsRela = d->d_un.d_val == DT_RELA; // always on x86-64 (psABI)
            break;
        case DT_RELA:
            rela = reinterpret_cast<const ElfW(Rela)*>(dynamicAddress(info, d->d_un.d_ptr));
            break;
        case DT_RELASZ:
            relaBytes = d->d_un.d_val;
            break;
        default:
            break;
        }
    }
    if (symbols == nullptr || strings == nullptr) {
        return 0;
    }
    uint32_t ours = 0;
    if (jmprel != nullptr && pltIsRela) {
        ours += scanRelocations(info, scan, jmprel, jmprelBytes, symbols, strings);
    }
    if (rela != nullptr) {
        ours += scanRelocations(info, scan, rela, relaBytes, symbols, strings);
    }
    g_report.slots += ours;
    if (ours > 0) {
        const char* name = info->dlpi_name[0] != '\0' ? baseName(info->dlpi_name) : "(main program)";
        if (g_report.names[0] != '\0') {
            appendText(g_report.names, sizeof(g_report.names), ",");
        }
        appendText(g_report.names, sizeof(g_report.names), name);
        ++g_report.modules;
    }
    return 0;
}

// Only the count of loads, to tell whether a rescan is due.
int
readAdds(dl_phdr_info* info, size_t size, void* arg) {
    if (size >= offsetof(dl_phdr_info, dlpi_adds) + sizeof(info->dlpi_adds)) {
        *static_cast<unsigned long long*>(arg) = info->dlpi_adds;
    }
    return 1; // the first module is enough
}

uintptr_t
selfBase() {
    Dl_info self{};
    dladdr(reinterpret_cast<void*>(&trackHook), &self);
    return reinterpret_cast<uintptr_t>(self.dli_fbase);
}

struct FindContext {
    uintptr_t base;
    dl_phdr_info found;
    bool present;
};

int
findModule(dl_phdr_info* info, size_t, void* arg) {
    auto& find = *static_cast<FindContext*>(arg);
    if (info->dlpi_addr == find.base) {
        find.found = *info;
        find.present = true;
        return 1;
    }
    return 0;
}

} // namespace

void
rewireTrackedCalls(const PythonApi& api) noexcept {
    if (api.traceMallocTrack == nullptr) {
        return;
    }
    g_realTrack = api.traceMallocTrack;
    g_realUntrack = api.traceMallocUntrack;
    unsigned long long adds = 0;
    dl_iterate_phdr(readAdds, &adds);
    if (adds == g_seenAdds) {
        // No module loaded since: only slots someone rewrote need our hook
        // again (lazy binding resolving a PLT entry while we wrote it).
        bool allOurs = true;
        for (uint32_t i = 0; i < g_slotCount; ++i) {
            allOurs = allOurs && __atomic_load_n(reinterpret_cast<uintptr_t*>(g_slots[i].address),
                                                 __ATOMIC_ACQUIRE) == g_slots[i].hook;
        }
        if (allOurs) {
            return;
        }
    }
    g_report = TrackedCallsReport{};
    g_report.available = true;
    ScanContext scan{&api, selfBase(), 0};
    dl_iterate_phdr(scanModule, &scan);
    g_seenAdds = scan.adds;
}

uint32_t
restoreTrackedCalls() noexcept {
    uint32_t restored = 0;
    for (uint32_t i = 0; i < g_slotCount; ++i) {
        const Slot& slot = g_slots[i];
        // A module unloaded since (dlclose) took its GOT with it.
        FindContext find{slot.moduleBase, {}, false};
        dl_iterate_phdr(findModule, &find);
        if (!find.present) {
            continue;
        }
        uintptr_t current =
            __atomic_load_n(reinterpret_cast<uintptr_t*>(slot.address), __ATOMIC_ACQUIRE);
        if (current == slot.hook && writeSlot(&find.found, slot.address, slot.original)) {
            ++restored;
        }
    }
    g_slotCount = 0;
    g_seenAdds = ~0ULL;
    g_report = TrackedCallsReport{};
    return restored;
}

TrackedCallsReport
trackedCallsReport() noexcept {
    return g_report;
}

} // namespace memtap_agent
