// Frame walking without Python.h: see python_frames.h for the contract.
//
// Every structure is read through byte offsets chosen once by framesInit()
// from the per-version tables (python_layouts.h). Each offset was read from the CPython
// header named next to it (x86-64, release build, default GIL build) and
// checked with offsetof() against the headers of the interpreters installed
// by pyenv (3.6.15, 3.7.16, 3.8.18, 3.9.18, 3.10.13, 3.11.7, 3.12.1, 3.13.0)
// and Debian's 3.11.2; 3.14 and 3.15 come from transcribed structs only and
// must agree with the interpreter's _Py_DebugOffsets. The public structs (PyCodeObject, PyFrameObject,
// PyThreadState, PyASCIIObject) keep their layout within a minor version; the
// internal _PyInterpreterFrame does in practice and is what tracemalloc,
// py-spy and pystack rely on too.
//
// Rules for this file (it runs inside allocator hooks): no allocation, no
// locks, no syscalls, no C++ runtime, no exceptions. The only CPython
// functions called are the thread-state getters and PyCode_Addr2Line, none of
// which allocate (see the notes at their call sites).

#include "agent/python_frames.h"

#include "agent/python_debug_offsets.h"
#include "agent/python_layouts.h"
#include "agent/python_objects.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace memtap_agent {
namespace {

using layouts::FrameModel;
using layouts::kFrameOwnedByCStack;
using layouts::kFrameOwnedByGenerator;
using layouts::kFrameOwnedByInterpreter;
using layouts::kObSize;
using layouts::kObType;
using layouts::kUniLength;
using layouts::kUniState;
using layouts::Layout;
using pyobj::ptrAt;
using pyobj::readAt;

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

// Why frames are off (or how the layout was confirmed), for status; written by
// framesInit() only.
char g_note[160];

void
setNote(const char* a, const char* b = nullptr) noexcept {
    size_t used = 0;
    const char* parts[] = {a, b};
    for (const char* part : parts) {
        for (; part != nullptr && *part != '\0' && used + 1 < sizeof g_note; ++part) {
            g_note[used++] = *part;
        }
    }
    g_note[used] = '\0';
}

// 3.13+: the interpreter's own _Py_DebugOffsets (first member of _PyRuntime,
// Include/internal/pycore_runtime.h in 3.13, pycore_debug_offsets.h in 3.14+)
// must agree with the layout table, field by field, or frames stay off. With
// no table (known == nullptr: a version newer than memtap knows), a sane one
// is the layout. Returns false to refuse frames.
bool
confirmWithDebugOffsets(int minor, Layout* layout, const Layout* known,
                        void* (*lookup)(const char*)) noexcept {
    const void* runtime = lookup("_PyRuntime");
    if (runtime == nullptr) {
        setNote(known ? "layout table (no _PyRuntime symbol to cross-check)"
                      : "frames off: newer CPython than memtap knows and no _PyRuntime");
        return known != nullptr;
    }
    layouts::WalkerOffsets w;
    char cookie[8];
    memcpy(cookie, runtime, sizeof cookie);
    if (minor == 13) {
        layouts::DebugOffsets313 d;
        memcpy(&d, runtime, sizeof d);
        w = layouts::walkerOffsets(d);
    } else {
        layouts::DebugOffsets314 d;
        memcpy(&d, runtime, sizeof d);
        w = layouts::walkerOffsets(d);
    }
    // sizeof(PyCodeObject) is PyCode_Type.tp_basicsize (Objects/codeobject.c).
    const void* codeType = lookup("PyCode_Type");
    uint64_t codeBasic =
        minor >= 14 && codeType != nullptr ? readAt<uint64_t>(codeType, layouts::kTpBasicSize) : 0;
    const char* field = nullptr;
    switch (layouts::checkWalkerOffsets(cookie, w, minor, known, codeBasic, &field)) {
    case layouts::DebugOffsetsVerdict::Agree:
        if (known == nullptr) {
            layouts::layoutFromWalkerOffsets(w, layout);
            setNote("newer CPython than memtap knows: frames from _Py_DebugOffsets");
        } else {
            setNote("layout table, confirmed by _Py_DebugOffsets");
        }
        return true;
    case layouts::DebugOffsetsVerdict::Absent:
        setNote(known ? "layout table (no _Py_DebugOffsets cookie)"
                      : "frames off: newer CPython than memtap knows, no _Py_DebugOffsets");
        return known != nullptr;
    case layouts::DebugOffsetsVerdict::WrongVersion:
        setNote("frames off: _Py_DebugOffsets names another CPython version");
        return false;
    case layouts::DebugOffsetsVerdict::FreeThreaded:
        setNote("frames off: free-threaded build");
        return false;
    case layouts::DebugOffsetsVerdict::Insane:
        setNote("frames off: _Py_DebugOffsets malformed at ", field);
        return false;
    case layouts::DebugOffsetsVerdict::Disagree:
        setNote("frames off: _Py_DebugOffsets disagrees with memtap's layout at ", field);
        return false;
    }
    return false;
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
// The heap walk reads locals of at most this many frames per thread.
constexpr int kMaxLocalFrames = 4096;

// Calls fn(frame, code, line) for each Python frame of tstate, most recent
// first, until fn returns false or limit frames were visited.
template <typename Fn>
void
visitFrameObjects(const void* tstate, int limit, Fn fn) noexcept {
    const Layout& l = g_state.layout;
    int visited = 0;
    for (const void* frame = ptrAt(tstate, l.tstateFrame); frame != nullptr;
         frame = ptrAt(frame, l.fBack)) {
        if (++visited > limit + kMaxSkipped) {
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
        if (!fn(frame, code, line)) {
            break;
        }
    }
}

template <typename Fn>
void
visitInterpreterFrames(const void* tstate, int limit, Fn fn) noexcept {
    const Layout& l = g_state.layout;
    const void* frame = ptrAt(tstate, l.tstateFrame);
    bool direct = l.model == FrameModel::Interp313 || l.model == FrameModel::Interp314;
    if (!direct) {
        // 3.11, 3.12: tstate->cframe->current_frame.
        if (frame == nullptr) {
            return;
        }
        frame = ptrAt(frame, l.cframeCurrentFrame);
    }
    int visited = 0;
    for (; frame != nullptr; frame = ptrAt(frame, l.ifPrevious)) {
        if (++visited > limit + kMaxSkipped) {
            break;
        }
        char owner = readAt<char>(frame, l.ifOwner);
        if (owner >= kFrameOwnedByInterpreter && l.model != FrameModel::Interp311) {
            continue; // 3.12/3.13 entry shim; 3.14+ interpreter-owned and base frames
        }
        const void* code = ptrAt(frame, l.ifCode);
        if (l.model == FrameModel::Interp314) {
            // A _PyStackRef: PyStackRef_AsPyObjectBorrow clears the tag bits
            // (Include/internal/pycore_stackref.h, v3.14.0, GIL build).
            code = reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(code) &
                                                 ~layouts::cpy314::kTagBits);
        }
        if (code == nullptr || (direct && !isCode(code))) {
            continue; // 3.13+: f_executable is None for shims
        }
        // _PyFrame_IsIncomplete (pycore_frame.h 3.11-3.13, pycore_interpframe.h
        // 3.14): a frame still running its prologue (COPY_FREE_VARS,
        // MAKE_CELL, RETURN_GENERATOR) is not yet visible to Python;
        // traceback and tracemalloc skip it.
        const char* codeStart = static_cast<const char*>(code) + l.coCodeAdaptive;
        const char* instr = static_cast<const char*>(ptrAt(frame, l.ifInstr));
        int firstTraceable = l.noFirstTraceable ? 0 : readAt<int>(code, l.coFirstTraceable);
        if (owner != kFrameOwnedByGenerator &&
            instr < codeStart + 2 * static_cast<ptrdiff_t>(firstTraceable)) {
            continue;
        }
        // _PyInterpreterFrame_LASTI * sizeof(_Py_CODEUNIT) is the byte offset
        // PyUnstable_InterpreterFrame_GetLine / tracemalloc pass on; 3.11 and
        // 3.12 count from prev_instr, 3.13 from instr_ptr, both read the same.
        ptrdiff_t offset = instr - codeStart;
        if (!fn(frame, code, lineFor(code, offset < 0 ? -1 : static_cast<int>(offset)))) {
            break;
        }
    }
}

template <typename Fn>
void
visitFrames(const void* tstate, int limit, Fn fn) noexcept {
    if (g_state.layout.model == FrameModel::FrameObject) {
        visitFrameObjects(tstate, limit, fn);
    } else {
        visitInterpreterFrames(tstate, limit, fn);
    }
}

int
tupleSize(const void* tuple) noexcept {
    return tuple != nullptr ? static_cast<int>(readAt<int64_t>(tuple, kObSize)) : 0;
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
    setNote("frames off: unsupported CPython version");
    if (major != 3 || lookup == nullptr) {
        return false;
    }
    const Layout* found = layouts::layoutForMinor(minor);
    // A version newer than every table (3.16+) may still be walked from its
    // _Py_DebugOffsets; an older unknown one may not.
    if (found == nullptr && minor <= layouts::kNewestKnownMinor) {
        return false;
    }
    Layout layout = found != nullptr ? *found : Layout{};
    // Builds whose object header differs from the layouts above: Py_TRACE_REFS
    // prepends _ob_next/_ob_prev to every object and exports
    // _Py_PrintReferences; the free-threaded 3.13t build (Py_GIL_DISABLED)
    // has a larger header and exports _Py_DecRefShared.
    if (lookup("_Py_PrintReferences") != nullptr || lookup("_Py_DecRefShared") != nullptr) {
        setNote("frames off: Py_TRACE_REFS or free-threaded build");
        return false;
    }
    setNote("layout table");
    if (minor >= 13 && !confirmWithDebugOffsets(minor, &layout, found, lookup)) {
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
        setNote("frames off: a needed C-API symbol is missing");
        return false;
    }
    g_state = state;
    return true;
}

const char*
framesNote() noexcept {
    return g_note;
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
    int n = 0;
    visitFrames(tstate, max, [&](const void*, const void* code, int line) {
        out[n++] = RawFrame{code, line};
        return n < max;
    });
    return n;
}

int
forEachFrame(const void* tstate, bool (*fn)(const FrameLocals& frame, void* arg), void* arg) noexcept {
    if (tstate == nullptr || g_state.layout.model == FrameModel::None) {
        return 0;
    }
    const Layout& l = g_state.layout;
    int n = 0;
    visitFrames(tstate, kMaxLocalFrames, [&](const void* frame, const void* code, int line) {
        FrameLocals f{code, line, nullptr, 0};
        if (l.model == FrameModel::FrameObject) {
            // f_localsplus: locals, cells, free variables (Objects/frameobject.c).
            const void* frameType = ptrAt(frame, kObType);
            auto basic = readAt<int64_t>(frameType, layouts::kTpBasicSize);
            f.locals = reinterpret_cast<void* const*>(static_cast<const char*>(frame) + basic - 8);
            f.count = readAt<int>(code, l.coNLocals) + tupleSize(ptrAt(code, l.coCellvars)) +
                      tupleSize(ptrAt(code, l.coFreevars));
        } else {
            f.locals = reinterpret_cast<void* const*>(static_cast<const char*>(frame) + l.ifLocalsPlus);
            f.count = readAt<int>(code, l.coNLocalsPlus);
        }
        ++n;
        return fn(f, arg) && n < kMaxLocalFrames;
    });
    return n;
}

const void*
localName(const void* code, int i) noexcept {
    if (!isCode(code) || i < 0) {
        return nullptr;
    }
    const Layout& l = g_state.layout;
    const void* names[3] = {nullptr, nullptr, nullptr};
    if (l.model == FrameModel::FrameObject) {
        names[0] = ptrAt(code, l.coVarnames);
        names[1] = ptrAt(code, l.coCellvars);
        names[2] = ptrAt(code, l.coFreevars);
    } else {
        names[0] = ptrAt(code, l.coLocalsPlusNames);
    }
    for (const void* tuple : names) {
        int size = tupleSize(tuple);
        if (i < size) {
            return ptrAt(tuple, layouts::kTupleItems + 8 * static_cast<unsigned>(i));
        }
        i -= size;
    }
    return nullptr;
}

bool
copyStr(const void* str, char* out, int cap) noexcept {
    return copyOrMark(str, out, cap);
}

const void*
threadStateIfGilHeld() noexcept {
    return g_state.layout.model == FrameModel::None ? nullptr : tstateIfGilHeld();
}

const layouts::Layout&
frameLayout() noexcept {
    return g_state.layout;
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
