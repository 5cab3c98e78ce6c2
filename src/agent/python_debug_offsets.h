// CPython's _Py_DebugOffsets (3.13+), the table of offsets the interpreter
// publishes for out-of-process tools as the first member of _PyRuntime, and
// its check against the agent's own layout table (python_layouts.h).
//
// Transcribed field names and order, not code: 3.13 from
// Include/internal/pycore_runtime.h at v3.13.0, 3.14 from
// Include/internal/pycore_debug_offsets.h at v3.14.0 (more fields inside the
// substructs). Only the prefix up to the code object's offsets is declared
// (the walker needs nothing after it). No Python.h.
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

// v3.14.0: interpreter_state gained threads_main (after threads_head),
// code_object_generation and tlbc_generation; interpreter_frame stackpointer
// and tlbc_index; code_object co_tlbc. thread_state is as in 3.13. The 3.15
// branch is read with this shape too: if it grew the prefix, the sanity and
// agreement checks below fail and frames stay off (never a wrong read).
struct DebugOffsets314 {
    char cookie[8];
    uint64_t version;
    uint64_t freeThreaded;
    struct {
        uint64_t size, finalizing, interpretersHead;
    } runtimeState;
    struct {
        uint64_t size, id, next, threadsHead, threadsMain, gc, importsModules, sysdict, builtins,
            cevalGil, gilRuntimeState, gilRuntimeStateEnabled, gilRuntimeStateLocked,
            gilRuntimeStateHolder, codeObjectGeneration, tlbcGeneration;
    } interpreterState;
    struct {
        uint64_t size, prev, next, interp, currentFrame, threadId, nativeThreadId, datastackChunk,
            status;
    } threadState;
    struct {
        uint64_t size, previous, executable, instrPtr, localsplus, owner, stackpointer, tlbcIndex;
    } interpreterFrame;
    struct {
        uint64_t size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames,
            localspluskinds, coCodeAdaptive, coTlbc;
    } codeObject;
};
static_assert(offsetof(DebugOffsets314, threadState) == 8 * (3 + 3 + 16));
static_assert(offsetof(DebugOffsets314, interpreterFrame) == 8 * (3 + 3 + 16 + 9));
static_assert(offsetof(DebugOffsets314, codeObject) == 8 * (3 + 3 + 16 + 9 + 8));
static_assert(sizeof(DebugOffsets314) == 8 * (3 + 3 + 16 + 9 + 8 + 11));

// The fields the walker needs, with the size of the struct each lies in,
// taken out of either shape.
struct WalkerOffsets {
    uint64_t version, freeThreaded;
    uint64_t tstateSize, currentFrame;
    uint64_t frameSize, previous, executable, instrPtr, localsplus, owner;
    uint64_t codeSize, filename, name, linetable, firstlineno, localsplusnames, coCodeAdaptive;
};

template <typename D>
inline WalkerOffsets
walkerOffsets(const D& d) noexcept {
    return WalkerOffsets{d.version,
                         d.freeThreaded,
                         d.threadState.size,
                         d.threadState.currentFrame,
                         d.interpreterFrame.size,
                         d.interpreterFrame.previous,
                         d.interpreterFrame.executable,
                         d.interpreterFrame.instrPtr,
                         d.interpreterFrame.localsplus,
                         d.interpreterFrame.owner,
                         d.codeObject.size,
                         d.codeObject.filename,
                         d.codeObject.name,
                         d.codeObject.linetable,
                         d.codeObject.firstlineno,
                         d.codeObject.localsplusnames,
                         d.codeObject.coCodeAdaptive};
}

enum class DebugOffsetsVerdict : unsigned char {
    Agree,        // every field the walker uses matches the layout table
    Absent,       // no table (wrong cookie): the static layout is used alone
    WrongVersion, // the table names another minor version
    FreeThreaded,
    Insane,   // a struct size or a field outside its struct
    Disagree, // sane, but some field differs from the layout table
};

// Validates w the pystack way (each struct of plausible size, each field
// read inside its struct) for CPython 3.minor; if l is given, compares it
// with l field by field. codeBasicSize is PyCode_Type.tp_basicsize
// (sizeof(PyCodeObject)), which code_object.size must equal: a check that
// the table was read with the right shape. On Insane or Disagree, *field
// names the first bad field.
inline DebugOffsetsVerdict
checkWalkerOffsets(const char* cookie, const WalkerOffsets& w, int minor, const Layout* l,
                   uint64_t codeBasicSize, const char** field) noexcept {
    *field = nullptr;
    if (memcmp(cookie, "xdebugpy", 8) != 0) {
        return DebugOffsetsVerdict::Absent;
    }
    // PY_VERSION_HEX: major << 24 | minor << 16 | ... (Include/patchlevel.h).
    if (((w.version >> 24) & 0xff) != 3 || static_cast<int>((w.version >> 16) & 0xff) != minor) {
        return DebugOffsetsVerdict::WrongVersion;
    }
    if (w.freeThreaded != 0) {
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
        {"thread_state.current_frame", w.tstateSize, w.currentFrame, 8, l ? l->tstateFrame : 0},
        {"interpreter_frame.previous", w.frameSize, w.previous, 8, l ? l->ifPrevious : 0},
        {"interpreter_frame.executable", w.frameSize, w.executable, 8, l ? l->ifCode : 0},
        {"interpreter_frame.instr_ptr", w.frameSize, w.instrPtr, 8, l ? l->ifInstr : 0},
        {"interpreter_frame.owner", w.frameSize, w.owner, 1, l ? l->ifOwner : 0},
        // localsplus is the start of the flexible array: it may equal size.
        {"interpreter_frame.localsplus", w.frameSize, w.localsplus, 0, l ? l->ifLocalsPlus : 0},
        {"code_object.filename", w.codeSize, w.filename, 8, l ? l->coFilename : 0},
        {"code_object.name", w.codeSize, w.name, 8, l ? l->coName : 0},
        {"code_object.linetable", w.codeSize, w.linetable, 8, l ? l->coLineTable : 0},
        {"code_object.firstlineno", w.codeSize, w.firstlineno, 4, l ? l->coFirstLineno : 0},
        {"code_object.localsplusnames", w.codeSize, w.localsplusnames, 8, l ? l->coLocalsPlusNames : 0},
        {"code_object.co_code_adaptive", w.codeSize, w.coCodeAdaptive, 0, l ? l->coCodeAdaptive : 0},
    };
    for (const Check& c : checks) {
        if (c.size == 0 || c.size > kMaxStruct || c.offset + c.width > c.size) {
            *field = c.name;
            return DebugOffsetsVerdict::Insane;
        }
    }
    if (codeBasicSize != 0 && w.codeSize != codeBasicSize) {
        *field = "code_object.size";
        return DebugOffsetsVerdict::Insane;
    }
    for (const Check& c : checks) {
        if (l != nullptr && c.offset != c.expected) {
            *field = c.name;
            return DebugOffsetsVerdict::Disagree;
        }
    }
    return DebugOffsetsVerdict::Agree;
}

// 3.13, kept for the probe's tests: as checkWalkerOffsets on the 3.13 shape.
inline DebugOffsetsVerdict
checkDebugOffsets313(const DebugOffsets313& d, int minor, const Layout& l, const char** field) noexcept {
    return checkWalkerOffsets(d.cookie, walkerOffsets(d), minor, &l, 0, field);
}

// An unknown newer version: a layout from a sane table alone (3.14's frame
// model: tagged f_executable, owners >= 3 skipped), or false.
inline bool
layoutFromWalkerOffsets(const WalkerOffsets& w, Layout* out) noexcept {
    Layout l = {};
    l.model = FrameModel::Interp314;
    l.tstateFrame = static_cast<unsigned>(w.currentFrame);
    l.ifPrevious = static_cast<unsigned>(w.previous);
    l.ifCode = static_cast<unsigned>(w.executable);
    l.ifInstr = static_cast<unsigned>(w.instrPtr);
    l.ifOwner = static_cast<unsigned>(w.owner);
    l.ifLocalsPlus = static_cast<unsigned>(w.localsplus);
    l.coFilename = static_cast<unsigned>(w.filename);
    l.coName = static_cast<unsigned>(w.name);
    l.coLineTable = static_cast<unsigned>(w.linetable);
    l.coFirstLineno = static_cast<unsigned>(w.firstlineno);
    l.coLocalsPlusNames = static_cast<unsigned>(w.localsplusnames);
    l.coCodeAdaptive = static_cast<unsigned>(w.coCodeAdaptive);
    l.noFirstTraceable = true;
    // Not in the table: the str header sizes, taken as 3.12-3.14's (a wrong
    // guess shifts the characters read by a few words, never the length).
    l.asciiSize = 40;
    l.compactSize = 56;
    l.gcHeadSize = 16;
    *out = l;
    return true;
}

} // namespace layouts
} // namespace memtap_agent

#endif // MEMTAP_AGENT_PYTHON_DEBUG_OFFSETS_H
