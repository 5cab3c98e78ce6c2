// `memtap diff --format html`: one self-contained HTML file (no network at
// view time) with a flamegraph of the call tree (flame_tree.h) beside the
// tracemalloc-style table. Boxes are as wide as what NEW holds under them
// (or, switched on the page, as their growth); red boxes grew since OLD,
// blue ones shrank. Click to zoom, type to search. Script and style are
// inline; the tree is embedded as JSON.
#pragma once

#include <cstddef>
#include <string>

#include "report/snapshot.h"

namespace memtap::report {

struct HtmlReportOptions {
    std::string title; // e.g. "process 4242: s1 -> s2"
    std::string oldName = "old";
    std::string newName = "new";
    size_t tableRows = 50; // rows of the lineno table
};

std::string renderHtmlFlamegraph(const Snapshot& older, const Snapshot& newer,
                                 const HtmlReportOptions& options);

} // namespace memtap::report
