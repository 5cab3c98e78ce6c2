// Fixed plain data shared by the report tests: two snapshots of a small
// "service" whose cache grows, and a watch screen with awkward rows (long
// paths, wide characters, shrinking sites).
#pragma once

#include <optional>
#include <string>

#include "report/snapshot.h"
#include "report/watch_screen.h"

namespace memtap::report::test {

Snapshot olderSnapshot();
Snapshot newerSnapshot();

// Source text for the fixture's files, as a sourceLine callback would return.
std::optional<std::string> fixtureSource(const std::string& file, int line);

WatchScreen fixtureWatchScreen();
// --all-workers of a uWSGI master with three workers.
WatchScreen fixtureWorkersScreen();

} // namespace memtap::report::test
