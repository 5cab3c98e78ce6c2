/* Test fixture, not an interpreter: a process whose executable exports just
 * what python_discovery.cpp looks at in a CPython 3.13 runtime, so discovery
 * of builds that cannot be installed here (free-threaded 3.13t) is tested on
 * a real process. Built three ways (tests/unit/symbols/CMakeLists.txt):
 *   default                 a 3.13.0 GIL build, which discovery accepts;
 *   FAKE_FT_SYMBOL          also exports _Py_DecRefShared, which only
 *                           Py_GIL_DISABLED builds declare (Include/object.h, v3.13.0);
 *   FAKE_FT_DEBUG_OFFSETS   _PyRuntime.debug_offsets.free_threaded is 1;
 *   FAKE_316                a "3.16.0" newer than memtap's tables, with a cookie;
 *   FAKE_316 + FAKE_NO_COOKIE  the same without _Py_DebugOffsets' cookie.
 * Prints "ready" and sleeps. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default"), used))

/* Include/patchlevel.h: PY_VERSION_HEX of 3.13.0 (or 3.16.0) final. */
#ifdef FAKE_316
#define FAKE_VERSION_HEX 0x031000F0UL
#define FAKE_VERSION_TEXT "3.16.0"
#else
#define FAKE_VERSION_HEX 0x030D00F0UL
#define FAKE_VERSION_TEXT "3.13.0"
#endif
EXPORT const unsigned long Py_Version = FAKE_VERSION_HEX;

EXPORT void
PyMem_SetAllocator(int domain, void* allocator) {
    (void)domain;
    (void)allocator;
}

EXPORT const char*
Py_GetVersion(void) {
    return FAKE_VERSION_TEXT;
}

#ifdef FAKE_FT_SYMBOL
EXPORT void
_Py_DecRefShared(void* op) {
    (void)op;
}
#endif

/* The start of _PyRuntimeState (Include/internal/pycore_runtime.h, v3.13.0):
 * its first member is _Py_DebugOffsets { char cookie[8]; uint64_t version;
 * uint64_t free_threaded; ... }. Only that prefix is laid out here. */
struct FakeRuntime {
    char cookie[8];
    uint64_t version;
    uint64_t freeThreaded;
    uint64_t rest[61];
};

EXPORT struct FakeRuntime _PyRuntime = {
#ifdef FAKE_NO_COOKIE
    {0},
#else
    {'x', 'd', 'e', 'b', 'u', 'g', 'p', 'y'},
#endif
    FAKE_VERSION_HEX,
#ifdef FAKE_FT_DEBUG_OFFSETS
    1,
#else
    0,
#endif
    {0},
};

int
main(void) {
    fputs("ready\n", stdout);
    fflush(stdout);
    sleep(100);
    return 0;
}
