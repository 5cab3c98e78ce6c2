// What `status` reports: the agent's own figures plus what the host reads
// from /proc (RSS), in one plain struct that text and JSON are printed from.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace memtap::cli {

struct TargetStatus {
    pid_t pid = 0;
    bool attached = false;
    std::string python;
    int64_t rssBytes = 0;
    std::map<std::string, std::string> agent; // the agent's "key value" lines
};

// Error(NotSupported) if the process runs no supported CPython.
TargetStatus readTargetStatusOrThrow(pid_t pid);
std::map<std::string, std::string> parseKeyValueLines(const std::string& payload);
int64_t readRssBytes(pid_t pid);

std::string renderStatusJson(const TargetStatus& status);
std::string renderStatusText(const TargetStatus& status);

} // namespace memtap::cli
