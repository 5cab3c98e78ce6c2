// /proc/PID/maps as data. See proc(5) for the line format.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/remote_ptr.h"

namespace memtap::symbols {

struct MapEntry {
    RemotePtr start;
    RemotePtr end;
    bool readable = false;
    bool writable = false;
    bool executable = false;
    bool isPrivate = false;
    uint64_t offset = 0;
    uint64_t inode = 0;
    // As printed by the kernel, with a trailing " (deleted)" removed (see `deleted`).
    // "" for anonymous mappings; "[heap]", "[stack]", "[vdso]" ... for special ones.
    std::string path;
    bool deleted = false;

    // A mapping of a regular file: the kernel prints an absolute path and a non-zero inode.
    bool isFileBacked() const { return inode != 0 && !path.empty() && path.front() == '/'; }
};

// Parses the text of a maps file; malformed lines are skipped (the kernel does
// not print them, so they only come from tests or truncated reads).
std::vector<MapEntry> parseMaps(std::string_view text);

// Reads and parses /proc/PID/maps. Throws Error(NoSuchProcess) when the process
// does not exist and Error(PermissionDenied) with a hint when we may not read it.
std::vector<MapEntry> readMapsOrThrow(pid_t pid);

} // namespace memtap::symbols
