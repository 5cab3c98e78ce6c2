#include "agent/heap_graph.h"

#include "agent/tables.h"

#include <cstring>

namespace memtap_agent {
namespace {

constexpr size_t kInitialNodes = size_t{1} << 16;

inline size_t
home(const void* object, size_t mask) {
    return mix64(reinterpret_cast<uintptr_t>(object)) & mask;
}

} // namespace

bool
HeapGraph::init(size_t limit) noexcept {
    reset();
    limit_ = limit < UINT32_MAX ? limit : UINT32_MAX - 1;
    capacity_ = kInitialNodes;
    if (!nodeMap_.allocate(capacity_ * sizeof(HeapNode)) ||
        !indexMap_.allocate(2 * capacity_ * sizeof(uint32_t))) {
        reset();
        return false;
    }
    nodes_ = static_cast<HeapNode*>(nodeMap_.get());
    slots_ = static_cast<uint32_t*>(indexMap_.get());
    mask_ = 2 * capacity_ - 1;
    return true;
}

void
HeapGraph::reset() noexcept {
    nodeMap_.reset();
    indexMap_.reset();
    nodes_ = nullptr;
    slots_ = nullptr;
    count_ = capacity_ = mask_ = limit_ = 0;
    full_ = false;
}

uint32_t
HeapGraph::find(const void* object) const noexcept {
    for (size_t i = home(object, mask_);; i = (i + 1) & mask_) {
        uint32_t slot = slots_[i];
        if (slot == 0) {
            return kNoNode;
        }
        if (nodes_[slot - 1].object == object) {
            return slot - 1;
        }
    }
}

void
HeapGraph::place(const void* object, uint32_t index) noexcept {
    size_t i = home(object, mask_);
    while (slots_[i] != 0) {
        i = (i + 1) & mask_;
    }
    slots_[i] = index + 1;
}

bool
HeapGraph::growNodes() noexcept {
    Mapping bigger;
    size_t capacity = capacity_ * 2;
    if (!bigger.allocate(capacity * sizeof(HeapNode))) {
        return false;
    }
    std::memcpy(bigger.get(), nodes_, count_ * sizeof(HeapNode));
    nodeMap_ = static_cast<Mapping&&>(bigger);
    nodes_ = static_cast<HeapNode*>(nodeMap_.get());
    capacity_ = capacity;
    return true;
}

bool
HeapGraph::growIndex() noexcept {
    Mapping bigger;
    size_t slots = (mask_ + 1) * 2;
    if (!bigger.allocate(slots * sizeof(uint32_t))) {
        return false;
    }
    indexMap_ = static_cast<Mapping&&>(bigger);
    slots_ = static_cast<uint32_t*>(indexMap_.get());
    mask_ = slots - 1;
    for (size_t i = 0; i < count_; ++i) {
        place(nodes_[i].object, static_cast<uint32_t>(i));
    }
    return true;
}

uint32_t
HeapGraph::add(const void* object, uint32_t parent, uint32_t root) noexcept {
    size_t i = home(object, mask_);
    for (;; i = (i + 1) & mask_) {
        uint32_t slot = slots_[i];
        if (slot == 0) {
            break;
        }
        if (nodes_[slot - 1].object == object) {
            return kNoNode;
        }
    }
    if (count_ >= limit_ || (count_ == capacity_ && !growNodes())) {
        full_ = true;
        return kNoNode;
    }
    auto index = static_cast<uint32_t>(count_);
    nodes_[count_++] = HeapNode{object, parent, root};
    if (count_ * 2 > mask_ + 1) {
        if (!growIndex()) {
            --count_;
            full_ = true;
            return kNoNode;
        }
    } else {
        slots_[i] = index + 1;
        return index;
    }
    return index;
}

} // namespace memtap_agent
