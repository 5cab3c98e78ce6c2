// CPython 3.13's _Py_DebugOffsets, the table of offsets the interpreter
// publishes for out-of-process tools as the first member of _PyRuntime, and
// its check against the agent's own layout table (python_layouts.h).
//
// Transcribed field names and order, not code, from
// Include/internal/pycore_runtime.h at v3.13.0; only the prefix up to the
// code object's offsets is declared (the walker needs nothing after it). 3.14
// moved the struct to pycore_debug_offsets.h and added fields inside the
// substructs, so this prefix is valid for 3.13 only. No Python.h.
#ifndef MEMTAP_AGENT_PYTHON_DEBUG_OFFSETS_H
#define MEMTAP_AGENT_PYTHON_DEBUG_OFFSETS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agent/python_layouts.h"

namespace memtap_agent {
namespace layouts {

struct DebugOffsets313 {
    char cookie[8];   // "xdebugpy"
    uint64_t version; // PY_VERSION_HEX
    uint64_t freeThreaded;
    struct {
        uint64_t size, finalizing, interpretersHead;
    } runtimeState;
    struct {
        uint64_t size, id, next, threadsHead, gc, importsModules, sysdict, builtins, cevalGil,
            gilRuntimeState, gilRuntimeStateEnabled, gilRuntimeStateLocked, gilRuntimeStateHolder;
    } interpreterState;
    struct {
        uint64_t size, prev, next, interp, currentFrame, threadId, nativeThreadId, datastackChunk,
            status;
    } threadState;
    struct {
        uint64_t size, previous, executable, instrPtr, localsplus, owner;
    } interpreterFrame;
    struct {
        uint64_t size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames,
            localspluskinds, coCodeAdaptive;
    } codeObject;
};
// Every member is 8 bytes: offsets follow from the field count alone.
static_assert(offsetof(DebugOffsets313, threadState) == 8 * (3 + 3 + 13));
static_assert(offsetof(DebugOffsets313, codeObject) == 8 * (3 + 3 + 13 + 9 + 6));
static_assert(sizeof(DebugOffsets313) == 8 * (3 + 3 + 13 + 9 + 6 + 10));

enum class DebugOffsetsVerdict : unsigned char {
    Agree,        // every field the walker uses matches the layout table
    Absent,       // no table (wrong cookie): the static layout is used alone
    WrongVersion, // the table names another minor version
    FreeThreaded,
    Insane,   // a struct size or a field outside its struct
    Disagree, // sane, but some field differs from the layout table
};

// Validates d (the pystack way: each struct of plausible size, each field
// read inside its struct) and compares it with l for CPython 3.minor. On
// Disagree, *field names the first differing field.
inline DebugOffsetsVerdict
checkDebugOffsets313(const DebugOffsets313& d, int minor, const Layout& l, const char** field) noexcept {
    *field = nullptr;
    if (memcmp(d.cookie, "xdebugpy", 8) != 0) {
        return DebugOffsetsVerdict::Absent;
    }
    // PY_VERSION_HEX: major << 24 | minor << 16 | ... (Include/patchlevel.h).
    if (((d.version >> 24) & 0xff) != 3 || static_cast<int>((d.version >> 16) & 0xff) != minor) {
        return DebugOffsetsVerdict::WrongVersion;
    }
    if (d.freeThreaded != 0) {
        return DebugOffsetsVerdict::FreeThreaded;
    }
    // No CPython struct the walker reads is near 64 KiB.
    constexpr uint64_t kMaxStruct = 1u << 16;
    struct Check {
        const char* name;
        uint64_t size;
        uint64_t offset;
        unsigned width;
        unsigned expected;
    } checks[] = {
        {"thread_state.current_frame", d.threadState.size, d.threadState.currentFrame, 8, l.tstateFrame},
        {"interpreter_frame.previous", d.interpreterFrame.size, d.interpreterFrame.previous, 8,
         l.ifPrevious},
        {"interpreter_frame.executable", d.interpreterFrame.size, d.interpreterFrame.executable, 8,
         l.ifCode},
        {"interpreter_frame.instr_ptr", d.interpreterFrame.size, d.interpreterFrame.instrPtr, 8,
         l.ifInstr},
        {"interpreter_frame.owner", d.interpreterFrame.size, d.interpreterFrame.owner, 1, l.ifOwner},
        {"code_object.filename", d.codeObject.size, d.codeObject.filename, 8, l.coFilename},
        {"code_object.name", d.codeObject.size, d.codeObject.name, 8, l.coName},
        {"code_object.linetable", d.codeObject.size, d.codeObject.linetable, 8, l.coLineTable},
        {"code_object.firstlineno", d.codeObject.size, d.codeObject.firstlineno, 4, l.coFirstLineno},
        // co_code_adaptive is the start of the flexible array: it may equal size.
        {"code_object.co_code_adaptive", d.codeObject.size, d.codeObject.coCodeAdaptive, 0,
         l.coCodeAdaptive},
    };
    for (const Check& c : checks) {
        if (c.size == 0 || c.size > kMaxStruct || c.offset + c.width > c.size) {
            *field = c.name;
            return DebugOffsetsVerdict::Insane;
        }
    }
    for (const Check& c : checks) {
        if (c.offset != c.expected) {
            *field = c.name;
            return DebugOffsetsVerdict::Disagree;
        }
    }
    return DebugOffsetsVerdict::Agree;
}

} // namespace layouts
} // namespace memtap_agent

#endif // MEMTAP_AGENT_PYTHON_DEBUG_OFFSETS_H
