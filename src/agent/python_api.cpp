#include "agent/python_api.h"

#include "agent/python_frames.h"

#include <cstring>
#include <dlfcn.h>

namespace memtap_agent {
namespace {

// The handle lookups go through while resolvePythonApi runs: RTLD_DEFAULT or
// the libpython handle. Only touched on the hijacked thread during start.
constinit void* g_lookupHandle = nullptr;
constinit bool g_framesTried = false;
constinit bool g_framesOk = false;

void*
lookup(const char* name) {
    return dlsym(g_lookupHandle, name);
}

template <typename Fn>
bool
resolve(Fn* out, const char* name) {
    *out = reinterpret_cast<Fn>(lookup(name));
    return *out != nullptr;
}

// "3.11.7 (main, Jan  1 2024, ...)" -> version "3.11.7", 3, 11.
bool
parseVersion(const char* text, PythonApi* api) {
    size_t n = 0;
    while (text[n] != '\0' && text[n] != ' ' && n + 1 < sizeof(api->version)) {
        api->version[n] = text[n];
        ++n;
    }
    api->version[n] = '\0';
    int parts[2] = {0, 0};
    const char* p = api->version;
    for (int i = 0; i < 2; ++i) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        while (*p >= '0' && *p <= '9') {
            parts[i] = parts[i] * 10 + (*p - '0');
            ++p;
        }
        if (i == 0 && *p++ != '.') {
            return false;
        }
    }
    api->major = parts[0];
    api->minor = parts[1];
    return api->major == 3 && api->minor >= 6;
}

void
resolveHeapApi(HeapApi* heap) {
    bool ok = resolve(&heap->dictNext, "PyDict_Next") &&
              resolve(&heap->moduleDict, "PyImport_GetModuleDict") &&
              resolve(&heap->threadHead, "PyInterpreterState_ThreadHead") &&
              resolve(&heap->threadNext, "PyThreadState_Next");
    const char* const typeNames[] = {
        "PyDict_Type",    "PyList_Type", "PyTuple_Type", "PyModule_Type",    "PyCell_Type",
        "PyUnicode_Type", "PyLong_Type", "PySet_Type",   "PyFrozenSet_Type", "PyByteArray_Type"};
    const void** types[] = {&heap->dictType,     &heap->listType, &heap->tupleType,
                            &heap->moduleType,   &heap->cellType, &heap->unicodeType,
                            &heap->longType,     &heap->setType,  &heap->frozenSetType,
                            &heap->byteArrayType};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); ++i) {
        *types[i] = lookup(typeNames[i]);
        ok = ok && *types[i] != nullptr;
    }
    if (!ok) {
        *heap = HeapApi{};
    }
    heap->gcGeneration0 = lookup("_PyGC_generation0");
    heap->runtime = lookup("_PyRuntime");
}

} // namespace

ResolveResult
resolvePythonApi(const char* module, PythonApi* api, bool* framesOk) noexcept {
    *api = PythonApi{};
    void* extra = nullptr;
    if (module[0] == '\0') {
        // Static libpython (e.g. Debian's /usr/bin/python3.11): the C-API is
        // in the executable's .dynsym, reachable through the global scope.
        g_lookupHandle = RTLD_DEFAULT;
    } else {
        // RTLD_NOLOAD: never load a second libpython, only find the loaded
        // one. The extra reference is dropped below, once we have the addresses.
        extra = dlopen(module, RTLD_NOLOAD | RTLD_NOW);
        if (extra == nullptr) {
            return ResolveResult::kModuleNotLoaded;
        }
        g_lookupHandle = extra;
    }

    ResolveResult result = ResolveResult::kOk;
    bool ok = resolve(&api->getAllocator, "PyMem_GetAllocator") &&
              resolve(&api->setAllocator, "PyMem_SetAllocator") &&
              resolve(&api->isInitialized, "Py_IsInitialized") &&
              resolve(&api->getVersion, "Py_GetVersion");
    // Finalization: Py_IsFinalizing is public from 3.13; 3.7..3.12 export
    // _Py_IsFinalizing (Include/cpython/pylifecycle.h); 3.6 only has the data
    // symbol _Py_Finalizing (Include/pylifecycle.h), non-NULL at shutdown.
    if (ok && !resolve(&api->isFinalizing, "Py_IsFinalizing") &&
        !resolve(&api->isFinalizing, "_Py_IsFinalizing")) {
        api->finalizingThread = static_cast<void* const*>(lookup("_Py_Finalizing"));
        ok = api->finalizingThread != nullptr;
    }
    resolve(&api->threadsInitialized, "PyEval_ThreadsInitialized");
    api->debugMallocStats = lookup("_PyObject_DebugMallocStats");
    api->gilStateCheck = lookup("PyGILState_Check");
    api->traceMallocTrackName = "PyTraceMalloc_Track";
    api->traceMallocUntrackName = "PyTraceMalloc_Untrack";
    if (!resolve(&api->traceMallocTrack, api->traceMallocTrackName)) {
        api->traceMallocTrackName = "_PyTraceMalloc_Track"; // 3.6
        api->traceMallocUntrackName = "_PyTraceMalloc_Untrack";
        resolve(&api->traceMallocTrack, api->traceMallocTrackName);
    }
    resolve(&api->traceMallocUntrack, api->traceMallocUntrackName);
    resolveHeapApi(&api->heap);
    if (api->traceMallocTrack == nullptr || api->traceMallocUntrack == nullptr) {
        api->traceMallocTrack = nullptr;
        api->traceMallocUntrack = nullptr;
    }
    if (!ok) {
        result = ResolveResult::kMissingSymbol;
    } else if (!parseVersion(api->getVersion(), api)) {
        result = ResolveResult::kBadVersion;
    } else if (!g_framesTried) {
        // framesInit is documented as call-once; its result holds for the
        // life of the process (the interpreter cannot change under us).
        g_framesTried = true;
#if MEMTAP_AGENT_HAVE_FRAMES
        g_framesOk = framesInit(api->major, api->minor, lookup);
#endif
    }
    *framesOk = g_framesOk;
    g_lookupHandle = nullptr;
    if (extra != nullptr) {
        dlclose(extra);
    }
    return result;
}

bool
pythonIsFinalizing(const PythonApi& api) noexcept {
    if (api.isFinalizing != nullptr) {
        return api.isFinalizing() != 0;
    }
    return api.finalizingThread != nullptr && *api.finalizingThread != nullptr;
}

} // namespace memtap_agent
