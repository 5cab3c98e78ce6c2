// The slice of the CPython C-API the agent uses, resolved at run time.
//
// No Python.h: one agent binary serves CPython 3.6..3.13, so every symbol is
// looked up with dlsym in the interpreter that is already loaded, and the few
// types we need are declared here by hand.
#ifndef MEMTAP_AGENT_PYTHON_API_H
#define MEMTAP_AGENT_PYTHON_API_H

#include <cstddef>

namespace memtap_agent {

// Include/cpython/pymem.h (3.8..3.13), Include/pymem.h (3.6, 3.7): the same
// five members in the same order on every version we support.
struct PyMemAllocatorEx {
    void* ctx;
    void* (*malloc)(void* ctx, size_t size);
    void* (*calloc)(void* ctx, size_t nelem, size_t elsize);
    void* (*realloc)(void* ctx, void* ptr, size_t newSize);
    void (*free)(void* ctx, void* ptr);
};

// PyMemAllocatorDomain, same header: a C enum, passed as int.
enum PyMemDomain : int {
    kDomainRaw = 0, // PYMEM_DOMAIN_RAW: PyMem_RawMalloc, called without the GIL
    kDomainMem = 1, // PYMEM_DOMAIN_MEM: PyMem_Malloc
    kDomainObj = 2, // PYMEM_DOMAIN_OBJ: PyObject_Malloc
};
inline constexpr int kDomainCount = 3;

// What the heap walk (heap_walk.h) calls and compares against; all null if
// any is missing (the walk then refuses). None of these functions allocates:
// PyDict_Next reads a dict's entries, PyImport_GetModuleDict returns the
// interpreter's sys.modules, the thread-state ones follow list links
// (Python/pystate.c).
struct HeapApi {
    int (*dictNext)(void* dict, long* pos, void** key, void** value);
    void* (*moduleDict)();
    void* (*threadHead)(void* interp);
    void* (*threadNext)(void* tstate);
    const void* dictType;
    const void* listType;
    const void* tupleType;
    const void* moduleType;
    const void* cellType;
    const void* unicodeType;
    const void* longType;
    const void* setType;
    const void* frozenSetType;
    const void* byteArrayType;
    // Optional (heap_gc.cpp): the data symbols the gc lists hang off in
    // 3.6 (_PyGC_generation0) and 3.7/3.8 (_PyRuntime); null if absent.
    const void* gcGeneration0;
    const void* runtime;
};

struct PythonApi {
    void (*getAllocator)(int domain, PyMemAllocatorEx* out);
    void (*setAllocator)(int domain, PyMemAllocatorEx* allocator);
    int (*isInitialized)();
    int (*isFinalizing)();         // Py_IsFinalizing (3.13) / _Py_IsFinalizing (3.7..3.12)
    void* const* finalizingThread; // 3.6: &_Py_Finalizing, a PyThreadState* set at shutdown
    int (*threadsInitialized)();   // PyEval_ThreadsInitialized, may be null (removed in 3.13)
    const char* (*getVersion)();
    // Optional (pymalloc_read.h): _PyObject_DebugMallocStats(FILE*) and
    // PyGILState_Check, exported by 3.6..3.13; null if absent.
    void* debugMallocStats;
    void* gilStateCheck;
    // Optional (tracked_calls.h): PyTraceMalloc_Track / _Untrack (3.7+;
    // _PyTraceMalloc_Track / _Untrack in 3.6, Include/pymem.h), the C-API
    // numpy reports its array buffers through; null if absent.
    int (*traceMallocTrack)(unsigned int domain, unsigned long ptr, size_t size);
    int (*traceMallocUntrack)(unsigned int domain, unsigned long ptr);
    const char* traceMallocTrackName; // the symbol names callers import
    const char* traceMallocUntrackName;
    HeapApi heap;
    int major;
    int minor;
    char version[32]; // first word of Py_GetVersion(), e.g. "3.11.7"
};

enum class ResolveResult { kOk, kModuleNotLoaded, kMissingSymbol, kBadVersion };

// Resolves the API in `module` (a path of an already-loaded libpython) or, if
// module is "", in the global scope (static libpython in the executable).
// Calls framesInit() once per process while the module handle is open.
// Sets *framesOk to framesInit's result. No Python code runs.
ResolveResult resolvePythonApi(const char* module, PythonApi* api, bool* framesOk) noexcept;

bool pythonIsFinalizing(const PythonApi& api) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_PYTHON_API_H
