// Per-version byte offsets of the CPython structures the frame walker
// (python_frames.cpp) and the heap walk (heap_walk.h) read, and where the gc
// keeps its lists (heap_gc.cpp), without Python.h: one agent binary serves every
// version. Each table cites the header of that version's tag it was read from.
// tests/agent/frames/test_layouts.py compiles an offsetof() probe against every
// installed interpreter's own headers (internal ones with Py_BUILD_CORE) and
// compares it field by field with these tables, so a wrong digit fails CI.
#ifndef MEMTAP_AGENT_PYTHON_LAYOUTS_H
#define MEMTAP_AGENT_PYTHON_LAYOUTS_H

#include <cstddef>
#include <cstdint>

namespace memtap_agent {
namespace layouts {

// How the calling thread's frames are reached and read.
enum class FrameModel : unsigned char {
    None,        // framesInit() not called or failed
    FrameObject, // 3.6-3.10: PyThreadState.frame -> PyFrameObject chain
    Interp311,   // 3.11: tstate->cframe->current_frame, _PyInterpreterFrame
    Interp312,   // 3.12: as 3.11, plus FRAME_OWNED_BY_CSTACK shim frames
    Interp313,   // 3.13: tstate->current_frame, f_executable may be non-code
    Interp314,   // 3.14+: as 3.13, f_executable a tagged _PyStackRef
};

// Where an instance keeps attribute values that are in no dict yet (3.11+,
// Py_TPFLAGS_MANAGED_DICT types).
enum class ValuesModel : unsigned char {
    None,       // <= 3.10: attributes always live in the instance's __dict__
    Pointer311, // Objects/object.c 3.11: PyDictValues* at ((PyObject**)obj)[-4]
    Tagged312,  // 3.12 PyDictOrValues at [-3]: values pointer - 1 when tagged
    Inline313,  // 3.13 Py_TPFLAGS_INLINE_VALUES: at obj + tp_basicsize
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
    // An unknown newer version laid out from _Py_DebugOffsets alone, which
    // has no _co_firsttraceable: incomplete frames cannot be told apart.
    bool noFirstTraceable = false;
    // The heap walk (heap_walk.h) reads a frame's local variables and names.
    // <= 3.10: PyCodeObject.co_nlocals, co_varnames, co_cellvars, co_freevars
    // (f_localsplus holds locals, then cells, then free variables; its offset
    // is PyFrame_Type.tp_basicsize - 8, the struct ending in f_localsplus[1]).
    unsigned coNLocals = 0;
    unsigned coVarnames = 0;
    unsigned coCellvars = 0;
    unsigned coFreevars = 0;
    // >= 3.11: _PyInterpreterFrame.localsplus, PyCodeObject.co_nlocalsplus
    // and co_localsplusnames.
    unsigned ifLocalsPlus = 0;
    unsigned coNLocalsPlus = 0;
    unsigned coLocalsPlusNames = 0;
    // sizeof(PyGC_Head): what precedes a GC object in its block.
    unsigned gcHeadSize = 0;
    // >= 3.11: PyHeapTypeObject.ht_cached_keys, the keys an instance's
    // attribute values (not yet in a dict) are stored against.
    unsigned htCachedKeys = 0;
    ValuesModel values = ValuesModel::None;
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
    // Include/code.h, as above: co_nlocals is the third int; co_varnames,
    // co_freevars, co_cellvars follow co_names.
    .coNLocals = 24,
    .coVarnames = 64,
    .coCellvars = 80,
    .coFreevars = 72,
    // Include/objimpl.h: PyGC_Head is a union padded by a long double.
    .gcHeadSize = 32,
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
    l.coNLocals = 28;
    l.coVarnames = 72;
    l.coCellvars = 88;
    l.coFreevars = 80;
    // Include/internal/pycore_gc.h (3.8: objimpl.h): two words, no padding.
    l.gcHeadSize = 16;
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
    // _PyInterpreterFrame.localsplus follows owner, aligned to 8; the code
    // object's co_nlocalsplus is the sixth int, co_localsplusnames the
    // first pointer after the ints.
    .ifLocalsPlus = 72,
    .coNLocalsPlus = 76,
    .coLocalsPlusNames = 96,
    .gcHeadSize = 16,
    // Include/cpython/object.h: PyHeapTypeObject { ht_type, as_async,
    // as_number, as_mapping, as_sequence, as_buffer, ht_name, ht_slots,
    // ht_qualname, ht_cached_keys }.
    .htCachedKeys = 872,
    .values = ValuesModel::Pointer311,
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
    // Include/cpython/code.h: co_nlocalsplus is now the fifth int.
    .ifLocalsPlus = 72,
    .coNLocalsPlus = 72,
    .coLocalsPlusNames = 96,
    .gcHeadSize = 16,
    // PyTypeObject gained tp_watched (Include/cpython/object.h).
    .htCachedKeys = 880,
    .values = ValuesModel::Tagged312,
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
    l.values = ValuesModel::Inline313;
    return l;
}();

// 3.14 and 3.15: built from headers only (no such interpreter can be
// installed here), so the structs are transcribed (field names and order,
// default GIL build, x86-64) and the offsets are computed by the compiler.
// The "v3.14.0" citations below name the headers as read through the
// workplace's source index: 3.14-era snapshots of CPython (the frame struct
// from a newer snapshot), not a diff against the v3.14.0 release tag. The
// interpreter's own _Py_DebugOffsets is what confirms them at attach.
namespace cpy314 {
// Include/internal/pycore_interpframe_structs.h (v3.14.0; unchanged on the
// 3.15 branch): struct _PyInterpreterFrame. _PyStackRef
// (Include/internal/pycore_structs.h) is a union holding one uintptr_t.
struct InterpreterFrame {
    uintptr_t f_executable; // _PyStackRef: code object or None, tagged
    InterpreterFrame* previous;
    uintptr_t f_funcobj;
    void* f_globals;
    void* f_builtins;
    void* f_locals;
    void* frame_obj;
    uint16_t* instr_ptr; // _Py_CODEUNIT*: the instruction executing
    uintptr_t* stackpointer;
    uint16_t return_offset; // (int32_t tlbc_index precedes it only in Py_GIL_DISABLED)
    char owner;
    uint8_t visited;
    uintptr_t localsplus[1];
};
static_assert(offsetof(InterpreterFrame, instr_ptr) == 56);
static_assert(offsetof(InterpreterFrame, owner) == 74);
static_assert(offsetof(InterpreterFrame, localsplus) == 80);

// Include/cpython/code.h (v3.14.0): _PyCode_DEF(1), GIL build (no co_tlbc).
struct CodeObject {
    void* ob_refcnt_and_type[2];
    intptr_t ob_size;
    void* co_consts;
    void* co_names;
    void* co_exceptiontable;
    int co_flags, co_argcount, co_posonlyargcount, co_kwonlyargcount, co_stacksize, co_firstlineno,
        co_nlocalsplus, co_framesize, co_nlocals, co_ncellvars, co_nfreevars;
    uint32_t co_version;
    void* co_localsplusnames;
    void* co_localspluskinds;
    void* co_filename;
    void* co_name;
    void* co_qualname;
    void* co_linetable;
    void* co_weakreflist;
    void* co_executors;
    void* _co_cached;
    uintptr_t _co_instrumentation_version;
    void* _co_monitoring;
    intptr_t _co_unique_id;
    int _co_firsttraceable;
    void* co_extra;
    char co_code_adaptive[1];
};
static_assert(offsetof(CodeObject, co_firstlineno) == 68);
static_assert(offsetof(CodeObject, co_filename) == 112);
static_assert(offsetof(CodeObject, _co_firsttraceable) == 192);
static_assert(offsetof(CodeObject, co_code_adaptive) == 208);

// Include/cpython/pystate.h (v3.14.0): struct _ts up to current_frame;
// c_recursion_remaining is gone (the C stack limits moved to
// _PyThreadStateImpl).
struct ThreadState {
    void* prev;
    void* next;
    void* interp;
    uintptr_t eval_breaker;
    uint32_t _status; // bit-field word
    int _whence, state, py_recursion_remaining, py_recursion_limit, recursion_headroom, tracing,
        what_event;
    InterpreterFrame* current_frame;
};
static_assert(offsetof(ThreadState, current_frame) == 64);

// Include/cpython/pystate.h (3.15 branch): int holds_gil follows _status.
struct ThreadState315 {
    void* prev;
    void* next;
    void* interp;
    uintptr_t eval_breaker;
    uint32_t _status;
    int holds_gil, _whence, state, py_recursion_remaining, py_recursion_limit, recursion_headroom,
        tracing, what_event;
    InterpreterFrame* current_frame;
};
static_assert(offsetof(ThreadState315, current_frame) == 72);

// Include/internal/pycore_stackref.h (v3.14.0, GIL build): the low bits of a
// _PyStackRef are tags (Py_TAG_BITS); PyStackRef_AsPyObjectBorrow masks them.
constexpr uintptr_t kTagBits = 3;
} // namespace cpy314

constexpr Layout kLayout314 = [] {
    using F = cpy314::InterpreterFrame;
    using C = cpy314::CodeObject;
    Layout l = kLayout313;
    l.model = FrameModel::Interp314;
    l.tstateFrame = offsetof(cpy314::ThreadState, current_frame);
    l.ifCode = offsetof(F, f_executable);
    l.ifPrevious = offsetof(F, previous);
    l.ifInstr = offsetof(F, instr_ptr);
    l.ifOwner = offsetof(F, owner);
    l.ifLocalsPlus = offsetof(F, localsplus);
    l.coFirstLineno = offsetof(C, co_firstlineno);
    l.coFilename = offsetof(C, co_filename);
    l.coName = offsetof(C, co_name);
    l.coLineTable = offsetof(C, co_linetable);
    l.coFirstTraceable = offsetof(C, _co_firsttraceable);
    l.coCodeAdaptive = offsetof(C, co_code_adaptive);
    l.coNLocalsPlus = offsetof(C, co_nlocalsplus);
    l.coLocalsPlusNames = offsetof(C, co_localsplusnames);
    // Include/cpython/unicodeobject.h (v3.14.0): PyASCIIObject and
    // PyCompactUnicodeObject as in 3.12 (40, 56 bytes).
    // The heap walk is refused on 3.14+ (heap_walk.cpp): htCachedKeys and
    // the values model are not derived for these versions.
    l.htCachedKeys = 0;
    l.values = ValuesModel::None;
    return l;
}();

// 3.15: the code object and frame as in 3.14 (read on the 3.15 branch), the
// thread state with holds_gil.
constexpr Layout kLayout315 = [] {
    Layout l = kLayout314;
    l.tstateFrame = offsetof(cpy314::ThreadState315, current_frame);
    return l;
}();

// The type object and the few containers the heap walk reads, the same from
// 3.6 to 3.13 (Include/cpython/object.h, Include/object.h in 3.6/3.7):
// PyTypeObject { PyObject_VAR_HEAD (24), tp_name, tp_basicsize, tp_itemsize,
// 16 slot pointers, unsigned long tp_flags (168), tp_doc, tp_traverse, ...,
// tp_base (256), tp_dict (264), ..., tp_dictoffset (288), ..., tp_is_gc
// (328) }.
constexpr unsigned kTpName = 24;
constexpr unsigned kTpBasicSize = 32;
constexpr unsigned kTpItemSize = 40;
constexpr unsigned kTpFlags = 168;
constexpr unsigned kTpTraverse = 184;
constexpr unsigned kTpBase = 256;
constexpr unsigned kTpDict = 264;
constexpr unsigned kTpDictOffset = 288;
constexpr unsigned kTpIsGc = 328;
// Include/object.h tp_flags bits.
constexpr unsigned long kTpFlagsInlineValues = 1ul << 2;   // 3.13
constexpr unsigned long kTpFlagsManagedWeakref = 1ul << 3; // 3.12+
constexpr unsigned long kTpFlagsManagedDict = 1ul << 4;    // 3.11+
constexpr unsigned long kTpFlagsHeapType = 1ul << 9;
constexpr unsigned long kTpFlagsHaveGc = 1ul << 14;
constexpr unsigned long kTpFlagsTypeSubclass = 1ul << 31;
// Include/cpython/pystate.h, every version: PyThreadState { prev, next, interp, ... }.
constexpr unsigned kTstateInterp = 16;
// Include/listobject.h: PyListObject { PyObject_VAR_HEAD, ob_item, allocated }.
constexpr unsigned kListItems = 24;
constexpr unsigned kListAllocated = 32;
// Include/tupleobject.h: PyTupleObject { PyObject_VAR_HEAD, ob_item[] }.
constexpr unsigned kTupleItems = 24;
// Include/{cpython/,}dictobject.h: PyDictObject { PyObject_HEAD, Py_ssize_t
// ma_used, uint64_t ma_version_tag (_ma_watcher_tag in 3.13), PyDictKeysObject*
// ma_keys, ... }.
constexpr unsigned kDictUsed = 16;
constexpr unsigned kDictKeys = 32;
// Include/{cpython/,}bytearrayobject.h: PyByteArrayObject { PyObject_VAR_HEAD,
// Py_ssize_t ob_alloc, char* ob_bytes, ... }.
constexpr unsigned kByteArrayBytes = 32;
// Objects/moduleobject.c: PyModuleObject { PyObject_HEAD, md_dict, ... }.
constexpr unsigned kModuleDict = 16;
// Include/internal/pycore_dict.h (3.11-3.13): PyDictKeysObject {
// Py_ssize_t dk_refcnt, uint8_t dk_log2_size, dk_log2_index_bytes, dk_kind,
// uint32_t dk_version, Py_ssize_t dk_usable, dk_nentries, dk_indices[] };
// the entries follow the indices; split keys hold PyDictUnicodeEntry
// { me_key, me_value } (16 bytes).
constexpr unsigned kDkLog2IndexBytes = 9;
constexpr unsigned kDkNEntries = 24;
constexpr unsigned kDkIndices = 32;
constexpr unsigned kDkUnicodeEntrySize = 16;
// struct _dictvalues: values[] at 0 (3.11, 3.12), after four uint8_t
// (capacity, size, embedded, valid) padded to 8 in 3.13.
constexpr unsigned kValues313 = 8;
constexpr unsigned kValuesValid313 = 3;

// enum _frameowner, Include/internal/pycore_frame.h (3.11 ... 3.13),
// pycore_interpframe_structs.h (3.14, 3.15).
constexpr char kFrameOwnedByGenerator = 1;
constexpr char kFrameOwnedByCStack = 3; // 3.12, 3.13: the C-stack entry shim
// 3.14+: FRAME_OWNED_BY_INTERPRETER (3) and above (3.14 FRAME_OWNED_BY_CSTACK,
// 3.15 FRAME_OWNED_BY_THREAD_STATE, both 4) hold no Python code.
constexpr char kFrameOwnedByInterpreter = 3;

// Where the cyclic gc keeps its generation lists (heap_gc.cpp reads them to
// find objects no root reaches). Every tracked object's PyGC_Head sits just
// before it and links it into one circular list per generation, headed by a
// PyGC_Head inside struct gc_generation { PyGC_Head head; int threshold,
// count; }.
enum class GcBase : unsigned char {
    None,
    Generation0Symbol, // 3.6 Modules/gcmodule.c: PyGC_Head* _PyGC_generation0
    RuntimeSymbol,     // 3.7, 3.8: _PyRuntime.gc (Include/internal/{mem,pycore_pymem}.h)
    Interpreter,       // 3.9+: PyInterpreterState.gc (Include/internal/pycore_interp.h)
};

struct GcLayout {
    GcBase base = GcBase::None;
    unsigned state = 0;       // offset of struct _gc_runtime_state in the base
    unsigned generations = 0; // generations[3] in that state
    unsigned stride = 0;      // sizeof(struct gc_generation)
    unsigned permanent = 0;   // permanent_generation (gc.freeze, 3.7+); 0: none
    unsigned collecting = 0;  // int collecting; 0: not readable (3.6)
    unsigned garbage = 0;     // PyObject* garbage (gc.garbage); 0: not readable
    // The word holding the FINALIZED bit (bit 0): gc_refs in the 3.6/3.7
    // head { gc_next, gc_prev, gc_refs } (_PyGC_REFS_MASK_FINALIZED), _gc_prev
    // in 3.8+ { _gc_next, _gc_prev } (_PyGC_PREV_MASK_FINALIZED).
    unsigned finalizedWord = 0;
    // 3.8+: _gc_next's bit 0 is NEXT_MASK_UNREACHABLE during a collection.
    uintptr_t nextMask = ~uintptr_t{0};
};

// Offsets read by offsetof() against each version's own headers
// (tests/agent/frames/layout_offsets.c checks them): 3.6/3.7 PyGC_Head is a
// 32-byte union (long double alignment), so a generation is 48 bytes; 3.8+
// it is two words and a generation 24.
constexpr GcLayout
gcLayoutForMinor(int minor) noexcept {
    // 3.8+: the same struct _gc_runtime_state, kept where each version puts it.
    auto from38 = [](GcBase base, unsigned state) {
        return GcLayout{base, state, 24, 24, 104, 200, 208, 8, ~uintptr_t{1}};
    };
    switch (minor) {
    case 6:
        return GcLayout{GcBase::Generation0Symbol, 0, 0, 48, 0, 0, 0, 16, ~uintptr_t{0}};
    case 7:
        return GcLayout{GcBase::RuntimeSymbol, 320, 32, 48, 192, 312, 320, 16, ~uintptr_t{0}};
    case 8:
        return from38(GcBase::RuntimeSymbol, 344);
    case 9:
    case 10:
        return from38(GcBase::Interpreter, 616);
    case 11:
        return from38(GcBase::Interpreter, 648);
    case 12: // the gc state moved to the front of PyInterpreterState
        return from38(GcBase::Interpreter, 112);
    case 13:
        return from38(GcBase::Interpreter, 7400);
    default:
        return GcLayout{};
    }
}

// The newest minor version with a table; a newer one is laid out from its
// _Py_DebugOffsets alone (python_frames.cpp).
constexpr int kNewestKnownMinor = 15;

// The layout of CPython 3.minor, or nullptr if that version is not supported.
constexpr const Layout*
layoutForMinor(int minor) noexcept {
    switch (minor) {
    case 6:
        return &kLayout36;
    case 7:
        return &kLayout37;
    case 8:
    case 9:
        return &kLayout38;
    case 10:
        return &kLayout310;
    case 11:
        return &kLayout311;
    case 12:
        return &kLayout312;
    case 13:
        return &kLayout313;
    case 14:
        return &kLayout314;
    case 15:
        return &kLayout315;
    default:
        return nullptr;
    }
}

} // namespace layouts
} // namespace memtap_agent

#endif // MEMTAP_AGENT_PYTHON_LAYOUTS_H
