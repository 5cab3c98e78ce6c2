#include "agent/native_calls.h"

#include "agent/engine.h"
#include "agent/got_rewire.h"
#include "agent/thread_state.h"

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <sys/mman.h>
#include <utility>

namespace memtap_agent {
namespace {

static_assert(kNativeModules == GotRewirer::kMaxModules, "one set of hooks per module number");

// The definitions the hooks call, found once before any slot is rewired
// (resolveRealFunctions). Not the addresses the agent's own calls reach:
// in a non-PIE program that takes the address of malloc or free (Debian's
// static python3 does), every module's GOT holds the program's PLT entry
// as the function's canonical address (psABI, "Function Addresses"), which
// jumps through the program's own slot; a hook calling that would come
// back to itself once that slot were ours.
struct RealFunctions {
    void* (*malloc)(size_t);
    void* (*calloc)(size_t, size_t);
    void* (*realloc)(void*, size_t);
    void (*free)(void*);
    int (*posixMemalign)(void**, size_t, size_t);
    void* (*alignedAlloc)(size_t, size_t);
    void* (*memalign)(size_t, size_t);
    void* (*mmap)(void*, size_t, int, int, int, off_t);
    int (*munmap)(void*, size_t);
};
constinit RealFunctions g_real = {};

// Hook instances for module number M. Each sets busy around the real call:
// an interposed malloc (jemalloc is a native module too) that maps memory
// for a block must not count it twice.
template <uint32_t M> struct NativeHooks {
    static bool recording(const ThreadState& t) {
        return !isBusy(t) && g_recording.load(std::memory_order_relaxed);
    }
    static void* mallocHook(size_t size) {
        ThreadState& t = g_thread;
        if (!recording(t)) {
            return g_real.malloc(size);
        }
        setBusy(t);
        void* ptr = g_real.malloc(size);
        if (ptr != nullptr) {
            engineOnNativeAlloc(t, M, ptr, size, false);
        }
        clearBusy(t);
        return ptr;
    }
    static void* callocHook(size_t nelem, size_t elsize) {
        ThreadState& t = g_thread;
        if (!recording(t)) {
            return g_real.calloc(nelem, elsize);
        }
        setBusy(t);
        void* ptr = g_real.calloc(nelem, elsize);
        if (ptr != nullptr) {
            engineOnNativeAlloc(t, M, ptr, nelem * elsize, false); // calloc checked the product
        }
        clearBusy(t);
        return ptr;
    }
    static void* reallocHook(void* old, size_t size) {
        ThreadState& t = g_thread;
        if (!recording(t)) {
            return g_real.realloc(old, size);
        }
        setBusy(t);
        void* ptr = g_real.realloc(old, size);
        if (ptr != nullptr || size == 0) {
            if (old != nullptr) {
                engineOnNativeFree(t, old, false);
            }
            if (ptr != nullptr) {
                engineOnNativeAlloc(t, M, ptr, size, false);
            }
        }
        clearBusy(t);
        return ptr;
    }
    static void freeHook(void* ptr) {
        ThreadState& t = g_thread;
        if (ptr == nullptr || !recording(t)) {
            g_real.free(ptr);
            return;
        }
        setBusy(t);
        engineOnNativeFree(t, ptr, false); // before: once freed, the address may be reused
        g_real.free(ptr);
        clearBusy(t);
    }
    static int posixMemalignHook(void** out, size_t alignment, size_t size) {
        ThreadState& t = g_thread;
        if (!recording(t)) {
            return g_real.posixMemalign(out, alignment, size);
        }
        setBusy(t);
        int rc = g_real.posixMemalign(out, alignment, size);
        if (rc == 0) {
            engineOnNativeAlloc(t, M, *out, size, false);
        }
        clearBusy(t);
        return rc;
    }
    static void* alignedAllocHook(size_t alignment, size_t size) {
        ThreadState& t = g_thread;
        if (!recording(t)) {
            return g_real.alignedAlloc(alignment, size);
        }
        setBusy(t);
        void* ptr = g_real.alignedAlloc(alignment, size);
        if (ptr != nullptr) {
            engineOnNativeAlloc(t, M, ptr, size, false);
        }
        clearBusy(t);
        return ptr;
    }
    static void* memalignHook(size_t alignment, size_t size) {
        ThreadState& t = g_thread;
        if (!recording(t)) {
            return g_real.memalign(alignment, size);
        }
        setBusy(t);
        void* ptr = g_real.memalign(alignment, size);
        if (ptr != nullptr) {
            engineOnNativeAlloc(t, M, ptr, size, false);
        }
        clearBusy(t);
        return ptr;
    }
    // Anonymous mappings only: a mapped file is not memory the module took.
    static void* mmapHook(void* address, size_t length, int prot, int flags, int fd, off_t offset) {
        ThreadState& t = g_thread;
        if (!recording(t) || (flags & MAP_ANONYMOUS) == 0) {
            return g_real.mmap(address, length, prot, flags, fd, offset);
        }
        setBusy(t);
        void* ptr = g_real.mmap(address, length, prot, flags, fd, offset);
        if (ptr != MAP_FAILED) {
            engineOnNativeAlloc(t, M, ptr, length, true);
        }
        clearBusy(t);
        return ptr;
    }
    static int munmapHook(void* address, size_t length) {
        ThreadState& t = g_thread;
        if (!recording(t)) {
            return g_real.munmap(address, length);
        }
        setBusy(t);
        int rc = g_real.munmap(address, length);
        if (rc == 0) {
            engineOnNativeFree(t, address, true);
        }
        clearBusy(t);
        return rc;
    }
};

struct HookSet {
    uintptr_t malloc, calloc, realloc, free, posixMemalign, alignedAlloc, memalign, mmap, munmap;
};

template <uint32_t M>
constexpr HookSet
hookSetOf() {
    using H = NativeHooks<M>;
    return HookSet{reinterpret_cast<uintptr_t>(&H::mallocHook),
                   reinterpret_cast<uintptr_t>(&H::callocHook),
                   reinterpret_cast<uintptr_t>(&H::reallocHook),
                   reinterpret_cast<uintptr_t>(&H::freeHook),
                   reinterpret_cast<uintptr_t>(&H::posixMemalignHook),
                   reinterpret_cast<uintptr_t>(&H::alignedAllocHook),
                   reinterpret_cast<uintptr_t>(&H::memalignHook),
                   reinterpret_cast<uintptr_t>(&H::mmapHook),
                   reinterpret_cast<uintptr_t>(&H::munmapHook)};
}

template <uint32_t... M>
void
fillHookSets(HookSet* out, std::integer_sequence<uint32_t, M...>) {
    ((out[M] = hookSetOf<M>()), ...);
}

constinit HookSet g_hookSets[kNativeModules] = {};
constinit GotRewirer g_rewirer;
constinit bool g_enabled = false;
constinit uintptr_t g_pythonBase = 0; // the interpreter's own module

uintptr_t
chooseNativeHook(const char* symbol, uint32_t module, void*) {
    struct Name {
        const char* name;
        uintptr_t HookSet::*hook;
    };
    static constexpr Name kNames[] = {
        {"malloc", &HookSet::malloc},
        {"calloc", &HookSet::calloc},
        {"realloc", &HookSet::realloc},
        {"free", &HookSet::free},
        {"posix_memalign", &HookSet::posixMemalign},
        {"aligned_alloc", &HookSet::alignedAlloc},
        {"memalign", &HookSet::memalign},
        {"mmap", &HookSet::mmap},
        {"mmap64", &HookSet::mmap},
        {"munmap", &HookSet::munmap},
    };
    for (const Name& n : kNames) {
        if (std::strcmp(symbol, n.name) == 0) {
            return module < kNativeModules ? g_hookSets[module].*n.hook : 1;
        }
    }
    return 0;
}

bool
startsWith(const char* text, const char* prefix) {
    return std::strncmp(text, prefix, std::strlen(prefix)) == 0;
}

// libc and the loader serve these calls (their own are theirs); the
// interpreter's module is traced through PyMem already.
bool
wantNativeModule(const dl_phdr_info* info, void*) {
    if (info->dlpi_addr == g_pythonBase) {
        return false;
    }
    const char* slash = std::strrchr(info->dlpi_name, '/');
    const char* base = slash != nullptr ? slash + 1 : info->dlpi_name;
    return !startsWith(base, "libc.so") && !startsWith(base, "ld-linux") &&
           !startsWith(base, "linux-vdso") && !startsWith(base, "libpython");
}

// The load bias of the module holding `address` (dl_phdr_info::dlpi_addr:
// 0 for a non-PIE program), and whether that module is the program itself.
bool
moduleOf(const void* address, uintptr_t* bias, bool* isProgram) {
    Dl_info info{};
    link_map* map = nullptr;
    if (dladdr1(address, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 ||
        map == nullptr) {
        return false;
    }
    *bias = map->l_addr;
    *isProgram = map->l_prev == nullptr; // the program heads the link map
    return true;
}

struct ModuleNames {
    char names[64][256];
    uint32_t count;
};

int
collectModule(dl_phdr_info* info, size_t, void* arg) {
    auto& out = *static_cast<ModuleNames*>(arg);
    if (info->dlpi_name[0] != '\0' && out.count < 64 && std::strlen(info->dlpi_name) < 256) {
        std::strcpy(out.names[out.count++], info->dlpi_name);
    }
    return 0;
}

constinit ModuleNames g_moduleNames = {};

// The first definition of `name` in load order that is not the program's
// canonical PLT entry: what the program's own slot resolves to.
void*
realDefinition(const char* name) {
    void* address = dlsym(RTLD_DEFAULT, name);
    uintptr_t bias = 0;
    bool isProgram = false;
    if (address == nullptr || !moduleOf(address, &bias, &isProgram)) {
        return nullptr;
    }
    if (!isProgram) {
        return address;
    }
    g_moduleNames.count = 0;
    dl_iterate_phdr(collectModule, &g_moduleNames); // dlopen below, not inside the walk
    for (uint32_t i = 0; i < g_moduleNames.count; ++i) {
        void* handle = dlopen(g_moduleNames.names[i], RTLD_NOLOAD | RTLD_LAZY);
        if (handle == nullptr) {
            continue;
        }
        void* candidate = dlsym(handle, name);
        dlclose(handle);
        uintptr_t candidateBias = 0;
        bool candidateIsProgram = false;
        Dl_info owner{};
        if (candidate != nullptr && moduleOf(candidate, &candidateBias, &candidateIsProgram) &&
            !candidateIsProgram && dladdr(candidate, &owner) != 0 && owner.dli_fname != nullptr &&
            std::strcmp(owner.dli_fname, g_moduleNames.names[i]) == 0) {
            return candidate; // defined by this module itself, not found through its dependencies
        }
    }
    return nullptr;
}

template <typename Fn>
bool
resolve(Fn* out, const char* name) {
    *out = reinterpret_cast<Fn>(realDefinition(name));
    return *out != nullptr;
}

bool
resolveRealFunctions() {
    return resolve(&g_real.malloc, "malloc") && resolve(&g_real.calloc, "calloc") &&
           resolve(&g_real.realloc, "realloc") && resolve(&g_real.free, "free") &&
           resolve(&g_real.posixMemalign, "posix_memalign") &&
           resolve(&g_real.alignedAlloc, "aligned_alloc") && resolve(&g_real.memalign, "memalign") &&
           resolve(&g_real.mmap, "mmap") && resolve(&g_real.munmap, "munmap");
}

} // namespace

bool
rewireNativeCalls(const PythonApi& api) noexcept {
    if (!g_enabled) {
        bool isProgram = false;
        if (!resolveRealFunctions() ||
            !moduleOf(reinterpret_cast<void*>(api.setAllocator), &g_pythonBase, &isProgram)) {
            return false; // nothing rewired: native memory stays unseen, status says so
        }
        fillHookSets(g_hookSets, std::make_integer_sequence<uint32_t, kNativeModules>{});
        g_enabled = true;
    }
    g_rewirer.rewire(wantNativeModule, chooseNativeHook, nullptr);
    return true;
}

uint32_t
restoreNativeCalls() noexcept {
    g_enabled = false;
    return g_rewirer.restore();
}

const char*
nativeModuleName(uint32_t module) noexcept {
    return g_rewirer.moduleName(module);
}

NativeCallsReport
nativeCallsReport() noexcept {
    return NativeCallsReport{g_enabled, g_rewirer.slots(), g_rewirer.skipped(), g_rewirer.moduleNames(),
                             g_rewirer.skipNote()};
}

} // namespace memtap_agent
