// What the parts of one heap walk share (heap_walk.cpp walks and counts
// types, heap_chains.cpp answers "refs"). Internal to those two files.
#ifndef MEMTAP_AGENT_HEAP_CONTEXT_H
#define MEMTAP_AGENT_HEAP_CONTEXT_H

#include "agent/heap_graph.h"
#include "agent/heap_walk.h"
#include "agent/mapping.h"
#include "agent/python_api.h"
#include "agent/python_layouts.h"
#include "agent/text.h"

#include <cstdint>

namespace memtap_agent {

// Where a chain starts: a module in sys.modules, or a local variable of a
// thread's frame.
struct HeapRoot {
    enum Kind : uint8_t { kModule, kLocal } kind;
    const void* name; // kModule: the sys.modules key (a str); kLocal: the code object
    int local;        // kLocal: the local's index (python_frames.h localName)
    int line;         // kLocal: the line the frame is at
    uint32_t thread;  // kLocal: 1 for the oldest thread (the main one, usually)
};

class HeapRoots {
public:
    // Appends r; false if the list cannot grow.
    bool add(const HeapRoot& r) noexcept;
    const HeapRoot& at(uint32_t i) const noexcept { return items_[i]; }
    uint32_t size() const noexcept { return static_cast<uint32_t>(count_); }
    size_t mappedBytes() const noexcept { return map_.size(); }

private:
    Mapping map_;
    HeapRoot* items_ = nullptr;
    size_t count_ = 0;
    size_t capacity_ = 0;
};

// qualifiedTypeName, remembered per type for the walk (chains name the same
// few types thousands of times; a heap type's name needs a dict scan).
class TypeNames {
public:
    // The name of type, NUL-terminated; valid until the next call.
    const char* nameOf(const struct HeapContext& c, const void* type) noexcept;

private:
    static constexpr size_t kSlots = 4096;
    struct Slot {
        const void* type;
        size_t offset;
    };
    Mapping map_;
    Slot* slots_ = nullptr;
    MappedText names_;
};

struct HeapContext {
    const PythonApi& api;
    const HeapApi& heap;
    const layouts::Layout& layout;
    const HeapWalkRequest& request;
    HeapGraph graph;
    HeapRoots roots;
    TypeNames typeNames;
};

// The value of the str key `name` in dict, or null (a scan with PyDict_Next).
const void* dictLookup(const HeapContext& c, const void* dict, const char* name) noexcept;
// "module.Name" of a type: tp_name for static types (which carries the
// module), __module__ + "." + tp_name for heap types; builtins as tp_name.
void qualifiedTypeName(const HeapContext& c, const void* type, char* buf, int cap) noexcept;

// heap_chains.cpp: the "refs" lines for the request's site.
void reportChains(HeapContext& c, MappedText& out) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_HEAP_CONTEXT_H
