// The heap walk behind "memtap types" and "memtap refs": which objects are
// alive, by type, and what holds the objects allocated at a line.
//
// It runs on a thread that holds the GIL, inside our PyMem/PyObject malloc
// hook (heap_request.h arms it), after the original allocator returned and
// before the caller stored the new block anywhere. No Python code runs, no
// object is created, the gc is not touched: the walk reads objects and calls
// their tp_traverse with a visit function of ours, as the gc does, plus
// PyDict_Next to name dict entries. Its memory is mapped by the agent and
// given back before the hook returns.
//
// Breadth-first from the roots a person recognises: first every module in
// sys.modules (so a module global is named by its module), then the local
// variables of every thread's frames. Following a node's parent gives a
// shortest chain of references from a root. Then the objects on the gc's
// lists that neither reaches, told apart as cycles reachable only from each
// other or held from outside (heap_gc.cpp).
#ifndef MEMTAP_AGENT_HEAP_WALK_H
#define MEMTAP_AGENT_HEAP_WALK_H

#include "agent/python_api.h"
#include "agent/text.h"

#include <atomic>
#include <cstdint>

namespace memtap_agent {

enum class HeapWalkKind : uint8_t { kTypes, kRefs };

struct HeapWalkRequest {
    HeapWalkKind kind;
    uint32_t maxObjects; // the walk stops (and says so) past this many nodes
    uint32_t topChains;  // refs: chains reported, the largest first
    int line;            // refs: the site, matched against the most recent frame
    char file[200];      //       (its file equal to this or ending in "/" this)
};

// Writes the "heap-walk-result" payload lines of protocol.h (after the
// request's state keys) into out. Polls cancel every few thousand objects and
// stops early once it is non-zero. Needs the GIL.
void runHeapWalk(const PythonApi& api, const HeapWalkRequest& request,
                 const std::atomic<uint32_t>& cancel, MappedText& out) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_HEAP_WALK_H
