// Which module of a process is the CPython runtime, and which version it is.
// Detection goes by exported C-API symbols, not by file names, so a renamed
// interpreter or one embedded in another program (uWSGI) is still found.
#pragma once

#include <string>

#include "symbols/process_modules.h"

namespace memtap::symbols {

struct PythonTarget {
    // The module exporting the C-API (PyMem_SetAllocator): the executable for a
    // static build (Debian's python3.11), libpython3.X.so for a shared build
    // (pyenv) or an embedding host (uWSGI's python3 plugin).
    Module module;
    bool isMainExecutable = false;
    int major = 0;
    int minor = 0;
    std::string version; // "3.11.7" when known, else "3.11"
    // Non-empty for a version newer than kMaxSupportedMinor: what is degraded.
    std::string note;
};

// Supported range, inclusive.
inline constexpr int kMinSupportedMinor = 6;
inline constexpr int kMaxSupportedMinor = 15; // 3.14, 3.15 built from headers

// Throws Error(NotSupported) for a process without CPython, with Python 2, or
// with a CPython 3 before 3.6, or newer than 3.15 without the allocator API and a
// _Py_DebugOffsets cookie naming its version, or with a free-threaded (Py_GIL_DISABLED)
// build, detected from its exports or _PyRuntime.debug_offsets.free_threaded.
PythonTarget discoverPythonOrThrow(const ProcessModules& modules);

// Parsing helpers, exposed for unit tests.
namespace detail {
// "3.11" from names like libpython3.11.so.1.0, libpython3.6m.so, python3.11, python2.7.
bool versionFromFileName(std::string_view path, int& major, int& minor);
// PY_VERSION_HEX (Include/patchlevel.h) to "3.13.0", "3.14.0rc1" ...
std::string formatVersionHex(uint64_t hex, int& major, int& minor);
// Accepts PY_VERSION strings such as "3.9.18", "3.13.0rc2", "3.12.0+".
bool parseVersionString(std::string_view text, int& major, int& minor);
} // namespace detail

} // namespace memtap::symbols
