// The objects a heap walk reached (heap_walk.h): one node per object, in the
// order the breadth-first walk found them, each with the node that reached
// it first, so following parents gives a shortest chain back to a root.
//
// All memory is mapped by the graph itself (mapping.h): the walk runs inside
// an allocator hook, where nothing may go through the target's allocators.
// The address index is open-addressed and rebuilt twice as large at half
// load; the node array grows by doubling. Both are bounded by the node limit
// given to init().
#ifndef MEMTAP_AGENT_HEAP_GRAPH_H
#define MEMTAP_AGENT_HEAP_GRAPH_H

#include "agent/mapping.h"

#include <cstddef>
#include <cstdint>

namespace memtap_agent {

inline constexpr uint32_t kNoNode = UINT32_MAX;

struct HeapNode {
    const void* object;
    uint32_t parent; // kNoNode for a root's own object
    uint32_t root;   // index of the root the chain starts at (heap_walk.cpp)
};

class HeapGraph {
public:
    // limit: the most nodes this graph may hold. False if nothing can be mapped.
    bool init(size_t limit) noexcept;
    void reset() noexcept;

    // Adds object unless it is already a node; returns the new node's index,
    // or kNoNode if it was there or the graph is full (full() says which).
    uint32_t add(const void* object, uint32_t parent, uint32_t root) noexcept;
    uint32_t find(const void* object) const noexcept;

    HeapNode& at(uint32_t i) noexcept { return nodes_[i]; }
    const HeapNode& at(uint32_t i) const noexcept { return nodes_[i]; }
    uint32_t size() const noexcept { return static_cast<uint32_t>(count_); }
    bool full() const noexcept { return full_; }
    size_t mappedBytes() const noexcept { return nodeMap_.size() + indexMap_.size(); }

private:
    bool growNodes() noexcept;
    bool growIndex() noexcept;
    void place(const void* object, uint32_t index) noexcept;

    Mapping nodeMap_;
    Mapping indexMap_;
    HeapNode* nodes_ = nullptr;
    size_t count_ = 0;
    size_t capacity_ = 0;
    uint32_t* slots_ = nullptr; // node index + 1; 0: empty
    size_t mask_ = 0;
    size_t limit_ = 0;
    bool full_ = false;
};

} // namespace memtap_agent

#endif // MEMTAP_AGENT_HEAP_GRAPH_H
