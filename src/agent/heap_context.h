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

#include <atomic>
#include <cstdint>

namespace memtap_agent {

// Where a chain starts: a module in sys.modules, a local variable of a
// thread's frame, the gc's garbage list; or, for what none of those reach
// (heap_gc.cpp), an object on the gc's lists: unreached until classified,
// then in a cycle reachable only from itself, or held from outside.
struct HeapRoot {
    enum Kind : uint8_t { kModule, kLocal, kGcGarbage, kUnreached, kCycle, kExternal } kind;
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
    layouts::GcLayout gc;
};

// heap_gc.cpp: the objects on the gc's lists that no root reached.
struct UnreachedStats {
    const char* lists = "unavailable"; // read, collecting, truncated, no-memory
    uint64_t listed = 0;               // objects on the lists
    uint64_t finalized = 0;            // of those, finalized (__del__ ran) and alive
    uint64_t garbage = 0;              // nodes in cycles reachable only from each other
    uint64_t external = 0;             // nodes held from outside what the walk follows
    uint32_t first = 0;                // the first unreached node
    uint32_t unreachedRoot = kNoNode;  // the kUnreached root's index
    uint32_t cycleRoot = kNoNode;      // the kCycle root's index, once classified
    bool classified = false;
    bool cancelled = false;
};

// The gc's generation lists of the interpreter (and the permanent one),
// found through the layout table and confirmed: status "read" only when
// sys.modules' dict, a tracked object, is on a circle through one of them.
struct GcLists {
    const char* status = "unavailable"; // read, collecting, unavailable
    const char* state = nullptr;        // struct _gc_runtime_state
    const char* heads[4] = {};
    int count = 0;
};
GcLists findGcLists(const HeapContext& c, const void* interp) noexcept;
// Adds the gc's garbage list (3.7+) as a root, if it is readable.
void addGcGarbageRoot(HeapContext& c, const GcLists& lists) noexcept;
// Adds every listed object that is not a node yet as a root of its own; with
// containers false, not dicts, lists and tuples: called first that way and
// walked, an instance's __dict__ is reached from the instance.
void addUnreachedRoots(HeapContext& c, const GcLists& lists, const std::atomic<uint32_t>& cancel,
                       UnreachedStats& s, bool containers) noexcept;
// After the walk from those roots: which of the nodes from s.first on are
// garbage and which are held from outside (their roots become kCycle or
// kExternal).
void classifyUnreached(HeapContext& c, const std::atomic<uint32_t>& cancel, UnreachedStats& s) noexcept;
// "cyclesite\tOBJECTS\tBYTES\tFILE:LINE" lines: where the traced cycle
// objects were allocated, the most objects first; gc_cycle_untraced counts
// the others (allocated before attach, or not sampled).
void reportCycleSites(const HeapContext& c, const UnreachedStats& s, MappedText& out) noexcept;
// True if obj is a gc object whose finalizer (__del__) has run.
bool gcFinalized(const HeapContext& c, const void* obj) noexcept;

// The value of the str key `name` in dict, or null (a scan with PyDict_Next).
const void* dictLookup(const HeapContext& c, const void* dict, const char* name) noexcept;
// "module.Name" of a type: tp_name for static types (which carries the
// module), __module__ + "." + tp_name for heap types; builtins as tp_name.
void qualifiedTypeName(const HeapContext& c, const void* type, char* buf, int cap) noexcept;

// heap_chains.cpp: the "refs" lines for the request's site.
void reportChains(HeapContext& c, MappedText& out) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_HEAP_CONTEXT_H
