// Reading Python objects without Python.h, for the heap walk (heap_walk.h).
//
// Everything here reads only: the object header, the type object's fixed
// slots (python_layouts.h) and, for the few containers the walk names links
// in, their item arrays. The caller holds the GIL, so the objects cannot
// change under us.
#ifndef MEMTAP_AGENT_PYTHON_OBJECTS_H
#define MEMTAP_AGENT_PYTHON_OBJECTS_H

#include "agent/python_api.h"
#include "agent/python_layouts.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace memtap_agent {
namespace pyobj {

template <typename T>
inline T
readAt(const void* base, ptrdiff_t offset) noexcept {
    T value;
    std::memcpy(&value, static_cast<const char*>(base) + offset, sizeof(T));
    return value;
}

inline const void*
ptrAt(const void* base, ptrdiff_t offset) noexcept {
    return readAt<const void*>(base, offset);
}

inline const void*
typeOf(const void* obj) noexcept {
    return ptrAt(obj, layouts::kObType);
}

inline unsigned long
flagsOf(const void* type) noexcept {
    return readAt<unsigned long>(type, layouts::kTpFlags);
}

inline int64_t
sizeField(const void* obj) noexcept {
    return readAt<int64_t>(obj, layouts::kObSize);
}

using TraverseFn = int (*)(void* obj, int (*visit)(void* child, void* arg), void* arg);
using IsGcFn = int (*)(void* obj);

// PyObject_IS_GC (Include/internal/pycore_object.h): a GC type, and for
// types with tp_is_gc (type objects: only heap types) that function agrees.
inline bool
isGc(const void* obj, const void* type) noexcept {
    if ((flagsOf(type) & layouts::kTpFlagsHaveGc) == 0) {
        return false;
    }
    auto isGcFn = readAt<IsGcFn>(type, layouts::kTpIsGc);
    return isGcFn == nullptr || isGcFn(const_cast<void*>(obj)) != 0;
}

inline TraverseFn
traverseOf(const void* type) noexcept {
    return readAt<TraverseFn>(type, layouts::kTpTraverse);
}

// tp_name: "module.Name" for static types, the bare name for heap types.
inline const char*
typeName(const void* type) noexcept {
    const char* name = readAt<const char*>(type, layouts::kTpName);
    return name != nullptr ? name : "?";
}

// Where obj's own block starts: _PyType_PreHeaderSize
// (Include/internal/pycore_object.h): the GC header, and on 3.11+ two
// words before it for a managed dict (3.12+: or a managed weakref list).
inline const void*
blockOf(const void* obj, const void* type, const layouts::Layout& l) noexcept {
    unsigned long flags = flagsOf(type);
    unsigned pre = (flags & layouts::kTpFlagsHaveGc) != 0 ? l.gcHeadSize : 0;
    unsigned long preheader = l.values == layouts::ValuesModel::Pointer311
                                  ? layouts::kTpFlagsManagedDict
                                  : layouts::kTpFlagsManagedDict | layouts::kTpFlagsManagedWeakref;
    if (l.values != layouts::ValuesModel::None && (flags & preheader) != 0) {
        pre += 16;
    }
    return static_cast<const char*>(obj) - pre;
}

// The instance's __dict__ if it has one in use (not for types or modules,
// whose dicts are tp_dict / md_dict). 3.11+ managed dicts sit at
// ((PyObject**)obj)[-3] (Include/internal/pycore_object.h), tagged in 3.12
// when it holds a values pointer instead; older types keep it at
// tp_dictoffset (a negative offset counts from the end of a variable-size
// object: not followed here).
inline const void*
instanceDict(const void* obj, const void* type, const layouts::Layout& l) noexcept {
    if (l.values != layouts::ValuesModel::None && (flagsOf(type) & layouts::kTpFlagsManagedDict) != 0) {
        auto word = readAt<uintptr_t>(obj, -24);
        if (l.values == layouts::ValuesModel::Tagged312 && (word & 1) != 0) {
            return nullptr;
        }
        return reinterpret_cast<const void*>(word);
    }
    auto offset = readAt<int64_t>(type, layouts::kTpDictOffset);
    if (offset <= 0) {
        return nullptr;
    }
    return ptrAt(obj, offset);
}

// 3.11+: the attribute values an instance holds outside any dict, and the
// keys (PyDictKeysObject of the type's ht_cached_keys) they are stored
// against; null if there are none.
struct InstanceValues {
    void* const* values;
    const void* keys;
};

inline InstanceValues
instanceValues(const void* obj, const void* type, const layouts::Layout& l) noexcept {
    InstanceValues none{nullptr, nullptr};
    unsigned long flags = flagsOf(type);
    if (l.values == layouts::ValuesModel::None || (flags & layouts::kTpFlagsManagedDict) == 0 ||
        (flags & layouts::kTpFlagsHeapType) == 0) {
        return none;
    }
    const void* keys = ptrAt(type, l.htCachedKeys);
    const char* values = nullptr;
    switch (l.values) {
    case layouts::ValuesModel::Pointer311:
        values = static_cast<const char*>(ptrAt(obj, -32));
        break;
    case layouts::ValuesModel::Tagged312: {
        auto word = readAt<uintptr_t>(obj, -24);
        values = (word & 1) != 0 ? reinterpret_cast<const char*>(word + 1) : nullptr;
        break;
    }
    case layouts::ValuesModel::Inline313:
        if ((flags & layouts::kTpFlagsInlineValues) != 0) {
            const char* inlineValues =
                static_cast<const char*>(obj) + readAt<int64_t>(type, layouts::kTpBasicSize);
            if (readAt<uint8_t>(inlineValues, layouts::kValuesValid313) != 0) {
                values = inlineValues + layouts::kValues313;
            }
        }
        break;
    case layouts::ValuesModel::None:
        break;
    }
    if (keys == nullptr || values == nullptr) {
        return none;
    }
    return InstanceValues{reinterpret_cast<void* const*>(values), keys};
}

// The str key of entry i of split keys (PyDictUnicodeEntry.me_key), or null
// past the last entry.
inline const void*
splitKey(const void* keys, int64_t i) noexcept {
    if (i < 0 || i >= readAt<int64_t>(keys, layouts::kDkNEntries)) {
        return nullptr;
    }
    unsigned indexBytes = 1u << readAt<uint8_t>(keys, layouts::kDkLog2IndexBytes);
    const char* entries = static_cast<const char*>(keys) + layouts::kDkIndices + indexBytes;
    return ptrAt(entries, i * layouts::kDkUnicodeEntrySize);
}

} // namespace pyobj
} // namespace memtap_agent

#endif // MEMTAP_AGENT_PYTHON_OBJECTS_H
