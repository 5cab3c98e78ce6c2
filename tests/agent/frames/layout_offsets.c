/* Test helper, not part of the agent: compiled by test_layouts.py against one
 * interpreter's own headers and run; prints "name value" for every offset and
 * constant the frame walker and the heap walk use (src/agent/python_layouts.h,
 * python_objects.h), as the compiler sees them, for comparison with the
 * agent's table (tests/agent/frames/probe.cpp, probe_layout). */
#define Py_BUILD_CORE 1 /* the internal _PyInterpreterFrame (3.11+) needs it */
#include <Python.h>
#include <frameobject.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#endif
/* The gc's state: _PyRuntime.gc (3.7, 3.8), PyInterpreterState.gc (3.9+). */
#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_interp.h"
#elif PY_VERSION_HEX >= 0x03080000
#include "internal/pycore_pystate.h"
#elif PY_VERSION_HEX >= 0x03070000
#include "internal/pystate.h"
#endif
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_dict.h"
#include "internal/pycore_object.h" /* managed dicts, inline values, pre-header */
#endif
#if PY_VERSION_HEX >= 0x030A0000
#include "internal/pycore_moduleobject.h"
#else
/* 3.6-3.9 keep PyModuleObject in Objects/moduleobject.c: its start as
 * declared there. */
typedef struct {
    PyObject ob_base; /* PyObject_HEAD */
    PyObject* md_dict;
} PyModuleObject;
#endif

#if PY_VERSION_HEX < 0x03070000
/* 3.6 keeps it in Modules/gcmodule.c, not in a header: the same declaration,
 * so the compiler lays it out. */
struct gc_generation {
    PyGC_Head head;
    int threshold;
    int count;
};
#endif

/* Signed: some offsets count back from the object (managed dicts). */
#define SHOW(name, value) printf("%s %ld\n", name, (long)(value))

/* Where the unicode state bit-field puts a field: set it in a zeroed object
 * and report the lowest set bit of the 32-bit word at the state's offset. */
static unsigned
lowestBit(const PyASCIIObject* o) {
    unsigned word;
    memcpy(&word, (const char*)o + offsetof(PyASCIIObject, state), sizeof word);
    for (unsigned bit = 0; bit < 32; ++bit) {
        if (word & (1u << bit)) {
            return bit;
        }
    }
    return 99;
}

#if PY_VERSION_HEX >= 0x030B0000
/* 3.11+: where an instance's managed dict and attribute values are, as the
 * interpreter's own inline functions (Include/internal/pycore_object.h) find
 * them on a fake instance. Every word of the fake holds its own address
 * (minus 1 when tagged: how 3.12 marks a values pointer), so an address they
 * return, as an offset from the object, says which word they read.
 * probe.cpp builds the same fake for the agent's python_objects.h. */
enum { kWordsBefore = 6, kWords = 16 };

struct Fake {
    PyHeapTypeObject type;
    uintptr_t words[kWords]; /* the object is words[kWordsBefore] */
};

static PyObject*
fakeInstance(struct Fake* f, unsigned long flags, int tagged) {
    memset(f, 0, sizeof *f);
    f->type.ht_type.tp_flags = flags;
    f->type.ht_type.tp_basicsize = sizeof(PyObject); /* 3.13 asserts it for inline values */
    for (int i = 0; i < kWords; ++i) {
        f->words[i] = (uintptr_t)&f->words[i] - (tagged ? 1 : 0);
    }
    PyObject* obj = (PyObject*)&f->words[kWordsBefore];
    obj->ob_type = &f->type.ht_type;
    /* 3.13's inline values follow the object: uint8_t capacity, size,
     * embedded, valid; all set, so they count as valid. */
    memset((char*)obj + sizeof(PyObject), 1, 4);
    return obj;
}

static long
offsetFrom(const PyObject* obj, const void* p) {
    return (long)((const char*)p - (const char*)obj);
}

/* _PyType_PreHeaderSize: what precedes an object of a type with these flags. */
static long
preHeader(unsigned long flags) {
    PyTypeObject t;
    memset(&t, 0, sizeof t);
    t.tp_flags = flags;
    return (long)_PyType_PreHeaderSize(&t);
}

static void
showInstanceLayout(void) {
    struct Fake f;
    unsigned long flags = Py_TPFLAGS_HEAPTYPE | Py_TPFLAGS_MANAGED_DICT;
#if PY_VERSION_HEX >= 0x030D0000
    flags |= Py_TPFLAGS_INLINE_VALUES;
#endif
    PyObject* obj = fakeInstance(&f, flags, 0);
#if PY_VERSION_HEX >= 0x030D0000
    SHOW("managed_dict", offsetFrom(obj, _PyObject_ManagedDictPointer(obj)->dict));
    SHOW("instance_values", offsetFrom(obj, _PyObject_InlineValues(obj)->values));
#elif PY_VERSION_HEX >= 0x030C0000
    /* One word, PyDictOrValues, holds the dict or the tagged values pointer. */
    SHOW("managed_dict", offsetFrom(obj, _PyDictOrValues_GetDict(*_PyObject_DictOrValuesPointer(obj))));
    obj = fakeInstance(&f, flags, 1);
    SHOW("tagged_is_values", _PyDictOrValues_IsValues(*_PyObject_DictOrValuesPointer(obj)));
    SHOW("instance_values",
         offsetFrom(obj, _PyDictOrValues_GetValues(*_PyObject_DictOrValuesPointer(obj))->values));
#else
    SHOW("managed_dict", offsetFrom(obj, *_PyObject_ManagedDictPointer(obj)));
    SHOW("instance_values", offsetFrom(obj, (*_PyObject_ValuesPointer(obj))->values));
#endif
    SHOW("preheader_gc", preHeader(Py_TPFLAGS_HAVE_GC));
    SHOW("preheader_dict", preHeader(Py_TPFLAGS_MANAGED_DICT));
    SHOW("preheader_gc_dict", preHeader(Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_MANAGED_DICT));
#ifdef Py_TPFLAGS_MANAGED_WEAKREF
    SHOW("preheader_weakref", preHeader(Py_TPFLAGS_MANAGED_WEAKREF));
#endif
}
#endif

int
main(void) {
    PyASCIIObject o;
    SHOW("ob_refcnt", offsetof(PyObject, ob_refcnt));
    SHOW("ob_type", offsetof(PyObject, ob_type));
    SHOW("ob_size", offsetof(PyVarObject, ob_size));
    SHOW("unicode_length", offsetof(PyASCIIObject, length));
    SHOW("unicode_state", offsetof(PyASCIIObject, state));
    SHOW("ascii_size", sizeof(PyASCIIObject));
    SHOW("compact_size", sizeof(PyCompactUnicodeObject));
    SHOW("unicode_data_any", offsetof(PyUnicodeObject, data));
    memset(&o, 0, sizeof o);
    o.state.kind = 1;
    SHOW("state_kind_bit", lowestBit(&o));
    memset(&o, 0, sizeof o);
    o.state.compact = 1;
    SHOW("state_compact_bit", lowestBit(&o));
    memset(&o, 0, sizeof o);
    o.state.ascii = 1;
    SHOW("state_ascii_bit", lowestBit(&o));
#if PY_VERSION_HEX < 0x030C0000
    memset(&o, 0, sizeof o);
    o.state.ready = 1;
    SHOW("state_ready_bit", lowestBit(&o));
    SHOW("unicode_has_ready", 1);
#else
    SHOW("unicode_has_ready", 0);
#endif

#if PY_VERSION_HEX < 0x030B0000
    SHOW("tstate_frame", offsetof(PyThreadState, frame));
    SHOW("f_back", offsetof(PyFrameObject, f_back));
    SHOW("f_code", offsetof(PyFrameObject, f_code));
    SHOW("f_trace", offsetof(PyFrameObject, f_trace));
    SHOW("f_lasti", offsetof(PyFrameObject, f_lasti));
    SHOW("f_lineno", offsetof(PyFrameObject, f_lineno));
    SHOW("f_localsplus", offsetof(PyFrameObject, f_localsplus));
#else
#if PY_VERSION_HEX < 0x030D0000
    SHOW("tstate_frame", offsetof(PyThreadState, cframe));
    SHOW("cframe_current_frame", offsetof(_PyCFrame, current_frame));
    SHOW("if_code", offsetof(_PyInterpreterFrame, f_code));
    SHOW("if_instr", offsetof(_PyInterpreterFrame, prev_instr));
#else
    SHOW("tstate_frame", offsetof(PyThreadState, current_frame));
    SHOW("if_code", offsetof(_PyInterpreterFrame, f_executable));
    SHOW("if_instr", offsetof(_PyInterpreterFrame, instr_ptr));
#endif
    SHOW("if_previous", offsetof(_PyInterpreterFrame, previous));
    SHOW("if_owner", offsetof(_PyInterpreterFrame, owner));
    SHOW("owned_by_generator", FRAME_OWNED_BY_GENERATOR);
#if PY_VERSION_HEX >= 0x030C0000
    SHOW("owned_by_cstack", FRAME_OWNED_BY_CSTACK);
#endif
    SHOW("co_firsttraceable", offsetof(PyCodeObject, _co_firsttraceable));
    SHOW("co_code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
#endif
    SHOW("co_firstlineno", offsetof(PyCodeObject, co_firstlineno));
    SHOW("co_filename", offsetof(PyCodeObject, co_filename));
    SHOW("co_name", offsetof(PyCodeObject, co_name));
#if PY_VERSION_HEX < 0x030A0000
    SHOW("co_linetable", offsetof(PyCodeObject, co_lnotab));
#else
    SHOW("co_linetable", offsetof(PyCodeObject, co_linetable));
#endif

    /* The heap walk: the thread's interpreter, locals and their names. */
    SHOW("tstate_interp", offsetof(PyThreadState, interp));
#if PY_VERSION_HEX < 0x030B0000
    SHOW("co_nlocals", offsetof(PyCodeObject, co_nlocals));
    SHOW("co_varnames", offsetof(PyCodeObject, co_varnames));
    SHOW("co_cellvars", offsetof(PyCodeObject, co_cellvars));
    SHOW("co_freevars", offsetof(PyCodeObject, co_freevars));
#else
    SHOW("if_localsplus", offsetof(_PyInterpreterFrame, localsplus));
    SHOW("co_nlocalsplus", offsetof(PyCodeObject, co_nlocalsplus));
    SHOW("co_localsplusnames", offsetof(PyCodeObject, co_localsplusnames));
    SHOW("ht_cached_keys", offsetof(PyHeapTypeObject, ht_cached_keys));
    SHOW("dk_log2_index_bytes", offsetof(PyDictKeysObject, dk_log2_index_bytes));
    SHOW("dk_nentries", offsetof(PyDictKeysObject, dk_nentries));
    SHOW("dk_indices", offsetof(PyDictKeysObject, dk_indices));
    SHOW("dk_unicode_entry_size", sizeof(PyDictUnicodeEntry));
#endif
    /* An instance's attributes and what precedes it in its block. */
#if PY_VERSION_HEX >= 0x030B0000
    showInstanceLayout();
#else
    /* Modules/gcmodule.c _PyObject_GC_Alloc: only the PyGC_Head. */
    SHOW("preheader_gc", sizeof(PyGC_Head));
#endif
#if PY_VERSION_HEX >= 0x030D0000
    /* Include/internal/pycore_dict.h: struct _dictvalues. */
    SHOW("dictvalues_valid", offsetof(PyDictValues, valid));
    SHOW("dictvalues_values", offsetof(PyDictValues, values));
#endif
#if PY_VERSION_HEX >= 0x030C0000
    /* Include/cpython/longintrepr.h: the digit count is lv_tag >> 3. */
    SHOW("long_lv_tag", offsetof(PyLongObject, long_value.lv_tag));
    SHOW("long_non_size_bits", _PyLong_NON_SIZE_BITS);
#endif
    /* Type objects and containers (python_layouts.h kTp..., kList...). */
    SHOW("tp_name", offsetof(PyTypeObject, tp_name));
    SHOW("tp_basicsize", offsetof(PyTypeObject, tp_basicsize));
    SHOW("tp_itemsize", offsetof(PyTypeObject, tp_itemsize));
    SHOW("tp_flags", offsetof(PyTypeObject, tp_flags));
    SHOW("tp_traverse", offsetof(PyTypeObject, tp_traverse));
    SHOW("tp_base", offsetof(PyTypeObject, tp_base));
    SHOW("tp_dict", offsetof(PyTypeObject, tp_dict));
    SHOW("tp_dictoffset", offsetof(PyTypeObject, tp_dictoffset));
    SHOW("tp_is_gc", offsetof(PyTypeObject, tp_is_gc));
    SHOW("flag_heaptype", Py_TPFLAGS_HEAPTYPE);
    SHOW("flag_have_gc", Py_TPFLAGS_HAVE_GC);
    SHOW("flag_type_subclass", Py_TPFLAGS_TYPE_SUBCLASS);
#ifdef Py_TPFLAGS_MANAGED_DICT
    SHOW("flag_managed_dict", Py_TPFLAGS_MANAGED_DICT);
#endif
#ifdef Py_TPFLAGS_MANAGED_WEAKREF
    SHOW("flag_managed_weakref", Py_TPFLAGS_MANAGED_WEAKREF);
#endif
#ifdef Py_TPFLAGS_INLINE_VALUES
    SHOW("flag_inline_values", Py_TPFLAGS_INLINE_VALUES);
#endif
    SHOW("list_items", offsetof(PyListObject, ob_item));
    SHOW("list_allocated", offsetof(PyListObject, allocated));
    SHOW("tuple_items", offsetof(PyTupleObject, ob_item));
    SHOW("dict_used", offsetof(PyDictObject, ma_used));
    SHOW("dict_keys", offsetof(PyDictObject, ma_keys));
    SHOW("module_dict", offsetof(PyModuleObject, md_dict));
    SHOW("bytearray_bytes", offsetof(PyByteArrayObject, ob_bytes));

    /* The gc's lists (python_layouts.h GcLayout). */
    SHOW("gc_head_size", sizeof(PyGC_Head));
    SHOW("gc_stride", sizeof(struct gc_generation));
    SHOW("gc_generation_head", offsetof(struct gc_generation, head));
    /* The link the lists are followed by, and the word and bit that say a
     * finalizer has run (Include/objimpl.h in 3.6/3.7; 3.8
     * Include/cpython/objimpl.h; 3.9+ Include/internal/pycore_gc.h). */
#if PY_VERSION_HEX < 0x03080000
    SHOW("gc_next", offsetof(PyGC_Head, gc.gc_next));
    SHOW("gc_finalized_word", offsetof(PyGC_Head, gc.gc_refs));
    SHOW("gc_finalized_mask", _PyGC_REFS_MASK_FINALIZED);
#else
    SHOW("gc_next", offsetof(PyGC_Head, _gc_next));
    SHOW("gc_finalized_word", offsetof(PyGC_Head, _gc_prev));
    SHOW("gc_finalized_mask", _PyGC_PREV_MASK_FINALIZED);
#endif
#if PY_VERSION_HEX >= 0x03070000
#if PY_VERSION_HEX >= 0x03090000
    SHOW("gc_state", offsetof(PyInterpreterState, gc));
#else
    SHOW("gc_state", offsetof(_PyRuntimeState, gc));
#endif
    SHOW("gc_generations", offsetof(struct _gc_runtime_state, generations));
    SHOW("gc_permanent", offsetof(struct _gc_runtime_state, permanent_generation));
    SHOW("gc_collecting", offsetof(struct _gc_runtime_state, collecting));
    SHOW("gc_garbage", offsetof(struct _gc_runtime_state, garbage));
#endif
    return 0;
}
