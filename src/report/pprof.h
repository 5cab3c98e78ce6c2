// `memtap diff --format pprof`: the diff as a pprof profile (github.com/google/
// pprof, proto/profile.proto), gzip'd as `go tool pprof`, Pyroscope and Parca
// read it. One sample per traceback, with four values:
//   inuse_space/bytes, inuse_objects/count  what NEW holds
//   growth_space/bytes, growth_objects/count  NEW minus OLD (may be negative)
// growth_space is the default sample type. Locations are the traceback's
// frames, innermost first as the format wants; a function is a (name, file)
// pair and a location one line of it.
#pragma once

#include <string>

#include "report/snapshot.h"

namespace memtap::report {

struct PprofOptions {
    std::string oldName = "old";
    std::string newName = "new";
};

// The serialized Profile message, not compressed.
std::string encodePprofProfile(const Snapshot& older, const Snapshot& newer,
                               const PprofOptions& options);
// The same, gzip'd: the bytes of a .pb.gz file.
std::string renderPprof(const Snapshot& older, const Snapshot& newer, const PprofOptions& options);

} // namespace memtap::report
