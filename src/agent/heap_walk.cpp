#include "agent/heap_walk.h"

#include "agent/heap_context.h"
#include "agent/python_frames.h"
#include "agent/python_objects.h"

#include <cstring>
#include <time.h>

namespace memtap_agent {

using pyobj::flagsOf;
using pyobj::ptrAt;
using pyobj::readAt;
using pyobj::typeOf;

namespace {

// How often (in nodes) the walk looks at the cancel word.
constexpr uint32_t kCancelCheckEvery = 4096;
// Distinct types counted one by one; objects of more types are summed as one.
constexpr size_t kTypeSlots = size_t{1} << 14;

uint64_t
monotonicNs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

struct VisitArgs {
    HeapGraph* graph;
    uint32_t parent;
    uint32_t root;
};

// tp_traverse's visitproc: returning 0 lets the traversal go on.
int
visitChild(void* child, void* arg) {
    if (child != nullptr) {
        auto* a = static_cast<VisitArgs*>(arg);
        a->graph->add(child, a->parent, a->root);
    }
    return 0;
}

struct WalkStats {
    uint64_t gcObjects = 0;
    uint32_t modules = 0;
    uint32_t threads = 0;
    uint32_t frames = 0;
    bool cancelled = false;
};

// Breadth-first from node `from` to the end of the graph, which grows as it
// goes: the node array is the queue.
void
expand(HeapContext& c, uint32_t from, const std::atomic<uint32_t>& cancel, WalkStats& stats) {
    for (uint32_t i = from; i < c.graph.size(); ++i) {
        if (i % kCancelCheckEvery == 0 && cancel.load(std::memory_order_relaxed) != 0) {
            stats.cancelled = true;
            return;
        }
        const HeapNode node = c.graph.at(i);
        const void* type = typeOf(node.object);
        if (!pyobj::isGc(node.object, type)) {
            continue;
        }
        pyobj::TraverseFn traverse = pyobj::traverseOf(type);
        if (traverse == nullptr) {
            continue;
        }
        ++stats.gcObjects;
        VisitArgs args{&c.graph, i, node.root};
        traverse(const_cast<void*>(node.object), visitChild, &args);
    }
}

void
addModuleRoots(HeapContext& c, WalkStats& stats) {
    void* modules = c.heap.moduleDict();
    if (modules == nullptr) {
        return;
    }
    long pos = 0;
    void* key = nullptr;
    void* value = nullptr;
    while (c.heap.dictNext(modules, &pos, &key, &value) != 0) {
        if (value == nullptr || c.graph.add(value, kNoNode, c.roots.size()) == kNoNode) {
            continue;
        }
        c.roots.add(HeapRoot{HeapRoot::kModule, key, 0, 0, 0});
        ++stats.modules;
    }
}

struct FrameRootArgs {
    HeapContext* c;
    WalkStats* stats;
    uint32_t thread;
};

bool
addFrameLocals(const FrameLocals& frame, void* arg) {
    auto* a = static_cast<FrameRootArgs*>(arg);
    HeapContext& c = *a->c;
    ++a->stats->frames;
    for (int i = 0; i < frame.count && i < 4096; ++i) {
        void* local = frame.locals[i];
        if (local == nullptr || c.graph.add(local, kNoNode, c.roots.size()) == kNoNode) {
            continue;
        }
        c.roots.add(HeapRoot{HeapRoot::kLocal, frame.code, i, frame.line, a->thread});
    }
    return !c.graph.full();
}

// The walking thread's interpreter (PyThreadState { prev, next, interp },
// Include/cpython/pystate.h, every version): the one whose GIL we hold.
void*
currentInterpreter() {
    const void* tstate = threadStateIfGilHeld();
    return tstate != nullptr ? const_cast<void*>(ptrAt(tstate, layouts::kTstateInterp)) : nullptr;
}

void
addFrameRoots(HeapContext& c, void* interp, WalkStats& stats) {
    if (interp == nullptr) {
        return;
    }
    // New thread states go to the head of the list (Python/pystate.c), so
    // the oldest, usually the main thread, is last: it gets number 1.
    uint32_t count = 0;
    for (void* t = c.heap.threadHead(interp); t != nullptr && count < 100000; t = c.heap.threadNext(t)) {
        ++count;
    }
    uint32_t position = 0;
    for (void* t = c.heap.threadHead(interp); t != nullptr && position < count;
         t = c.heap.threadNext(t)) {
        FrameRootArgs args{&c, &stats, count - position};
        forEachFrame(t, addFrameLocals, &args);
        ++position;
    }
    stats.threads = count;
}

// An estimate of the object's own block: its header and fixed part, its
// items for variable-size types, a str's characters and a list's item array
// (dicts' and sets' tables are not counted).
uint64_t
approximateSize(const HeapContext& c, const void* obj, const void* type) {
    const layouts::Layout& l = c.layout;
    auto size = static_cast<uint64_t>(static_cast<const char*>(obj) -
                                      static_cast<const char*>(pyobj::blockOf(obj, type, l)));
    size += static_cast<uint64_t>(readAt<int64_t>(type, layouts::kTpBasicSize));
    auto itemSize = static_cast<uint64_t>(readAt<int64_t>(type, layouts::kTpItemSize));
    if (type == c.heap.unicodeType) {
        uint32_t state = readAt<uint32_t>(obj, layouts::kUniState);
        auto length = static_cast<uint64_t>(readAt<int64_t>(obj, layouts::kUniLength));
        if ((state >> 5) & 1) { // compact: characters follow the header
            bool ascii = (state >> 6) & 1;
            size = (ascii ? l.asciiSize : l.compactSize) + (length + 1) * ((state >> 2) & 7);
        }
    } else if (type == c.heap.longType && c.api.minor >= 12) {
        // 3.12+ long_value.lv_tag: digit count << 3 (Include/cpython/longintrepr.h).
        size += itemSize * (static_cast<uint64_t>(pyobj::sizeField(obj)) >> 3);
    } else if (itemSize != 0) {
        int64_t n = pyobj::sizeField(obj);
        size += itemSize * static_cast<uint64_t>(n < 0 ? -n : n);
    }
    if (type == c.heap.listType) {
        size += 8 * static_cast<uint64_t>(readAt<int64_t>(obj, layouts::kListAllocated));
    }
    return (size + 7) & ~uint64_t{7};
}

struct TypeCount {
    const void* type;
    uint64_t count;
    uint64_t bytes;
};

// "type" lines for every node (from first on: garbage lines for the nodes
// under the cycle root only).
void
reportTypes(const HeapContext& c, MappedText& out, const char* tag, uint32_t first, uint32_t root) {
    Mapping map;
    if (!map.allocate(kTypeSlots * sizeof(TypeCount))) {
        appendKeyValue(out, "types_note", "no memory for the type table");
        return;
    }
    auto* slots = static_cast<TypeCount*>(map.get());
    TypeCount other{nullptr, 0, 0};
    size_t used = 0;
    for (uint32_t i = first; i < c.graph.size(); ++i) {
        if (root != kNoNode && c.graph.at(i).root != root) {
            continue;
        }
        const void* obj = c.graph.at(i).object;
        const void* type = typeOf(obj);
        uint64_t bytes = approximateSize(c, obj, type);
        size_t h = (reinterpret_cast<uintptr_t>(type) >> 4) * 0x9e3779b97f4a7c15ULL >> 50;
        TypeCount* hit = nullptr;
        for (size_t probe = 0; probe < kTypeSlots; ++probe) {
            TypeCount& s = slots[(h + probe) % kTypeSlots];
            if (s.type == type) {
                hit = &s;
                break;
            }
            if (s.type == nullptr) {
                if (used * 4 < kTypeSlots * 3) {
                    s.type = type;
                    ++used;
                    hit = &s;
                }
                break;
            }
        }
        hit = hit != nullptr ? hit : &other;
        ++hit->count;
        hit->bytes += bytes;
    }
    char name[256];
    for (size_t i = 0; i < kTypeSlots; ++i) {
        const TypeCount& s = slots[i];
        if (s.type == nullptr) {
            continue;
        }
        qualifiedTypeName(c, s.type, name, sizeof name);
        out.append(tag);
        out.append('\t');
        out.appendU64(s.count);
        out.append('\t');
        out.appendU64(s.bytes);
        out.append('\t');
        out.append(name);
        out.append('\n');
    }
    if (other.count != 0) {
        out.append(tag);
        out.append('\t');
        out.appendU64(other.count);
        out.append('\t');
        out.appendU64(other.bytes);
        out.append("\t(other types)\n");
    }
}

} // namespace

bool
HeapRoots::add(const HeapRoot& r) noexcept {
    if (count_ == capacity_) {
        size_t capacity = capacity_ == 0 ? 4096 : capacity_ * 2;
        Mapping bigger;
        if (!bigger.allocate(capacity * sizeof(HeapRoot))) {
            return false;
        }
        if (items_ != nullptr) {
            std::memcpy(bigger.get(), items_, count_ * sizeof(HeapRoot));
        }
        map_ = static_cast<Mapping&&>(bigger);
        items_ = static_cast<HeapRoot*>(map_.get());
        capacity_ = capacity;
    }
    items_[count_++] = r;
    return true;
}

const void*
dictLookup(const HeapContext& c, const void* dict, const char* name) noexcept {
    if (dict == nullptr || typeOf(dict) != c.heap.dictType) {
        return nullptr;
    }
    long pos = 0;
    void* key = nullptr;
    void* value = nullptr;
    char text[64];
    while (c.heap.dictNext(const_cast<void*>(dict), &pos, &key, &value) != 0) {
        if (typeOf(key) == c.heap.unicodeType && copyStr(key, text, sizeof text) &&
            std::strcmp(text, name) == 0) {
            return value;
        }
    }
    return nullptr;
}

void
qualifiedTypeName(const HeapContext& c, const void* type, char* buf, int cap) noexcept {
    const char* name = pyobj::typeName(type);
    buf[0] = '\0';
    int used = 0;
    if ((flagsOf(type) & layouts::kTpFlagsHeapType) != 0) {
        const void* module = dictLookup(c, ptrAt(type, layouts::kTpDict), "__module__");
        if (module != nullptr && copyStr(module, buf, cap - 1) && std::strcmp(buf, "builtins") != 0) {
            used = static_cast<int>(std::strlen(buf));
            buf[used++] = '.';
        }
    }
    for (const char* p = name; *p != '\0' && used + 1 < cap; ++p) {
        buf[used++] = *p == '\t' || *p == '\n' ? ' ' : *p;
    }
    buf[used] = '\0';
}

const char*
TypeNames::nameOf(const HeapContext& c, const void* type) noexcept {
    static constexpr const char* kUnknown = "?";
    if (slots_ == nullptr) {
        if (!map_.allocate(kSlots * sizeof(Slot))) {
            return kUnknown;
        }
        slots_ = static_cast<Slot*>(map_.get());
    }
    size_t h = (reinterpret_cast<uintptr_t>(type) >> 4) * 0x9e3779b97f4a7c15ULL >> 52;
    for (size_t probe = 0; probe < kSlots; ++probe) {
        Slot& s = slots_[(h + probe) % kSlots];
        if (s.type == type) {
            return names_.data() + s.offset;
        }
        if (s.type == nullptr) {
            char name[256];
            qualifiedTypeName(c, type, name, sizeof name);
            size_t offset = names_.size();
            names_.append(name, std::strlen(name) + 1);
            if (names_.failed()) {
                return kUnknown;
            }
            s = Slot{type, offset};
            return names_.data() + offset;
        }
    }
    return kUnknown;
}

void
runHeapWalk(const PythonApi& api, const HeapWalkRequest& request, const std::atomic<uint32_t>& cancel,
            MappedText& out) noexcept {
    uint64_t started = monotonicNs();
    HeapContext c{
        api, api.heap, frameLayout(), request, {}, {}, {}, layouts::gcLayoutForMinor(api.minor)};
    if (api.heap.dictNext == nullptr || c.layout.model == layouts::FrameModel::None) {
        appendKeyValue(out, "walk_result", "unsupported");
        return;
    }
    if (api.minor > 13) {
        // 3.14+ was built from headers for frames only: the dict, values and
        // gc layouts the walk reads are not derived for it, so nothing is read.
        char note[80] = "the heap walk reads CPython 3.6 to 3.13 only; this is 3.";
        size_t at = std::strlen(note);
        int minor = api.minor < 100 ? api.minor : 99;
        if (minor >= 10) {
            note[at++] = static_cast<char>('0' + minor / 10);
        }
        note[at++] = static_cast<char>('0' + minor % 10);
        note[at] = '\0';
        appendKeyValue(out, "walk_result", "unsupported");
        appendKeyValue(out, "walk_note", note);
        return;
    }
    if (!c.graph.init(request.maxObjects)) {
        appendKeyValue(out, "walk_result", "no-memory");
        return;
    }
    WalkStats stats;
    // Modules first, walked to the end, so that what a module reaches is
    // named from that module even if some frame's local also refers to it.
    addModuleRoots(c, stats);
    expand(c, 0, cancel, stats);
    uint32_t moduleNodes = c.graph.size();
    void* interp = currentInterpreter();
    GcLists gcLists = findGcLists(c, interp);
    if (!stats.cancelled) {
        addFrameRoots(c, interp, stats);
        addGcGarbageRoot(c, gcLists);
        expand(c, moduleNodes, cancel, stats);
    }
    // What no root reached, from the gc's lists (skipped once the graph is
    // full: the unreached would be whatever the limit cut off).
    UnreachedStats unreached;
    unreached.first = c.graph.size();
    if (!stats.cancelled && !c.graph.full()) {
        for (bool containers : {false, true}) {
            uint32_t from = c.graph.size();
            addUnreachedRoots(c, gcLists, cancel, unreached, containers);
            if (unreached.cancelled || std::strcmp(unreached.lists, "read") != 0) {
                break;
            }
            expand(c, from, cancel, stats);
        }
        if (std::strcmp(unreached.lists, "read") == 0 && !unreached.cancelled && !stats.cancelled &&
            !c.graph.full()) {
            classifyUnreached(c, cancel, unreached);
        }
    }
    uint64_t walkedNs = monotonicNs() - started;
    if (stats.cancelled || unreached.cancelled) {
        appendKeyValue(out, "walk_result", "cancelled");
        return;
    }
    appendKeyValue(out, "walk_result", c.graph.full() ? "truncated" : "complete");
    appendKeyValue(out, "walk_objects", c.graph.size());
    appendKeyValue(out, "walk_gc_objects", stats.gcObjects);
    appendKeyValue(out, "walk_module_objects", moduleNodes);
    appendKeyValue(out, "walk_modules", stats.modules);
    appendKeyValue(out, "walk_threads", stats.threads);
    appendKeyValue(out, "walk_frames", stats.frames);
    appendKeyValue(out, "walk_max_objects", request.maxObjects);
    appendKeyValue(out, "gc_lists", c.graph.full() ? "not-read" : unreached.lists);
    appendKeyValue(out, "gc_listed", unreached.listed);
    appendKeyValue(out, "gc_finalized", unreached.finalized);
    appendKeyValue(out, "gc_unreached", c.graph.size() - unreached.first);
    if (unreached.classified) {
        appendKeyValue(out, "gc_cycle_objects", unreached.garbage);
        appendKeyValue(out, "gc_external_objects", unreached.external);
    }
    if (request.kind == HeapWalkKind::kTypes) {
        reportTypes(c, out, "type", 0, kNoNode);
        if (unreached.classified && unreached.garbage != 0) {
            reportTypes(c, out, "cycle", unreached.first, unreached.cycleRoot);
            reportCycleSites(c, unreached, out);
        }
    } else {
        reportChains(c, out);
    }
    appendKeyValue(out, "walk_graph_ns", walkedNs);
    appendKeyValue(out, "walk_ns", monotonicNs() - started);
    appendKeyValue(out, "walk_mapped_bytes", c.graph.mappedBytes() + c.roots.mappedBytes());
}

} // namespace memtap_agent
