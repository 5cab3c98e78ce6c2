// Python frame walking for the agent's allocator hooks.
//
// Everything here runs inside the target's allocator, on whatever thread
// allocates, so every function is noexcept and does no allocation, takes no
// lock, makes no syscall and never calls back into CPython code that could do
// any of those. There is no Python.h: the walker reads the interpreter's own
// structures through per-version layouts (python_layouts.h: 3.6..3.13 checked
// against installed headers, 3.14/3.15 transcribed structs), each offset
// citing the CPython header it comes from, or, for a newer version, through
// the interpreter's own _Py_DebugOffsets when it is sane.
#ifndef MEMTAP_AGENT_PYTHON_FRAMES_H
#define MEMTAP_AGENT_PYTHON_FRAMES_H

#include "agent/python_layouts.h"

namespace memtap_agent {

// One Python frame: the code object and the line being executed. The code
// pointer is borrowed; it is only guaranteed alive while the caller holds the
// GIL, so anything kept for later must be validated with codeIdentity().
struct RawFrame {
    const void* code;
    int line;
};

// Resolves what the walker needs for CPython major.minor. lookup(name) returns
// the address of a C-API symbol of the target interpreter or nullptr. Returns
// false if the version is unsupported or a needed symbol is missing; the other
// functions then return 0 / false / -1. Call once, before any hook can run.
bool framesInit(int major, int minor, void* (*lookup)(const char* name)) noexcept;

// One line for status: where the layout came from ("layout table, confirmed
// by _Py_DebugOffsets") or why frames are off after framesInit() returned
// false ("frames off: ..."). Never null.
const char* framesNote() noexcept;

// The calling thread's Python frames, most recent call first, at most max.
// Returns the number written; 0 if the calling thread does not hold the GIL
// (raw-domain allocator hooks run without it) or has no Python frames.
int captureFrames(RawFrame* out, int max) noexcept;

// What identifies a code object cheaply: caches keyed by code pointer compare
// this to detect a code object that died and whose address was reused.
// filename and name are the (borrowed) co_filename / co_name object pointers.
struct CodeIdentity {
    const void* code;
    const void* filename;
    const void* name;
    int firstLine;
};

// Requires the GIL (code must be alive). Returns false if code is null or
// framesInit() failed.
bool codeIdentity(const void* code, CodeIdentity* out) noexcept;

// Copies co_filename and the function name as UTF-8, NUL-terminated and
// truncated (on a character boundary) to fit cap bytes including the NUL; a
// buffer may be null with cap 0 to skip it. Lone surrogates (file names
// decoded with surrogateescape) are written as U+FFFD. The function name is
// co_name on every version (not co_qualname), so the output matches the
// traceback module. Requires the GIL. Returns 0 on success, -1 if a string
// could not be read (that buffer then holds "?").
int copyCodeNames(const void* code, char* file, int fileCap, char* func, int funcCap) noexcept;

// One Python frame of a thread, for the heap walk (heap_walk.h): its code,
// the line being executed and its local variables (locals, then cells and
// free variables; entries may be null). Borrowed: valid while the GIL is held.
struct FrameLocals {
    const void* code;
    int line;
    void* const* locals;
    int count;
};

// Calls fn for each frame of tstate (any thread's), most recent first, until
// fn returns false. Returns the frames visited. Requires the GIL.
int forEachFrame(const void* tstate, bool (*fn)(const FrameLocals& frame, void* arg),
                 void* arg) noexcept;

// The name (a borrowed str object) of local i of code, or null.
const void* localName(const void* code, int i) noexcept;

// Copies a str object as UTF-8, as copyCodeNames does; false (and "?") if
// it is not one. Requires the GIL.
bool copyStr(const void* str, char* out, int cap) noexcept;

// The calling thread's PyThreadState if it holds the GIL, else null.
const void* threadStateIfGilHeld() noexcept;

// The layout framesInit() chose (model None before, or if it failed).
const layouts::Layout& frameLayout() noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_PYTHON_FRAMES_H
