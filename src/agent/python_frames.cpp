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
    FrameModel model = FrameModel::None;
    // PyThreadState: .frame (<= 3.10), .cframe (3.11, 3.12), .current_frame (3.13).
    unsigned tstateFrame = 0;
    // _PyCFrame.current_frame (3.11, 3.12).
    unsigned cframeCurrentFrame = 0;
    // PyFrameObject (<= 3.10).
    unsigned fBack = 0;
    unsigned fCode = 0;
    unsigned fTrace = 0;
    unsigned fLasti = 0;
    unsigned fLineno = 0;
    // _PyInterpreterFrame (>= 3.11): f_code / f_executable, previous,
    // prev_instr / instr_ptr, owner.
    unsigned ifCode = 0;
    unsigned ifPrevious = 0;
    unsigned ifInstr = 0;
    unsigned ifOwner = 0;
    // PyCodeObject.
    unsigned coFirstLineno = 0;
    unsigned coFilename = 0;
    unsigned coName = 0;
    unsigned coLineTable = 0;      // co_lnotab (<= 3.9), co_linetable
    unsigned coFirstTraceable = 0; // >= 3.11
    unsigned coCodeAdaptive = 0;   // >= 3.11
    // sizeof(PyASCIIObject), sizeof(PyCompactUnicodeObject); the latter is
    // also the offset of PyUnicodeObject.data.any (legacy strings).
    unsigned asciiSize = 0;
    unsigned compactSize = 0;
    bool unicodeHasReady = false;  // state.ready bit exists (<= 3.11)
    bool lastiInCodeUnits = false; // PyFrameObject.f_lasti counts code units (3.10)
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

// The tables below list, for each field, its offset and where it comes from.
// Header paths are those of the CPython tag of that minor version
// (v3.6.15 ... v3.13.0); sizes assume x86-64 LP64.

// 3.6.
constexpr Layout kLayout36 = {
    .model = FrameModel::FrameObject,
    // Include/pystate.h: PyThreadState { prev, next, interp, frame }.
    .tstateFrame = 24,
    // Include/frameobject.h: PyFrameObject { PyObject_VAR_HEAD (24 bytes),
    // f_back, f_code, f_builtins, f_globals, f_locals, f_valuestack,
    // f_stacktop, f_trace, f_exc_type, f_exc_value, f_exc_traceback, f_gen,
    // int f_lasti (bytes; -1 before the first instruction), int f_lineno }.
    .fBack = 24,
    .fCode = 32,
    .fTrace = 80,
    .fLasti = 120,
    .fLineno = 124,
    // Include/code.h: PyCodeObject { PyObject_HEAD (16), five ints
    // (argcount, kwonlyargcount, nlocals, stacksize, flags), co_firstlineno,
    // co_code, co_consts, co_names, co_varnames, co_freevars, co_cellvars,
    // co_cell2arg, co_filename, co_name, co_lnotab }.
    .coFirstLineno = 36,
    .coFilename = 96,
    .coName = 104,
    .coLineTable = 112,
    // Include/unicodeobject.h: PyASCIIObject ends with wchar_t* wstr;
    // PyCompactUnicodeObject adds utf8_length, utf8, wstr_length.
    .asciiSize = 48,
    .compactSize = 72,
    .unicodeHasReady = true,
};

// 3.7 moved the generator's exception state out of the frame
// (Include/frameobject.h: f_trace is followed by char f_trace_lines,
// f_trace_opcodes, then f_gen, f_lasti, f_lineno).
constexpr Layout kLayout37 = [] {
    Layout l = kLayout36;
    l.fLasti = 104;
    l.fLineno = 108;
    return l;
}();

// 3.8 and 3.9: PyThreadState moved to Include/cpython/pystate.h (frame still
// at 24); frames as in 3.7 (Include/frameobject.h in 3.8,
// Include/cpython/frameobject.h in 3.9). The code object (Include/code.h in
// 3.8, Include/cpython/code.h in 3.9) gained int co_posonlyargcount after
// co_argcount: co_firstlineno moves to 40 and, with the padding that now
// follows it, every pointer after it moves by 8.
constexpr Layout kLayout38 = [] {
    Layout l = kLayout37;
    l.coFirstLineno = 40;
    l.coFilename = 104;
    l.coName = 112;
    l.coLineTable = 120; // co_lnotab
    return l;
}();

// 3.10. Include/cpython/frameobject.h: f_stacktop became int f_stackdepth
// after f_trace, so f_trace is at 72 and f_lasti at 96, now counted in code
// units (PyFrame_GetLineNumber multiplies by 2); f_lineno (100) is valid when
// non-zero. Include/cpython/code.h: co_linetable takes co_lnotab's place.
constexpr Layout kLayout310 = [] {
    Layout l = kLayout38;
    l.fTrace = 72;
    l.fLasti = 96;
    l.fLineno = 100;
    l.lastiInCodeUnits = true;
    return l;
}();

// 3.11.
constexpr Layout kLayout311 = {
    .model = FrameModel::Interp311,
    // Include/cpython/pystate.h: PyThreadState { prev, next, interp, int
    // _initialized, int _static, int recursion_remaining, int
    // recursion_limit, int recursion_headroom, int tracing, int tracing_what,
    // _PyCFrame* cframe }.
    .tstateFrame = 56,
    // Include/cpython/pystate.h: _PyCFrame { uint8_t use_tracing,
    // _PyInterpreterFrame* current_frame, previous }.
    .cframeCurrentFrame = 8,
    // Include/internal/pycore_frame.h: _PyInterpreterFrame { f_func,
    // f_globals, f_builtins, f_locals, PyCodeObject* f_code, frame_obj,
    // previous, _Py_CODEUNIT* prev_instr, int stacktop, bool is_entry, char
    // owner }.
    .ifCode = 32,
    .ifPrevious = 48,
    .ifInstr = 56,
    .ifOwner = 69,
    // Include/cpython/code.h (_PyCode_DEF): PyObject_VAR_HEAD (24);
    // co_consts, co_names, co_exceptiontable; int co_flags, short co_warmup,
    // short _co_linearray_entry_size; ints co_argcount, co_posonlyargcount,
    // co_kwonlyargcount, co_stacksize, co_firstlineno, co_nlocalsplus,
    // co_nlocals, co_nplaincellvars, co_ncellvars, co_nfreevars;
    // co_localsplusnames, co_localspluskinds, co_filename, co_name,
    // co_qualname, co_linetable, co_weakreflist, _co_code, _co_linearray; int
    // _co_firsttraceable; co_extra; char co_code_adaptive[].
    .coFirstLineno = 72,
    .coFilename = 112,
    .coName = 120,
    .coLineTable = 136,
    .coFirstTraceable = 168,
    .coCodeAdaptive = 184,
    // Include/cpython/unicodeobject.h: still with wstr, as in 3.6.
    .asciiSize = 48,
    .compactSize = 72,
    .unicodeHasReady = true,
};

// 3.12.
constexpr Layout kLayout312 = {
    .model = FrameModel::Interp312,
    // Include/cpython/pystate.h: the fields before cframe changed (int
    // _status bit-field word, py_recursion_remaining, py_recursion_limit,
    // c_recursion_remaining, recursion_headroom, tracing, what_event) but
    // cframe stays at 56.
    .tstateFrame = 56,
    // Include/cpython/pystate.h: _PyCFrame { current_frame, previous }.
    .cframeCurrentFrame = 0,
    // Include/internal/pycore_frame.h: _PyInterpreterFrame { f_code,
    // previous, f_funcobj, f_globals, f_builtins, f_locals, frame_obj,
    // prev_instr, int stacktop, uint16_t return_offset, char owner }.
    .ifCode = 0,
    .ifPrevious = 8,
    .ifInstr = 56,
    .ifOwner = 70,
    // Include/cpython/code.h (_PyCode_DEF): co_flags became the first int and
    // co_warmup/_co_linearray_entry_size left, so co_firstlineno moved to 68;
    // _co_cached, _co_instrumentation_version and _co_monitoring replaced
    // _co_code and _co_linearray before _co_firsttraceable.
    .coFirstLineno = 68,
    .coFilename = 112,
    .coName = 120,
    .coLineTable = 136,
    .coFirstTraceable = 176,
    .coCodeAdaptive = 192,
    // Include/cpython/unicodeobject.h: wstr, wstr_length and the ready bit
    // are gone.
    .asciiSize = 40,
    .compactSize = 56,
    .unicodeHasReady = false,
};

// 3.13.
constexpr Layout kLayout313 = [] {
    Layout l = kLayout312;
    l.model = FrameModel::Interp313;
    // Include/cpython/pystate.h: cframe is gone; PyThreadState { prev, next,
    // interp, uintptr_t eval_breaker, _status (4 bytes), int _whence, int
    // state, int py_recursion_remaining, py_recursion_limit,
    // c_recursion_remaining, recursion_headroom, tracing, what_event,
    // _PyInterpreterFrame* current_frame }.
    l.tstateFrame = 72;
    // Include/internal/pycore_frame.h: f_code became PyObject* f_executable
    // (a code object, or None for the C-stack entry shim) and prev_instr
    // became instr_ptr (the instruction being executed); offsets unchanged.
    // Include/cpython/code.h: co_executors was inserted before
    // _co_firsttraceable.
    l.coFirstTraceable = 184;
    l.coCodeAdaptive = 200;
    return l;
}();

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

constexpr unsigned kLineSlotBits = 10;
constexpr unsigned kLineSlots = 1u << kLineSlotBits; // 24 KiB
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
    // One bijective mix over a combination that changes if any input word
    // changes (the multipliers are odd, so they are bijections too).
    return mix64(code ^ (offsetAndLine * 0x9e3779b97f4a7c15ULL) ^ (identity * 0xd6e8feb86659fd93ULL));
}

// The miss path, out of line so the hit path stays a leaf without spills.
__attribute__((noinline, cold)) int
fillLineSlot(LineSlot& slot, const void* code, int byteOffset, uint64_t identity) noexcept {
    uint64_t codeBits = reinterpret_cast<uintptr_t>(code);
    uint32_t offsetBits = static_cast<uint32_t>(byteOffset);
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

inline int
lineFor(const void* code, int byteOffset) noexcept {
    const Layout& l = g_state.layout;
    // What tells a live code object from a dead one at the same address:
    // its line table object, that table's length and its first line.
    const void* table = ptrAt(code, l.coLineTable);
    uint64_t identity = reinterpret_cast<uintptr_t>(table);
    if (table != nullptr) {
        identity ^= static_cast<uint64_t>(readAt<int64_t>(table, kObSize)) << 40;
    }
    identity ^= static_cast<uint64_t>(static_cast<uint32_t>(readAt<int>(code, l.coFirstLineno))) << 8;

    uint64_t codeBits = reinterpret_cast<uintptr_t>(code);
    uint32_t offsetBits = static_cast<uint32_t>(byteOffset);
    // Multiplicative hashing on the top bits: cheap and spreads both the
    // 16-byte-aligned code pointers and the 2-byte-aligned offsets.
    uint64_t spread =
        (codeBits >> 4) * 0x9e3779b97f4a7c15ULL + uint64_t{offsetBits} * 0xc2b2ae3d27d4eb4fULL;
    LineSlot& slot = g_lineCache[spread >> (64 - kLineSlotBits)];

    uint64_t seenCode = __atomic_load_n(&slot.code, __ATOMIC_RELAXED);
    uint64_t seenValue = __atomic_load_n(&slot.offsetAndLine, __ATOMIC_RELAXED);
    uint64_t seenCheck = __atomic_load_n(&slot.check, __ATOMIC_RELAXED);
    if (seenCode == codeBits && static_cast<uint32_t>(seenValue) == offsetBits &&
        seenCheck == slotCheck(seenCode, seenValue, identity)) {
        return static_cast<int>(static_cast<uint32_t>(seenValue >> 32));
    }
    return fillLineSlot(slot, code, byteOffset, identity);
}

// ---- Walkers --------------------------------------------------------------

// A corrupted or cyclic chain must not hang a hook: visit at most this many
// frames beyond those returned (shim and incomplete frames are few).
constexpr int kMaxSkipped = 1024;

int
walkFrameObjects(const void* tstate, RawFrame* out, int max) noexcept {
    const Layout& l = g_state.layout;
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
        if (l.lastiInCodeUnits) {
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
