// What no root reaches: the objects on the cyclic gc's lists that the walk
// from modules and frame locals did not find, and what keeps them alive.
//
// Every object the gc tracks is on one of its generation lists
// (python_layouts.h GcLayout), so after the walk from the roots, the tracked
// objects still missing are listed there. Each becomes a root of its own and
// the walk goes on from them. Then, as the gc itself decides what is garbage
// (Modules/gcmodule.c update_refs, subtract_refs, move_unreachable), but on
// our own counters and without touching a PyGC_Head: an object referenced
// more often than the other unreached objects reference it is held from
// outside (C code, an extension's state, a value on some frame's stack), and
// so is everything it reaches; the rest are reference cycles reachable only
// from each other, garbage the gc has not collected yet.
//
// The lists are read only when their address can be trusted: sys.modules'
// dict, a tracked object, must be on one of the circles whose heads the
// layout table gives; otherwise the walk says the lists are unavailable.
#include "agent/engine.h"
#include "agent/heap_context.h"
#include "agent/python_objects.h"

#include <algorithm>
#include <cstring>

namespace memtap_agent {

using pyobj::readAt;
using pyobj::typeOf;

namespace {

// Allocation sites of the cycle objects reported, the most objects first.
constexpr size_t kCycleSites = 10;

// How often (in nodes) the loops here look at the cancel word.
constexpr uint32_t kCancelCheckEvery = 4096;
// Longest circle followed: beyond it a list is taken as damaged.
constexpr uint64_t kMaxListed = uint64_t{1} << 30;
bool
isHead(const GcLists& lists, const char* p) {
    for (int i = 0; i < lists.count; ++i) {
        if (lists.heads[i] == p) {
            return true;
        }
    }
    return false;
}

const char*
nextOf(const HeapContext& c, const char* head) {
    return reinterpret_cast<const char*>(readAt<uintptr_t>(head, 0) & c.gc.nextMask);
}

// True if following _gc_next from sys.modules' dict comes to one of the heads.
bool
headsConfirmed(const HeapContext& c, const GcLists& lists) {
    const void* modules = c.heap.moduleDict();
    if (modules == nullptr || !pyobj::isGc(modules, typeOf(modules))) {
        return false;
    }
    const char* start = static_cast<const char*>(modules) - c.layout.gcHeadSize;
    const char* n = nextOf(c, start);
    for (uint64_t steps = 0; n != nullptr && n != start && steps < kMaxListed; ++steps) {
        if (isHead(lists, n)) {
            return true;
        }
        n = nextOf(c, n);
    }
    return false;
}

struct RegionArgs {
    const HeapGraph* graph;
    uint32_t first;
    uint32_t* counts; // internal references per region node
    uint8_t* held;
    uint32_t* queue;
    uint32_t* queued;
};

int
countInternal(void* child, void* arg) {
    auto* a = static_cast<RegionArgs*>(arg);
    uint32_t i = child != nullptr ? a->graph->find(child) : kNoNode;
    if (i != kNoNode && i >= a->first) {
        ++a->counts[i - a->first];
    }
    return 0;
}

int
markHeld(void* child, void* arg) {
    auto* a = static_cast<RegionArgs*>(arg);
    uint32_t i = child != nullptr ? a->graph->find(child) : kNoNode;
    if (i != kNoNode && i >= a->first && a->held[i - a->first] == 0) {
        a->held[i - a->first] = 1;
        a->queue[(*a->queued)++] = i;
    }
    return 0;
}

bool
traverseNode(const HeapContext& c, uint32_t i, int (*visit)(void*, void*), RegionArgs* args) {
    const void* obj = c.graph.at(i).object;
    const void* type = typeOf(obj);
    if (!pyobj::isGc(obj, type)) {
        return false;
    }
    pyobj::TraverseFn traverse = pyobj::traverseOf(type);
    if (traverse != nullptr) {
        traverse(const_cast<void*>(obj), visit, args);
    }
    return true;
}

} // namespace

GcLists
findGcLists(const HeapContext& c, const void* interp) noexcept {
    GcLists lists;
    const layouts::GcLayout& g = c.gc;
    const char* base = nullptr;
    switch (g.base) {
    case layouts::GcBase::Generation0Symbol:
        base = c.heap.gcGeneration0 != nullptr
                   ? static_cast<const char*>(pyobj::ptrAt(c.heap.gcGeneration0, 0))
                   : nullptr;
        break;
    case layouts::GcBase::RuntimeSymbol:
        base = static_cast<const char*>(c.heap.runtime);
        break;
    case layouts::GcBase::Interpreter:
        base = static_cast<const char*>(interp);
        break;
    case layouts::GcBase::None:
        break;
    }
    if (base == nullptr) {
        return lists;
    }
    lists.state = base + g.state;
    for (int i = 0; i < 3; ++i) {
        lists.heads[lists.count++] = lists.state + g.generations + i * g.stride;
    }
    if (g.permanent != 0) {
        lists.heads[lists.count++] = lists.state + g.permanent;
    }
    if (g.collecting != 0 && readAt<int>(lists.state, g.collecting) != 0) {
        lists.status = "collecting"; // the lists are being rearranged under us
    } else if (headsConfirmed(c, lists)) {
        lists.status = "read";
    }
    return lists;
}

bool
gcFinalized(const HeapContext& c, const void* obj) noexcept {
    const void* type = typeOf(obj);
    if (c.gc.base == layouts::GcBase::None || !pyobj::isGc(obj, type)) {
        return false;
    }
    const char* head = static_cast<const char*>(obj) - c.layout.gcHeadSize;
    return (readAt<uintptr_t>(head, c.gc.finalizedWord) & 1) != 0;
}

void
addGcGarbageRoot(HeapContext& c, const GcLists& lists) noexcept {
    if (std::strcmp(lists.status, "read") != 0 || c.gc.garbage == 0) {
        return;
    }
    const void* garbage = pyobj::ptrAt(lists.state, c.gc.garbage);
    if (garbage != nullptr && typeOf(garbage) == c.heap.listType &&
        c.graph.add(garbage, kNoNode, c.roots.size()) != kNoNode) {
        c.roots.add(HeapRoot{HeapRoot::kGcGarbage, nullptr, 0, 0, 0});
    }
}

void
addUnreachedRoots(HeapContext& c, const GcLists& lists, const std::atomic<uint32_t>& cancel,
                  UnreachedStats& s, bool containers) noexcept {
    if (std::strcmp(lists.status, "read") != 0) {
        s.lists = lists.status;
        return;
    }
    if (s.unreachedRoot == kNoNode) {
        s.unreachedRoot = c.roots.size();
        if (!c.roots.add(HeapRoot{HeapRoot::kUnreached, nullptr, 0, 0, 0})) {
            s.lists = "no-memory";
            return;
        }
    }
    s.lists = "read";
    const HeapApi& api = c.heap;
    uint64_t listed = 0;
    for (int h = 0; h < lists.count; ++h) {
        const char* head = lists.heads[h];
        const char* n = nextOf(c, head);
        for (uint64_t steps = 0; n != nullptr && n != head && steps < kMaxListed; ++steps) {
            if (++listed % kCancelCheckEvery == 0 && cancel.load(std::memory_order_relaxed) != 0) {
                s.cancelled = true;
                return;
            }
            const void* obj = n + c.layout.gcHeadSize;
            const void* type = typeOf(obj);
            bool container = type == api.dictType || type == api.listType || type == api.tupleType;
            if (containers && (readAt<uintptr_t>(n, c.gc.finalizedWord) & 1) != 0) {
                ++s.finalized;
            }
            if ((containers || !container) && c.graph.find(obj) == kNoNode &&
                c.graph.add(obj, kNoNode, s.unreachedRoot) == kNoNode) {
                s.lists = "truncated";
                return;
            }
            n = nextOf(c, n);
        }
    }
    s.listed = listed;
}

void
classifyUnreached(HeapContext& c, const std::atomic<uint32_t>& cancel, UnreachedStats& s) noexcept {
    uint32_t n = c.graph.size() - s.first;
    if (n == 0) {
        return;
    }
    Mapping countsMap;
    Mapping heldMap;
    Mapping queueMap;
    if (!countsMap.allocate(size_t{n} * sizeof(uint32_t)) || !heldMap.allocate(n) ||
        !queueMap.allocate(size_t{n} * sizeof(uint32_t))) {
        s.lists = "no-memory";
        return;
    }
    uint32_t queued = 0;
    RegionArgs args{&c.graph,
                    s.first,
                    static_cast<uint32_t*>(countsMap.get()),
                    static_cast<uint8_t*>(heldMap.get()),
                    static_cast<uint32_t*>(queueMap.get()),
                    &queued};
    // The references the unreached objects make to each other.
    for (uint32_t i = s.first; i < c.graph.size(); ++i) {
        if (i % kCancelCheckEvery == 0 && cancel.load(std::memory_order_relaxed) != 0) {
            s.cancelled = true;
            return;
        }
        traverseNode(c, i, countInternal, &args);
    }
    // More references than those: held from outside (immortal objects' huge
    // counts land here too).
    for (uint32_t i = s.first; i < c.graph.size(); ++i) {
        auto refs = readAt<int64_t>(c.graph.at(i).object, 0);
        if (refs > static_cast<int64_t>(args.counts[i - s.first])) {
            args.held[i - s.first] = 1;
            args.queue[queued++] = i;
        }
    }
    for (uint32_t q = 0; q < queued; ++q) {
        if (q % kCancelCheckEvery == 0 && cancel.load(std::memory_order_relaxed) != 0) {
            s.cancelled = true;
            return;
        }
        traverseNode(c, args.queue[q], markHeld, &args);
    }
    uint32_t cycleRoot = c.roots.size();
    uint32_t externalRoot = cycleRoot + 1;
    if (!c.roots.add(HeapRoot{HeapRoot::kCycle, nullptr, 0, 0, 0}) ||
        !c.roots.add(HeapRoot{HeapRoot::kExternal, nullptr, 0, 0, 0})) {
        s.lists = "no-memory";
        return;
    }
    // A held object first reached from garbage is shown as held, from
    // outside; a garbage object's parent is always garbage (what a held
    // object reaches is held).
    for (uint32_t i = s.first; i < c.graph.size(); ++i) {
        HeapNode& node = c.graph.at(i);
        bool held = args.held[i - s.first] != 0;
        node.root = held ? externalRoot : cycleRoot;
        if (held) {
            ++s.external;
            if (node.parent != kNoNode && args.held[node.parent - s.first] == 0) {
                node.parent = kNoNode;
            }
        } else {
            ++s.garbage;
        }
    }
    s.cycleRoot = cycleRoot;
    s.classified = true;
}

void
reportCycleSites(const HeapContext& c, const UnreachedStats& s, MappedText& out) noexcept {
    struct SiteCount {
        uint64_t objects;
        uint64_t bytes;
    };
    size_t cap = engineTracebackCount() + 4096;
    Mapping countsMap;
    Mapping orderMap;
    if (!countsMap.allocate(cap * sizeof(SiteCount)) || !orderMap.allocate(cap * sizeof(uint32_t))) {
        return;
    }
    auto* counts = static_cast<SiteCount*>(countsMap.get());
    uint64_t untraced = 0;
    for (uint32_t i = s.first; i < c.graph.size(); ++i) {
        const HeapNode& node = c.graph.at(i);
        if (node.root != s.cycleRoot) {
            continue;
        }
        uint64_t size = 0;
        uint32_t trace = 0;
        if (engineFindBlock(pyobj::blockOf(node.object, typeOf(node.object), c.layout), &size, &trace) &&
            trace < cap) {
            ++counts[trace].objects;
            counts[trace].bytes += size;
        } else {
            ++untraced;
        }
    }
    auto* order = static_cast<uint32_t*>(orderMap.get());
    uint32_t n = 0;
    for (size_t i = 0; i < cap; ++i) {
        if (counts[i].objects != 0) {
            order[n++] = static_cast<uint32_t>(i);
        }
    }
    size_t shown = std::min<size_t>(n, kCycleSites);
    std::partial_sort(order, order + shown, order + n,
                      [&](uint32_t a, uint32_t b) { return counts[a].objects > counts[b].objects; });
    appendKeyValue(out, "gc_cycle_untraced", untraced);
    char file[256];
    for (size_t k = 0; k < shown; ++k) {
        int line = 0;
        if (!engineTopFrame(order[k], file, sizeof file, &line)) {
            continue;
        }
        for (char* p = file; *p != '\0'; ++p) {
            *p = *p == '\t' || *p == '\n' ? ' ' : *p;
        }
        out.append("cyclesite\t");
        out.appendU64(counts[order[k]].objects);
        out.append('\t');
        out.appendU64(counts[order[k]].bytes);
        out.append('\t');
        out.append(file);
        out.append(':');
        out.appendU64(line > 0 ? static_cast<uint64_t>(line) : 0);
        out.append('\n');
    }
}

} // namespace memtap_agent
