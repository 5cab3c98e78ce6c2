// A heap walk's answer (the agent's "heap-walk-result", protocol.h) read
// into plain data, and how `memtap refs` and `memtap types` show it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace memtap::report {

// One reference of a chain, root first (protocol.h "link" lines).
struct HeapLink {
    // Roots: module, local, gc (the gc's garbage list), and for what no root
    // reaches: cycle (only reachable from each other), external (held from
    // outside what the walk follows), unreached (not classified). Then:
    // dict, attr, key, key-of, item, member, cell, ref.
    std::string kind;
    std::string name;   // module name, local description, attribute or key
    std::string type;   // the reached object's type, "module.Name"
    std::string object; // a module's or a class's own name, else empty
};

struct HeapChain {
    int64_t objects = 0;
    int64_t bytes = 0;
    size_t shared = 0; // leading links that are the same objects for all of them
    std::vector<HeapLink> links;
};

struct HeapTypeRow {
    std::string name;
    int64_t count = 0;
    int64_t bytes = 0; // estimated from the type's sizes (protocol.h)
};

struct HeapWalk {
    std::map<std::string, std::string> values; // every "KEY VALUE" line
    std::vector<HeapTypeRow> types;
    std::vector<HeapTypeRow> cycles;     // types of the objects in unreachable cycles
    std::vector<HeapTypeRow> cycleSites; // their allocation sites (name: FILE:LINE)
    std::vector<HeapChain> chains;

    std::string text(const std::string& key) const; // the value of KEY, "" when absent
    std::string state() const;                      // heap_walk_state, "none" when absent
    std::string result() const;                     // walk_result, "" before the walk is done
    int64_t number(const std::string& key) const;   // 0 when absent or not a number

    // Error(Failure) naming the line when a chain, link or type line does
    // not read as protocol.h says.
    static HeapWalk parseOrThrow(std::string_view payload);
};

// "helpers.audit.Audit.entries": the chain as a person would write it,
// up to but not including the site's object.
std::string chainPath(const HeapChain& chain);
// What holds all of the chain's objects: the deepest link they share, named
// by its owner (a module, a class, or an instance's type) and attribute,
// e.g. "_pytest.logging.LogCaptureHandler.records". Empty when they share
// nothing but the root.
std::string chainHolder(const HeapChain& chain);

struct RefsView {
    int pid = 0;
    std::string site; // as the user gave it
    bool exact = false;
    size_t top = 10;
};
std::string renderRefsText(const HeapWalk& walk, const RefsView& view);
std::string renderRefsJson(const HeapWalk& walk, const RefsView& view);

struct TypesView {
    int pid = 0;
    size_t top = 25;
    double intervalSeconds = 0; // > 0: growth between older and newer
};
// older may be null (one walk). Rows sorted by size, or by growth of size
// with two walks.
std::string renderTypesText(const HeapWalk& newer, const HeapWalk* older, const TypesView& view);
std::string renderTypesJson(const HeapWalk& newer, const HeapWalk* older, const TypesView& view);

// What the walk found on the gc's lists beyond the roots, one line; or why
// the lists were not read.
std::string gcListsText(const HeapWalk& walk);

// "2,041,234 objects in 412 ms, 48.0 MiB of memtap's memory in the target,
// given back": the walk's own cost, for the summary line and the notes.
std::string walkCostText(const HeapWalk& walk);

} // namespace memtap::report
