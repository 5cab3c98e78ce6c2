#include "agent/got_rewire.h"

#include <cstddef>
#include <cstring>
#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

namespace memtap_agent {

struct GotRewirer::Scan {
    WantModule want;
    ChooseHook choose;
    void* context;
    uintptr_t selfBase; // the agent's own module, never rewired
    unsigned long long adds;
    GotRewirer* rewirer;
};

namespace {

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

const char*
moduleLabel(const dl_phdr_info* info) {
    return info->dlpi_name[0] != '\0' ? baseName(info->dlpi_name) : "(main program)";
}

// The in-memory dynamic section: glibc relocates most d_ptr values by the
// load bias, the vDSO's are not; a value below the bias is unrelocated.
uintptr_t
dynamicAddress(const dl_phdr_info* info, ElfW(Addr) value) {
    return value < info->dlpi_addr ? value + info->dlpi_addr : value;
}

bool
hasAdds(size_t size) {
    return size >= offsetof(dl_phdr_info, dlpi_adds) + sizeof(unsigned long long);
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

uintptr_t
loadSlot(uintptr_t address) {
    return __atomic_load_n(reinterpret_cast<uintptr_t*>(address), __ATOMIC_ACQUIRE);
}

int
scanCallback(dl_phdr_info* info, size_t size, void* arg) {
    auto& scan = *static_cast<GotRewirer::Scan*>(arg);
    if (hasAdds(size)) {
        scan.adds = info->dlpi_adds;
    }
    scan.rewirer->scanModule(info, scan);
    return 0;
}

// Only the count of loads, to tell whether a full scan is due.
int
addsCallback(dl_phdr_info* info, size_t size, void* arg) {
    if (hasAdds(size)) {
        *static_cast<unsigned long long*>(arg) = info->dlpi_adds;
    }
    return 1; // the first module is enough
}

struct FindModule {
    uintptr_t base;
    dl_phdr_info found;
    bool present;
};

int
findCallback(dl_phdr_info* info, size_t, void* arg) {
    auto& find = *static_cast<FindModule*>(arg);
    if (info->dlpi_addr == find.base) {
        find.found = *info;
        find.present = true;
        return 1;
    }
    return 0;
}

uintptr_t
selfBase() {
    Dl_info self{};
    dladdr(reinterpret_cast<void*>(&selfBase), &self);
    return reinterpret_cast<uintptr_t>(self.dli_fbase);
}

} // namespace

const char*
GotRewirer::moduleName(uint32_t module) const noexcept {
    return module < moduleCount_ ? moduleNames_[module] : "";
}

void
GotRewirer::skip(const dl_phdr_info* info, const char* why) noexcept {
    if (skipped_++ == 0) {
        appendText(skipNote_, sizeof(skipNote_), moduleLabel(info));
        appendText(skipNote_, sizeof(skipNote_), ": ");
        appendText(skipNote_, sizeof(skipNote_), why);
    }
}

uint32_t
GotRewirer::moduleIndex(const dl_phdr_info* info) noexcept {
    for (uint32_t i = 0; i < moduleCount_; ++i) {
        if (moduleBases_[i] == info->dlpi_addr) {
            return i;
        }
    }
    if (moduleCount_ == kMaxModules) {
        return kMaxModules;
    }
    moduleBases_[moduleCount_] = info->dlpi_addr;
    moduleNames_[moduleCount_][0] = '\0';
    appendText(moduleNames_[moduleCount_], sizeof(moduleNames_[0]), moduleLabel(info));
    return moduleCount_++;
}

// True when the slot holds our hook afterwards.
bool
GotRewirer::rewireSlot(const dl_phdr_info* info, uintptr_t address, uintptr_t hook) noexcept {
    if (address % sizeof(uintptr_t) != 0) {
        skip(info, "misaligned GOT slot");
        return false;
    }
    uintptr_t current = loadSlot(address);
    if (current == hook) {
        return true;
    }
    // Known and rewritten by someone since (lazy binding), or new.
    Slot* slot = nullptr;
    for (uint32_t i = 0; i < slotCount_ && slot == nullptr; ++i) {
        slot = slots_[i].address == address ? &slots_[i] : nullptr;
    }
    bool added = slot == nullptr;
    if (added) {
        if (slotCount_ == kMaxSlots) {
            skip(info, "too many GOT slots to rewire");
            return false;
        }
        slot = &slots_[slotCount_++];
    }
    *slot = Slot{address, current, info->dlpi_addr, hook};
    if (!writeSlot(info, address, hook)) {
        if (added) {
            --slotCount_;
        }
        skip(info, "its GOT page could not be made writable");
        return false;
    }
    return true;
}

void
GotRewirer::scanModule(const dl_phdr_info* info, Scan& scan) noexcept {
    if (info->dlpi_addr == scan.selfBase || !scan.want(info, scan.context)) {
        return;
    }
    const ElfW(Dyn)* dynamic = nullptr;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) {
            dynamic = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
        }
    }
    if (dynamic == nullptr) {
        return;
    }
    const ElfW(Sym)* symbols = nullptr;
    const char* strings = nullptr;
    const ElfW(Rela) * tables[2] = {nullptr, nullptr}; // DT_JMPREL, DT_RELA
    size_t tableBytes[2] = {0, 0};
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
            tables[0] = reinterpret_cast<const ElfW(Rela)*>(dynamicAddress(info, d->d_un.d_ptr));
            break;
        case DT_PLTRELSZ:
            tableBytes[0] = d->d_un.d_val;
            break;
        case DT_PLTREL:
            pltIsRela = d->d_un.d_val == DT_RELA; // always on x86-64 (psABI)
            break;
        case DT_RELA:
            tables[1] = reinterpret_cast<const ElfW(Rela)*>(dynamicAddress(info, d->d_un.d_ptr));
            break;
        case DT_RELASZ:
            tableBytes[1] = d->d_un.d_val;
            break;
        default:
            break;
        }
    }
    if (symbols == nullptr || strings == nullptr || !pltIsRela) {
        return;
    }
    uint32_t module = kMaxModules; // assigned at the first slot chosen
    uint32_t ours = 0;
    for (int t = 0; t < 2; ++t) {
        for (size_t i = 0; tables[t] != nullptr && i < tableBytes[t] / sizeof(ElfW(Rela)); ++i) {
            const ElfW(Rela)& r = tables[t][i];
            uint32_t type = ELF64_R_TYPE(r.r_info);
            if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) {
                continue;
            }
            const char* name = strings + symbols[ELF64_R_SYM(r.r_info)].st_name;
            // A cheap first test with no module number: is the symbol wanted at all?
            if (scan.choose(name, kMaxModules, scan.context) == 0) {
                continue;
            }
            if (module == kMaxModules) {
                module = moduleIndex(info);
                if (module == kMaxModules) {
                    skip(info, "too many modules to rewire");
                    return;
                }
            }
            uintptr_t hook = scan.choose(name, module, scan.context);
            ours += hook != 0 && rewireSlot(info, info->dlpi_addr + r.r_offset, hook) ? 1 : 0;
        }
    }
    ours_ += ours;
    if (ours > 0) {
        if (names_[0] != '\0') {
            appendText(names_, sizeof(names_), ",");
        }
        appendText(names_, sizeof(names_), moduleLabel(info));
    }
}

bool
GotRewirer::allSlotsOurs() const noexcept {
    for (uint32_t i = 0; i < slotCount_; ++i) {
        if (loadSlot(slots_[i].address) != slots_[i].hook) {
            return false;
        }
    }
    return true;
}

void
GotRewirer::rewire(WantModule want, ChooseHook choose, void* context) noexcept {
    unsigned long long adds = 0;
    dl_iterate_phdr(addsCallback, &adds);
    if (adds == seenAdds_ && allSlotsOurs()) {
        return;
    }
    ours_ = 0;
    skipped_ = 0;
    names_[0] = '\0';
    skipNote_[0] = '\0';
    Scan scan{want, choose, context, selfBase(), 0, this};
    dl_iterate_phdr(scanCallback, &scan);
    seenAdds_ = scan.adds;
}

uint32_t
GotRewirer::restore() noexcept {
    uint32_t restored = 0;
    for (uint32_t i = 0; i < slotCount_; ++i) {
        const Slot& slot = slots_[i];
        // A module unloaded since (dlclose) took its GOT with it.
        FindModule find{slot.moduleBase, {}, false};
        dl_iterate_phdr(findCallback, &find);
        if (find.present && loadSlot(slot.address) == slot.hook &&
            writeSlot(&find.found, slot.address, slot.original)) {
            ++restored;
        }
    }
    slotCount_ = 0;
    moduleCount_ = 0;
    seenAdds_ = ~0ULL;
    ours_ = 0;
    skipped_ = 0;
    names_[0] = '\0';
    skipNote_[0] = '\0';
    return restored;
}

} // namespace memtap_agent
