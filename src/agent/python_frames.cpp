// Frame walking without Python.h: see python_frames.h for the contract.
//
// Every structure is read through byte offsets chosen once by framesInit()
// from the per-version tables below. Each offset was read from the CPython
// header named next to it (x86-64, release build, default GIL build) and
// checked with offsetof() against the headers of the interpreters installed
// by pyenv (3.6.15, 3.7.16, 3.8.18, 3.9.18, 3.10.13, 3.11.7, 3.12.1, 3.13.0)
// and Debian's 3.11.2. The public structs (PyCodeObject, PyFrameObject,
// PyThreadState, PyASCIIObject) keep their layout within a minor version; the
// internal _PyInterpreterFrame does in practice and is what tracemalloc,
// py-spy and pystack rely on too.
//
// Rules for this file (it runs inside allocator hooks): no allocation, no
// locks, no syscalls, no C++ runtime, no exceptions. The only CPython
// functions called are the thread-state getters and PyCode_Addr2Line, none of
// which allocate (see the notes at their call sites).

#include "agent/python_frames.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace memtap_agent {
namespace {

// How the calling thread's frames are reached and read.
enum class FrameModel : unsigned char {
    None,        // framesInit() not called or failed
    FrameObject, // 3.6-3.10: PyThreadState.frame -> PyFrameObject chain
    Interp311,   // 3.11: tstate->cframe->current_frame, _PyInterpreterFrame
    Interp312,   // 3.12: as 3.11, plus FRAME_OWNED_BY_CSTACK shim frames
    Interp313,   // 3.13: tstate->current_frame, f_executable may be non-code
};

// Byte offsets of the fields the walker reads; 0 where a model does not use
// the field. Common to every version (Include/object.h, GIL build without
// Py_TRACE_REFS): PyObject.ob_type at 8, PyVarObject.ob_size at 16.
struct Layout {
    FrameModel model;
    // PyThreadState: .frame (<= 3.10), .cframe (3.11, 3.12), .current_frame (3.13).
    unsigned tstateFrame;
    // _PyCFrame.current_frame (3.11, 3.12).
    unsigned cframeCurrentFrame;
    // PyFrameObject (<= 3.10).
    unsigned fBack, fCode, fTrace, fLasti, fLineno;
    // _PyInterpreterFrame (>= 3.11): f_code / f_executable, previous,
    // prev_instr / instr_ptr, owner.
    unsigned ifCode, ifPrevious, ifInstr, ifOwner;
    // PyCodeObject.
    unsigned coFirstLineno, coFilename, coName, coLineTable;
    unsigned coFirstTraceable, coCodeAdaptive; // >= 3.11
    // sizeof(PyASCIIObject), sizeof(PyCompactUnicodeObject); the latter is
    // also the offset of PyUnicodeObject.data.any (legacy strings).
    unsigned asciiSize, compactSize;
    bool unicodeHasReady; // state.ready bit exists (<= 3.11)
};

constexpr unsigned kObType = 8;  // Include/object.h: PyObject { ob_refcnt; ob_type; }
constexpr unsigned kObSize = 16; // Include/object.h: PyVarObject { ob_base; ob_size; }

// Include/{cpython/,}unicodeobject.h, every version: PyASCIIObject is
// { PyObject_HEAD; Py_ssize_t length; Py_hash_t hash; struct state; ... }, so
// length is at 16 and the state bit-field word at 32. Bits of that word (GCC
// allocates bit-fields from the least significant bit): interned 0-1, kind
// 2-4, compact 5, ascii 6, ready 7 (ready removed in 3.12).
constexpr unsigned kUniLength = 16;
constexpr unsigned kUniState = 32;

// 3.6, 3.7. Include/pystate.h: PyThreadState { prev, next, interp, frame }
// -> frame at 24. Include/frameobject.h: PyFrameObject { PyObject_VAR_HEAD
// (24); f_back 24; f_code 32; f_builtins, f_globals, f_locals, f_valuestack,
// f_stacktop; f_trace 80; ... }. 3.6 keeps f_exc_type/value/traceback and
// f_gen before f_lasti (120) and f_lineno (124); 3.7 moved the exception
// state to the generator, leaving f_trace_lines/opcodes + f_gen: f_lasti 104,
// f_lineno 108. Include/code.h: PyCodeObject { PyObject_HEAD; 5 ints
// (argcount, kwonlyargcount, nlocals, stacksize, flags); co_firstlineno 36;
// co_code ... co_cellvars (6 ptrs from 40); co_cell2arg 88; co_filename 96;
// co_name 104; co_lnotab 112 }. Include/unicodeobject.h: sizeof
// PyASCIIObject 48 (with wstr), PyCompactUnicodeObject 72.
constexpr Layout kLayout36 = {FrameModel::FrameObject,
                              24,
                              0,
                              24,
                              32,
                              80,
                              120,
                              124,
                              0,
                              0,
                              0,
                              0,
                              36,
                              96,
                              104,
                              112,
                              0,
                              0,
                              48,
                              72,
                              true};
constexpr Layout kLayout37 = {FrameModel::FrameObject,
                              24,
                              0,
                              24,
                              32,
                              80,
                              104,
                              108,
                              0,
                              0,
                              0,
                              0,
                              36,
                              96,
                              104,
                              112,
                              0,
                              0,
                              48,
                              72,
                              true};
// 3.8, 3.9. Include/cpython/pystate.h (3.8: Include/cpython/pystate.h, 3.9
// the same): frame still at 24. Include/frameobject.h (3.8) /
// Include/cpython/frameobject.h (3.9): same frame layout as 3.7. code.h
// gained co_posonlyargcount before co_kwonlyargcount: co_firstlineno 40,
// co_filename 104, co_name 112, co_lnotab 120.
constexpr Layout kLayout38 = {FrameModel::FrameObject,
                              24,
                              0,
                              24,
                              32,
                              80,
                              104,
                              108,
                              0,
                              0,
                              0,
                              0,
                              40,
                              104,
                              112,
                              120,
                              0,
                              0,
                              48,
                              72,
                              true};
// 3.10. Include/cpython/frameobject.h: f_valuestack is followed by f_trace
// at 72 (f_stacktop gone), f_stackdepth, f_trace_lines/opcodes, f_gen, then
// f_lasti 96 (counted in code units, not bytes) and f_lineno 100 (valid only
// if non-zero). Include/cpython/code.h: co_linetable replaces co_lnotab at
// the same offset 120.
constexpr Layout kLayout310 = {FrameModel::FrameObject,
                               24,
                               0,
                               24,
                               32,
                               72,
                               96,
                               100,
                               0,
                               0,
                               0,
                               0,
                               40,
                               104,
                               112,
                               120,
                               0,
                               0,
                               48,
                               72,
                               true};
// 3.11. Include/cpython/pystate.h: PyThreadState { prev, next, interp,
// _initialized, _static, recursion_remaining, recursion_limit,
// recursion_headroom, tracing, tracing_what; cframe at 56 }; _PyCFrame {
// uint8_t use_tracing; current_frame at 8; previous }.
// Include/internal/pycore_frame.h: _PyInterpreterFrame { f_func 0,
// f_globals 8, f_builtins 16, f_locals 24, f_code 32, frame_obj 40, previous
// 48, prev_instr 56, stacktop 64 (int), is_entry 68 (bool), owner 69 (char);
// localsplus }. Include/cpython/code.h (_PyCode_DEF): PyObject_VAR_HEAD (24);
// co_consts, co_names, co_exceptiontable (24-47); co_flags 48, co_warmup and
// _co_linearray_entry_size (shorts); co_argcount, co_posonlyargcount,
// co_kwonlyargcount, co_stacksize, co_firstlineno 72, five more ints;
// co_localsplusnames, co_localspluskinds, co_filename 112, co_name 120,
// co_qualname 128, co_linetable 136, co_weakreflist, _co_code,
// _co_linearray; _co_firsttraceable 168; co_extra; co_code_adaptive 184.
// Include/cpython/unicodeobject.h still has wstr (sizes 48 / 72).
constexpr Layout kLayout311 = {FrameModel::Interp311,
                               56,
                               8,
                               0,
                               0,
                               0,
                               0,
                               0,
                               32,
                               48,
                               56,
                               69,
                               72,
                               112,
                               120,
                               136,
                               168,
                               184,
                               48,
                               72,
                               true};
// 3.12. Include/cpython/pystate.h: cframe still at 56; _PyCFrame lost
// use_tracing, so current_frame is at 0. Include/internal/pycore_frame.h:
// _PyInterpreterFrame { f_code 0, previous 8, f_funcobj 16, f_globals 24,
// f_builtins 32, f_locals 40, frame_obj 48, prev_instr 56, stacktop 64 (int),
// return_offset 68 (uint16_t), owner 70 (char); localsplus }.
// Include/cpython/code.h (_PyCode_DEF): co_firstlineno 68, co_filename 112,
// co_name 120, co_qualname 128, co_linetable 136, _co_firsttraceable 176,
// co_code_adaptive 192. Include/cpython/unicodeobject.h: wstr and
// wstr_length removed: sizeof PyASCIIObject 40, PyCompactUnicodeObject 56.
constexpr Layout kLayout312 = {FrameModel::Interp312,
                               56,
                               0,
                               0,
                               0,
                               0,
                               0,
                               0,
                               0,
                               8,
                               56,
                               70,
                               68,
                               112,
                               120,
                               136,
                               176,
                               192,
                               40,
                               56,
                               false};
// 3.13. Include/cpython/pystate.h: PyThreadState { prev, next, interp,
// eval_breaker (uintptr_t) 24, _status (struct of bit-fields, 4 bytes) 32,
// _whence 36 (int), state 40 (int), py_recursion_remaining 44,
// py_recursion_limit 48, c_recursion_remaining 52, recursion_headroom 56,
// tracing 60, what_event 64, current_frame at 72 } (no more cframe).
// Include/internal/pycore_frame.h: _PyInterpreterFrame { f_executable 0
// (code object or None), previous 8, f_funcobj 16, f_globals 24, f_builtins
// 32, f_locals 40, frame_obj 48, instr_ptr 56 (the instruction being
// executed, not the previous one), stacktop 64, return_offset 68, owner 70 }.
// Include/cpython/code.h: _co_firsttraceable 184, co_code_adaptive 200
// (co_executors was added before _co_monitoring), the rest as 3.12.
constexpr Layout kLayout313 = {FrameModel::Interp313,
                               72,
                               0,
                               0,
                               0,
                               0,
                               0,
                               0,
                               0,
                               8,
                               56,
                               70,
                               68,
                               112,
                               120,
                               136,
                               184,
                               200,
                               40,
                               56,
                               false};

// enum _frameowner, Include/internal/pycore_frame.h (3.11 ... 3.13).
constexpr char kFrameOwnedByGenerator = 1;
constexpr char kFrameOwnedByCStack = 3; // 3.12+: the C-stack entry shim

using TstateGetter = void* (*)();
using Addr2LineFn = int (*)(const void* code, int byteOffset);

// Written once by framesInit() before any hook runs, read-only afterwards.
struct State {
    Layout layout;
    // PyGILState_GetThisThreadState: the tstate bound to this OS thread
    // (pthread_getspecific underneath; no allocation, no syscall).
    TstateGetter gilstateThisThread;
    // _PyThreadState_UncheckedGet (<= 3.12) / PyThreadState_GetUnchecked
    // (3.13): before 3.12 the GIL holder's tstate (a global, may belong to
    // another thread), from 3.12 the calling thread's attached tstate (a
    // thread_local, NULL once the thread released the GIL).
    TstateGetter currentTstate;
    bool currentIsThreadLocal; // >= 3.12
    Addr2LineFn addr2line;
    const void* codeType;
    const void* unicodeType;
};

State g_state;

template <typename T>
inline T
readAt(const void* base, unsigned offset) noexcept {
    T value;
    memcpy(&value, static_cast<const char*>(base) + offset, sizeof(T));
    return value;
}

inline const void*
ptrAt(const void* base, unsigned offset) noexcept {
    return readAt<const void*>(base, offset);
}

inline bool
isCode(const void* obj) noexcept {
    return obj != nullptr && ptrAt(obj, kObType) == g_state.codeType;
}

// The tstate of the calling thread if that thread holds the GIL, else null.
void*
tstateIfGilHeld() noexcept {
    void* current = g_state.currentTstate();
    if (current == nullptr || g_state.currentIsThreadLocal) {
        return current;
    }
    // Before 3.12 the "current" tstate is the GIL holder's, whichever thread
    // that is: the caller holds the GIL only if it is its own tstate. A
    // thread in a sub-interpreter (not the gilstate one) reads as "not
    // holding", which only loses its frames.
    return g_state.gilstateThisThread() == current ? current : nullptr;
}

// ---- Line cache -----------------------------------------------------------
//
// Direct-mapped (code, byte offset) -> line. Exact mode asks for the line of
// the same few call sites on every allocation, and PyCode_Addr2Line scans the
// line table from the start each time.
//
// No locks: with per-interpreter GILs (3.12+) two threads can be here at
// once. A slot is three independent 64-bit words written with relaxed
// atomic stores; a reader accepts a slot only if its check word equals a
// hash of the other two words and of the code object's identity as seen by
// the reader (co_linetable object, its size, co_firstlineno). A torn slot
// (words from two writers) fails the check except with probability ~2^-64,
// and so does a slot left by a dead code object whose address was reused by
// a code object with another line table or first line.

struct LineSlot {
    uint64_t code;
    uint64_t offsetAndLine; // low 32: byte offset, high 32: line
    uint64_t check;
};

constexpr unsigned kLineSlots = 1024; // 24 KiB, power of two
LineSlot g_lineCache[kLineSlots];

inline uint64_t
mix64(uint64_t x) noexcept {
    // SplitMix64 finalizer: a cheap bijective avalanche.
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

inline uint64_t
slotCheck(uint64_t code, uint64_t offsetAndLine, uint64_t identity) noexcept {
    return mix64(mix64(code ^ 0x9e3779b97f4a7c15ULL) ^ offsetAndLine) ^ mix64(identity);
}

int
lineFor(const void* code, int byteOffset) noexcept {
    const Layout& l = g_state.layout;
    const void* table = ptrAt(code, l.coLineTable);
    uint64_t identity = reinterpret_cast<uintptr_t>(table);
    if (table != nullptr) {
        identity ^= static_cast<uint64_t>(readAt<int64_t>(table, kObSize)) << 40;
    }
    identity ^= static_cast<uint64_t>(static_cast<uint32_t>(readAt<int>(code, l.coFirstLineno))) << 8;

    uint64_t codeBits = reinterpret_cast<uintptr_t>(code);
    uint32_t offsetBits = static_cast<uint32_t>(byteOffset);
    unsigned index =
        static_cast<unsigned>(mix64(codeBits ^ (uint64_t{offsetBits} << 3))) & (kLineSlots - 1);
    LineSlot& slot = g_lineCache[index];

    uint64_t seenCode = __atomic_load_n(&slot.code, __ATOMIC_RELAXED);
    uint64_t seenValue = __atomic_load_n(&slot.offsetAndLine, __ATOMIC_RELAXED);
    uint64_t seenCheck = __atomic_load_n(&slot.check, __ATOMIC_RELAXED);
    if (seenCode == codeBits && static_cast<uint32_t>(seenValue) == offsetBits &&
        seenCheck == slotCheck(seenCode, seenValue, identity)) {
        return static_cast<int>(static_cast<uint32_t>(seenValue >> 32));
    }

    // PyCode_Addr2Line only scans the line table (Objects/codeobject.c:
    // co_lnotab pairs up to 3.9; PyCodeAddressRange over co_linetable in
    // 3.10+, or 3.11's _co_linearray if tracing created it); it allocates
    // nothing and returns co_firstlineno for a negative offset.
    int line = g_state.addr2line(code, byteOffset);
    uint64_t value = uint64_t{offsetBits} | (uint64_t{static_cast<uint32_t>(line)} << 32);
    __atomic_store_n(&slot.code, codeBits, __ATOMIC_RELAXED);
    __atomic_store_n(&slot.offsetAndLine, value, __ATOMIC_RELAXED);
    __atomic_store_n(&slot.check, slotCheck(codeBits, value, identity), __ATOMIC_RELAXED);
    return line;
}

// ---- Walkers --------------------------------------------------------------

// A corrupted or cyclic chain must not hang a hook: visit at most this many
// frames beyond those returned (shim and incomplete frames are few).
constexpr int kMaxSkipped = 1024;

int
walkFrameObjects(const void* tstate, RawFrame* out, int max) noexcept {
    const Layout& l = g_state.layout;
    bool lastiInCodeUnits = l.coLineTable == kLayout310.coLineTable && l.fTrace == kLayout310.fTrace;
    int n = 0;
    int visited = 0;
    for (const void* frame = ptrAt(tstate, l.tstateFrame); frame != nullptr && n < max;
         frame = ptrAt(frame, l.fBack)) {
        if (++visited > max + kMaxSkipped) {
            break;
        }
        const void* code = ptrAt(frame, l.fCode);
        if (code == nullptr) {
            continue;
        }
        int line;
        if (lastiInCodeUnits) {
            // 3.10 PyFrame_GetLineNumber (Objects/frameobject.c): f_lineno
            // when non-zero (tracing), else the line of f_lasti * 2 bytes.
            line = readAt<int>(frame, l.fLineno);
            if (line == 0) {
                int lasti = readAt<int>(frame, l.fLasti);
                line = lineFor(code, lasti < 0 ? -1 : lasti * 2);
            }
        } else if (ptrAt(frame, l.fTrace) != nullptr) {
            // <= 3.9 PyFrame_GetLineNumber: f_lineno is maintained while a
            // trace function is set, f_lasti (bytes, -1 before the first
            // instruction) otherwise.
            line = readAt<int>(frame, l.fLineno);
        } else {
            line = lineFor(code, readAt<int>(frame, l.fLasti));
        }
        out[n++] = RawFrame{code, line};
    }
    return n;
}

int
walkInterpreterFrames(const void* tstate, RawFrame* out, int max) noexcept {
    const Layout& l = g_state.layout;
    const void* frame = ptrAt(tstate, l.tstateFrame);
    if (l.model != FrameModel::Interp313) {
        // 3.11, 3.12: tstate->cframe->current_frame.
        if (frame == nullptr) {
            return 0;
        }
        frame = ptrAt(frame, l.cframeCurrentFrame);
    }
    int n = 0;
    int visited = 0;
    for (; frame != nullptr && n < max; frame = ptrAt(frame, l.ifPrevious)) {
        if (++visited > max + kMaxSkipped) {
            break;
        }
        char owner = readAt<char>(frame, l.ifOwner);
        if (owner == kFrameOwnedByCStack && l.model != FrameModel::Interp311) {
            continue; // entry shim of _PyEval_EvalFrameDefault, no Python code
        }
        const void* code = ptrAt(frame, l.ifCode);
        if (code == nullptr || (l.model == FrameModel::Interp313 && !isCode(code))) {
            continue; // 3.13: f_executable is None for shims
        }
        // _PyFrame_IsIncomplete (pycore_frame.h, 3.11-3.13): a frame still
        // running its prologue (COPY_FREE_VARS, MAKE_CELL, RETURN_GENERATOR)
        // is not yet visible to Python; traceback and tracemalloc skip it.
        const char* codeStart = static_cast<const char*>(code) + l.coCodeAdaptive;
        const char* instr = static_cast<const char*>(ptrAt(frame, l.ifInstr));
        int firstTraceable = readAt<int>(code, l.coFirstTraceable);
        if (owner != kFrameOwnedByGenerator &&
            instr < codeStart + 2 * static_cast<ptrdiff_t>(firstTraceable)) {
            continue;
        }
        // _PyInterpreterFrame_LASTI * sizeof(_Py_CODEUNIT) is the byte offset
        // PyUnstable_InterpreterFrame_GetLine / tracemalloc pass on; 3.11 and
        // 3.12 count from prev_instr, 3.13 from instr_ptr, both read the same.
        ptrdiff_t offset = instr - codeStart;
        out[n++] = RawFrame{code, lineFor(code, offset < 0 ? -1 : static_cast<int>(offset))};
    }
    return n;
}

// ---- Strings --------------------------------------------------------------

inline int
putUtf8(uint32_t cp, char* dst, int room) noexcept {
    if (cp >= 0xD800 && cp <= 0xDFFF) {
        cp = 0xFFFD; // lone surrogate (e.g. surrogateescape'd file name): U+FFFD keeps it UTF-8
    }
    if (cp < 0x80) {
        if (room < 1) {
            return 0;
        }
        dst[0] = static_cast<char>(cp);
        return 1;
    }
    if (cp < 0x800) {
        if (room < 2) {
            return 0;
        }
        dst[0] = static_cast<char>(0xC0 | (cp >> 6));
        dst[1] = static_cast<char>(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        if (room < 3) {
            return 0;
        }
        dst[0] = static_cast<char>(0xE0 | (cp >> 12));
        dst[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = static_cast<char>(0x80 | (cp & 0x3F));
        return 3;
    }
    if (room < 4) {
        return 0;
    }
    dst[0] = static_cast<char>(0xF0 | (cp >> 18));
    dst[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = static_cast<char>(0x80 | (cp & 0x3F));
    return 4;
}

// Copies a str object as UTF-8 into dst (cap >= 1). Returns false, leaving
// "?", if obj is not an exact str whose characters can be read in place.
bool
copyUnicode(const void* obj, char* dst, int cap) noexcept {
    const Layout& l = g_state.layout;
    if (obj == nullptr || ptrAt(obj, kObType) != g_state.unicodeType) {
        return false;
    }
    uint32_t state = readAt<uint32_t>(obj, kUniState);
    unsigned kind = (state >> 2) & 7;
    bool compact = (state >> 5) & 1;
    bool ascii = (state >> 6) & 1;
    int64_t length = readAt<int64_t>(obj, kUniLength);
    const void* data;
    if (compact) {
        // Compact strings keep their characters right after the header:
        // after PyASCIIObject when ascii, after PyCompactUnicodeObject else.
        data = static_cast<const char*>(obj) + (ascii ? l.asciiSize : l.compactSize);
    } else {
        // Legacy string (PyUnicodeObject): data.any, valid once ready (<= 3.11).
        if (l.unicodeHasReady && ((state >> 7) & 1) == 0) {
            return false;
        }
        data = ptrAt(obj, l.compactSize);
    }
    if (data == nullptr || length < 0 || (kind != 1 && kind != 2 && kind != 4)) {
        return false;
    }
    int room = cap - 1;
    int used = 0;
    if (ascii) {
        int count = length < room ? static_cast<int>(length) : room;
        memcpy(dst, data, static_cast<size_t>(count));
        used = count;
    } else {
        for (int64_t i = 0; i < length; ++i) {
            uint32_t cp;
            if (kind == 1) {
                cp = static_cast<const uint8_t*>(data)[i];
            } else if (kind == 2) {
                cp = static_cast<const uint16_t*>(data)[i];
            } else {
                cp = static_cast<const uint32_t*>(data)[i];
            }
            int wrote = putUtf8(cp, dst + used, room - used);
            if (wrote == 0) {
                break; // truncate on a character boundary
            }
            used += wrote;
        }
    }
    dst[used] = '\0';
    return true;
}

bool
copyOrMark(const void* str, char* dst, int cap) noexcept {
    if (dst == nullptr || cap < 1) {
        return true; // caller asked for nothing
    }
    if (copyUnicode(str, dst, cap)) {
        return true;
    }
    if (cap >= 2) {
        dst[0] = '?';
        dst[1] = '\0';
    } else {
        dst[0] = '\0';
    }
    return false;
}

} // namespace

bool
framesInit(int major, int minor, void* (*lookup)(const char* name)) noexcept {
    g_state = State{};
    if (major != 3 || lookup == nullptr) {
        return false;
    }
    Layout layout;
    switch (minor) {
    case 6:
        layout = kLayout36;
        break;
    case 7:
        layout = kLayout37;
        break;
    case 8:
    case 9:
        layout = kLayout38;
        break;
    case 10:
        layout = kLayout310;
        break;
    case 11:
        layout = kLayout311;
        break;
    case 12:
        layout = kLayout312;
        break;
    case 13:
        layout = kLayout313;
        break;
    default:
        return false;
    }
    // Builds whose object header differs from the layouts above: Py_TRACE_REFS
    // prepends _ob_next/_ob_prev to every object and exports
    // _Py_PrintReferences; the free-threaded 3.13t build (Py_GIL_DISABLED)
    // has a larger header and exports _Py_DecRefShared.
    if (lookup("_Py_PrintReferences") != nullptr || lookup("_Py_DecRefShared") != nullptr) {
        return false;
    }
    State state{};
    state.layout = layout;
    state.gilstateThisThread = reinterpret_cast<TstateGetter>(lookup("PyGILState_GetThisThreadState"));
    // 3.13 made the unchecked getter public (Include/cpython/pystate.h:
    // PyThreadState_GetUnchecked) and kept the old name only as a macro.
    state.currentTstate = reinterpret_cast<TstateGetter>(
        lookup(minor >= 13 ? "PyThreadState_GetUnchecked" : "_PyThreadState_UncheckedGet"));
    state.currentIsThreadLocal = minor >= 12;
    state.addr2line = reinterpret_cast<Addr2LineFn>(lookup("PyCode_Addr2Line"));
    state.codeType = lookup("PyCode_Type");
    state.unicodeType = lookup("PyUnicode_Type");
    if (state.gilstateThisThread == nullptr || state.currentTstate == nullptr ||
        state.addr2line == nullptr || state.codeType == nullptr || state.unicodeType == nullptr) {
        return false;
    }
    g_state = state;
    return true;
}

int
captureFrames(RawFrame* out, int max) noexcept {
    if (out == nullptr || max <= 0 || g_state.layout.model == FrameModel::None) {
        return 0;
    }
    const void* tstate = tstateIfGilHeld();
    if (tstate == nullptr) {
        return 0;
    }
    if (g_state.layout.model == FrameModel::FrameObject) {
        return walkFrameObjects(tstate, out, max);
    }
    return walkInterpreterFrames(tstate, out, max);
}

bool
codeIdentity(const void* code, CodeIdentity* out) noexcept {
    if (out == nullptr || g_state.layout.model == FrameModel::None || !isCode(code)) {
        return false;
    }
    const Layout& l = g_state.layout;
    out->code = code;
    out->filename = ptrAt(code, l.coFilename);
    out->name = ptrAt(code, l.coName);
    out->firstLine = readAt<int>(code, l.coFirstLineno);
    return true;
}

int
copyCodeNames(const void* code, char* file, int fileCap, char* func, int funcCap) noexcept {
    bool valid = g_state.layout.model != FrameModel::None && isCode(code);
    const Layout& l = g_state.layout;
    const void* filename = valid ? ptrAt(code, l.coFilename) : nullptr;
    const void* name = valid ? ptrAt(code, l.coName) : nullptr;
    bool fileOk = copyOrMark(filename, file, fileCap);
    bool funcOk = copyOrMark(name, func, funcCap);
    return fileOk && funcOk ? 0 : -1;
}

} // namespace memtap_agent
