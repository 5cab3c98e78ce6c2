// pymalloc's own state (arenas, used and free bytes), read the only way that
// is safe: by a thread that holds the GIL, inside CPython's own
// _PyObject_DebugMallocStats (Objects/obmalloc.c, the text
// sys._debugmallocstats() prints).
//
// The agent never takes the GIL. An idle uWSGI worker without threads holds
// it in epoll_wait for as long as no request comes, so an agent thread
// waiting on it could block a command, a detach, or stay behind after one.
// Instead a request arms a read and the reply goes out at once; the read runs
// at the next PyMem/PyObject allocation (those domains are called with the
// GIL held, Include/cpython/pymem.h), inside our hook, after the original
// allocator returned: pymalloc is between operations then, and the stats
// function only walks its arenas and writes to a FILE (fmemopen'd over a
// static buffer; glibc malloc, not a hooked allocator). No Python code runs,
// nothing is allocated through PyMem, and the GIL holder is checked with
// PyGILState_Check where it exists. Detach disarms a read that never ran, so
// nothing waits and nothing is left.
#ifndef MEMTAP_AGENT_PYMALLOC_READ_H
#define MEMTAP_AGENT_PYMALLOC_READ_H

#include "agent/gil_work.h"
#include "agent/python_api.h"
#include "agent/text.h"

#include <atomic>
#include <cstdint>

namespace memtap_agent {

// Agent thread, while no hook can see a read armed (setup).
void pymallocReadConfigure(const PythonApi& api) noexcept;
// Agent thread: no armed read survives a detach.
void pymallocReadDisarm() noexcept;
// "pymalloc": arms a read unless one is armed, and formats the last
// completed one (protocol.h).
void formatPymalloc(Text& out) noexcept;

// fork(): the child gets the result lock free and no armed read.
void pymallocForkPrepare() noexcept;
void pymallocForkParent() noexcept;
void pymallocForkChild() noexcept;

// Hook side, out of line: runs the armed read if this thread holds the GIL.
void runArmedPymallocRead() noexcept;

// The figures in _PyObject_DebugMallocStats's text; false if it holds none
// of them. Exposed for the agent's own tests of the parser.
struct PymallocFigures {
    uint64_t arenas;
    uint64_t arenaBytes;
    uint64_t allocatedBytes;
    uint64_t availableBytes;
    uint64_t unusedPoolBytes;
    uint64_t overheadBytes;
};
bool parseDebugMallocStats(const char* text, PymallocFigures* out) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_PYMALLOC_READ_H
