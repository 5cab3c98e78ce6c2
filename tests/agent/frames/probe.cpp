// Test probe: python_frames.cpp in a shared library a Python script drives
// through ctypes. Called through ctypes.PyDLL the GIL stays held; through
// ctypes.CDLL it is released, which is how the "no GIL" answer is tested.
#include "agent/python_debug_offsets.h"
#include "agent/python_frames.h"
#include "agent/python_layouts.h"
#include "agent/python_objects.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PROBE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constexpr int kMaxFrames = 256;

void*
lookupGlobal(const char* name) {
    return dlsym(RTLD_DEFAULT, name);
}

void*
countOnFreshThread(void* result) {
    memtap_agent::RawFrame frames[8];
    *static_cast<int*>(result) = memtap_agent::captureFrames(frames, 8);
    return nullptr;
}

// A fake instance for the agent's python_objects.h, built as
// layout_offsets.c builds one for the interpreter's own inline functions:
// every word holds its own address (minus 1 when tagged: how 3.12 marks a
// values pointer), so an address the agent derives, as an offset from the
// object, says which word it read.
constexpr int kWordsBefore = 6;
constexpr int kWords = 16;
constexpr long kNotFound = 999999; // a null answer: shows as a mismatch

struct FakeInstance {
    alignas(16) unsigned char type[2048]; // a PyHeapTypeObject (under 1 KiB on every version)
    uintptr_t words[kWords];              // the object is words[kWordsBefore]
};

template <typename T>
void
putAt(void* base, unsigned offset, T value) {
    memcpy(static_cast<char*>(base) + offset, &value, sizeof value);
}

const char*
fakeInstance(FakeInstance* f, const memtap_agent::layouts::Layout& l, unsigned long flags, bool tagged) {
    namespace L = memtap_agent::layouts;
    memset(f, 0, sizeof *f);
    putAt(f->type, L::kTpFlags, flags);
    putAt(f->type, L::kTpBasicSize, int64_t{16}); // sizeof(PyObject), as 3.13's inline values need
    // instanceValues() only needs the type's cached keys to be non-null.
    putAt(f->type, l.htCachedKeys, static_cast<const void*>(f));
    for (int i = 0; i < kWords; ++i) {
        f->words[i] = reinterpret_cast<uintptr_t>(&f->words[i]) - (tagged ? 1 : 0);
    }
    char* obj = reinterpret_cast<char*>(&f->words[kWordsBefore]);
    putAt(obj, L::kObType, static_cast<const void*>(f->type));
    memset(obj + 16, 1, 4); // 3.13's inline values: capacity, size, embedded, valid
    return obj;
}

long
offsetFrom(const char* obj, const void* p) {
    return p != nullptr ? static_cast<const char*>(p) - obj : kNotFound;
}

// The bytes pyobj::blockOf() steps back over for an object of these flags.
long
preHeader(const memtap_agent::layouts::Layout& l, unsigned long flags) {
    FakeInstance fake;
    const char* obj = fakeInstance(&fake, l, flags, false);
    return -offsetFrom(obj, memtap_agent::pyobj::blockOf(obj, fake.type, l));
}

long long
nowNs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

} // namespace

PROBE_EXPORT int
probe_init(int major, int minor) {
    return memtap_agent::framesInit(major, minor, lookupGlobal) ? 1 : 0;
}

// Writes one "file\tline\tfunction\tfirstline\n" line per frame, most recent
// first, into buf. Returns the number of frames, or -1 if a name could not
// be read or buf is too small.
PROBE_EXPORT int
probe_capture(char* buf, int cap, int max) {
    memtap_agent::RawFrame frames[kMaxFrames];
    if (max > kMaxFrames) {
        max = kMaxFrames;
    }
    int n = memtap_agent::captureFrames(frames, max);
    int used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; ++i) {
        char file[1024];
        char func[256];
        memtap_agent::CodeIdentity id;
        if (memtap_agent::copyCodeNames(frames[i].code, file, sizeof file, func, sizeof func) != 0 ||
            !memtap_agent::codeIdentity(frames[i].code, &id)) {
            return -1;
        }
        int wrote = snprintf(buf + used, static_cast<size_t>(cap - used), "%s\t%d\t%s\t%d\n", file,
                             frames[i].line, func, id.firstLine);
        if (wrote < 0 || wrote >= cap - used) {
            return -1;
        }
        used += wrote;
    }
    return n;
}

// Names of the code of frame `index` (0 = innermost) with the given
// capacities, to test truncation.
PROBE_EXPORT int
probe_names(int index, char* file, int fileCap, char* func, int funcCap) {
    memtap_agent::RawFrame frames[8];
    if (index < 0 || index >= 8 || memtap_agent::captureFrames(frames, index + 1) != index + 1) {
        return -2;
    }
    return memtap_agent::copyCodeNames(frames[index].code, file, fileCap, func, funcCap);
}

PROBE_EXPORT int
probe_count(int max) {
    memtap_agent::RawFrame frames[kMaxFrames];
    return memtap_agent::captureFrames(frames, max > kMaxFrames ? kMaxFrames : max);
}

// captureFrames on a thread that never had a Python thread state.
PROBE_EXPORT int
probe_count_on_c_thread() {
    int result = -1;
    pthread_t thread;
    if (pthread_create(&thread, nullptr, countOnFreshThread, &result) != 0) {
        return -1;
    }
    pthread_join(thread, nullptr);
    return result;
}

// Mean ns per captureFrames(max) call over iters calls.
PROBE_EXPORT double
probe_bench(int max, int iters) {
    memtap_agent::RawFrame frames[kMaxFrames];
    if (max > kMaxFrames) {
        max = kMaxFrames;
    }
    long long total = 0;
    long long start = nowNs();
    for (int i = 0; i < iters; ++i) {
        total += memtap_agent::captureFrames(frames, max);
    }
    long long elapsed = nowNs() - start;
    if (total == 0) {
        return -1.0;
    }
    return static_cast<double>(elapsed) / iters;
}

// The agent's layout table for 3.minor as "name value\n" lines (the names
// layout_offsets.c prints), for test_layouts.py. Returns the number of bytes
// written, 0 if the version has no table, -1 if buf is too small.
PROBE_EXPORT int
probe_layout(int minor, char* buf, int cap) {
    namespace L = memtap_agent::layouts;
    const L::Layout* l = L::layoutForMinor(minor);
    if (l == nullptr) {
        return 0;
    }
    bool interp = l->model != L::FrameModel::FrameObject;
    const L::GcLayout gc = L::gcLayoutForMinor(minor);

    // <= 3.10: forEachFrame (python_frames.cpp) takes f_localsplus as the
    // frame type's tp_basicsize - 8; that formula on this interpreter.
    const void* frameType = lookupGlobal("PyFrame_Type");
    long fLocalsPlus = frameType != nullptr
                           ? memtap_agent::pyobj::readAt<int64_t>(frameType, L::kTpBasicSize) - 8
                           : kNotFound;

    // 3.11+: the managed dict and attribute values python_objects.h finds on
    // a fake instance (see fakeInstance).
    bool managed = l->values != L::ValuesModel::None;
    bool tagged = l->values == L::ValuesModel::Tagged312;
    unsigned long flags = L::kTpFlagsHeapType | L::kTpFlagsManagedDict;
    if (l->values == L::ValuesModel::Inline313) {
        flags |= L::kTpFlagsInlineValues;
    }
    FakeInstance fake;
    const char* obj = fakeInstance(&fake, *l, flags, false);
    long managedDict = offsetFrom(obj, memtap_agent::pyobj::instanceDict(obj, fake.type, *l));
    obj = fakeInstance(&fake, *l, flags, tagged);
    long taggedIsValues = memtap_agent::pyobj::instanceDict(obj, fake.type, *l) == nullptr ? 1 : 0;
    long instanceValues =
        offsetFrom(obj, memtap_agent::pyobj::instanceValues(obj, fake.type, *l).values);

    struct Field {
        const char* name;
        long value;
        bool used;
    } fields[] = {
        {"ob_type", L::kObType, true},
        {"ob_size", L::kObSize, true},
        {"unicode_length", L::kUniLength, true},
        {"unicode_state", L::kUniState, true},
        {"ascii_size", l->asciiSize, true},
        {"compact_size", l->compactSize, true},
        {"unicode_data_any", l->compactSize, true},
        // The state bit positions copyUnicode() in python_frames.cpp decodes.
        {"state_kind_bit", 2, true},
        {"state_compact_bit", 5, true},
        {"state_ascii_bit", 6, true},
        {"state_ready_bit", 7, l->unicodeHasReady},
        {"unicode_has_ready", l->unicodeHasReady ? 1u : 0u, true},
        {"tstate_frame", l->tstateFrame, true},
        {"cframe_current_frame", l->cframeCurrentFrame,
         l->model == L::FrameModel::Interp311 || l->model == L::FrameModel::Interp312},
        {"f_back", l->fBack, !interp},
        {"f_code", l->fCode, !interp},
        {"f_trace", l->fTrace, !interp},
        {"f_lasti", l->fLasti, !interp},
        {"f_lineno", l->fLineno, !interp},
        {"if_code", l->ifCode, interp},
        {"if_previous", l->ifPrevious, interp},
        {"if_instr", l->ifInstr, interp},
        {"if_owner", l->ifOwner, interp},
        {"owned_by_generator", static_cast<unsigned>(L::kFrameOwnedByGenerator), interp},
        {"owned_by_cstack", static_cast<unsigned>(L::kFrameOwnedByCStack),
         interp && l->model != L::FrameModel::Interp311},
        {"co_firstlineno", l->coFirstLineno, true},
        {"co_filename", l->coFilename, true},
        {"co_name", l->coName, true},
        {"co_linetable", l->coLineTable, true},
        {"co_firsttraceable", l->coFirstTraceable, interp},
        {"co_code_adaptive", l->coCodeAdaptive, interp},
        // The heap walk (heap_walk.cpp, python_objects.h, heap_chains.cpp).
        {"co_nlocals", l->coNLocals, !interp},
        {"co_varnames", l->coVarnames, !interp},
        {"co_cellvars", l->coCellvars, !interp},
        {"co_freevars", l->coFreevars, !interp},
        {"f_localsplus", fLocalsPlus, !interp},
        {"if_localsplus", l->ifLocalsPlus, interp},
        {"co_nlocalsplus", l->coNLocalsPlus, interp},
        {"co_localsplusnames", l->coLocalsPlusNames, interp},
        {"ht_cached_keys", l->htCachedKeys, interp},
        {"dk_log2_index_bytes", L::kDkLog2IndexBytes, interp},
        {"dk_nentries", L::kDkNEntries, interp},
        {"dk_indices", L::kDkIndices, interp},
        {"dk_unicode_entry_size", L::kDkUnicodeEntrySize, interp},
        {"dictvalues_valid", L::kValuesValid313, minor >= 13},
        {"dictvalues_values", L::kValues313, minor >= 13},
        // python_objects.h on the fake instance.
        {"managed_dict", managedDict, managed},
        {"tagged_is_values", taggedIsValues, tagged},
        {"instance_values", instanceValues, managed},
        {"preheader_gc", preHeader(*l, L::kTpFlagsHaveGc), true},
        {"preheader_dict", preHeader(*l, L::kTpFlagsManagedDict), managed},
        {"preheader_gc_dict", preHeader(*l, L::kTpFlagsHaveGc | L::kTpFlagsManagedDict), managed},
        {"preheader_weakref", preHeader(*l, L::kTpFlagsManagedWeakref), minor >= 12},
        {"tp_name", L::kTpName, true},
        {"tp_basicsize", L::kTpBasicSize, true},
        {"tp_itemsize", L::kTpItemSize, true},
        {"tp_flags", L::kTpFlags, true},
        {"tp_traverse", L::kTpTraverse, true},
        {"tp_base", L::kTpBase, true},
        {"tp_dict", L::kTpDict, true},
        {"tp_dictoffset", L::kTpDictOffset, true},
        {"tp_is_gc", L::kTpIsGc, true},
        {"flag_heaptype", static_cast<unsigned>(L::kTpFlagsHeapType), true},
        {"flag_have_gc", static_cast<unsigned>(L::kTpFlagsHaveGc), true},
        {"flag_managed_dict", static_cast<unsigned>(L::kTpFlagsManagedDict), minor >= 11},
        {"flag_managed_weakref", static_cast<unsigned>(L::kTpFlagsManagedWeakref), minor >= 12},
        {"flag_inline_values", static_cast<unsigned>(L::kTpFlagsInlineValues), minor >= 13},
        {"list_items", L::kListItems, true},
        {"list_allocated", L::kListAllocated, true},
        {"tuple_items", L::kTupleItems, true},
        {"dict_used", L::kDictUsed, true},
        {"dict_keys", L::kDictKeys, true},
        {"module_dict", L::kModuleDict, true},
        {"bytearray_bytes", L::kByteArrayBytes, true},
        // The gc's lists (heap_gc.cpp); 3.6 keeps its state in gcmodule.c.
        {"gc_head_size", l->gcHeadSize, true},
        {"gc_stride", gc.stride, true},
        {"gc_finalized_word", gc.finalizedWord, true},
        {"gc_state", gc.state, minor >= 7},
        {"gc_generations", gc.generations, minor >= 7},
        {"gc_permanent", gc.permanent, minor >= 7},
        {"gc_collecting", gc.collecting, minor >= 7},
        {"gc_garbage", gc.garbage, minor >= 7},
        // Numbers the heap-walk code writes as literals rather than taking
        // from python_layouts.h: restated here, with where, so the headers
        // check them too (keep them in step).
        {"ob_refcnt", 0, true}, // heap_gc.cpp classifyUnreached
        {"tstate_interp", L::kTstateInterp, true},
        {"flag_type_subclass", static_cast<long>(L::kTpFlagsTypeSubclass), true},
        {"long_lv_tag", L::kObSize, minor >= 12}, // heap_walk.cpp approximateSize: sizeField() >> 3
        {"long_non_size_bits", 3, minor >= 12},
        {"gc_generation_head", 0, true}, // heap_gc.cpp findGcLists: a generation starts with its head
        {"gc_next", 0, true},            // heap_gc.cpp nextOf
        {"gc_finalized_mask", 1, true},  // heap_gc.cpp gcFinalized: bit 0 of finalizedWord
    };
    int used = 0;
    for (const Field& f : fields) {
        if (!f.used) {
            continue;
        }
        int wrote = snprintf(buf + used, static_cast<size_t>(cap - used), "%s %ld\n", f.name, f.value);
        if (wrote < 0 || wrote >= cap - used) {
            return -1;
        }
        used += wrote;
    }
    return used;
}

PROBE_EXPORT const char*
probe_note() {
    return memtap_agent::framesNote();
}

// checkDebugOffsets313 on this process's _PyRuntime (3.13) with the u64 at
// byte offset tamperAt (if >= 0) replaced by tamperValue. Returns the
// verdict's number and puts the field it names (or "") in field.
PROBE_EXPORT int
probe_check_debug_offsets(int minor, int tamperAt, unsigned long long tamperValue, char* field,
                          int fieldCap) {
    namespace L = memtap_agent::layouts;
    const void* runtime = lookupGlobal("_PyRuntime");
    const L::Layout* layout = L::layoutForMinor(minor);
    if (runtime == nullptr || layout == nullptr) {
        return -1;
    }
    L::DebugOffsets313 d;
    memcpy(&d, runtime, sizeof d);
    if (tamperAt >= 0 && tamperAt + 8 <= static_cast<int>(sizeof d)) {
        memcpy(reinterpret_cast<char*>(&d) + tamperAt, &tamperValue, 8);
    }
    const char* name = nullptr;
    int verdict = static_cast<int>(L::checkDebugOffsets313(d, minor, *layout, &name));
    snprintf(field, static_cast<size_t>(fieldCap), "%s", name != nullptr ? name : "");
    return verdict;
}
