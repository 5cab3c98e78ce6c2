#include "cli/heap_walk_client.h"

#include <chrono>
#include <utility>

#include "base/error.h"
#include "inject/agent_client.h"

namespace memtap::cli {

namespace {

constexpr std::chrono::milliseconds kRequestTimeout{2000};
// A finished walk's reply holds every type: allow for a slow reader.
constexpr std::chrono::milliseconds kResultTimeout{10000};
// protocol.h: a request line holds at most 255 bytes; the agent keeps 199 of FILE.
constexpr size_t kMaxFileBytes = 199;

} // namespace

Site
parseSiteOrThrow(const std::string& text) {
    std::string s = text;
    size_t start = s.find_first_not_of(" \t");
    s = start == std::string::npos ? "" : s.substr(start);
    if (size_t cut = s.find(": "); cut != std::string::npos) {
        s = s.substr(0, cut);
    }
    if (size_t tag = s.find(" ["); tag != std::string::npos) {
        s = s.substr(0, tag);
    }
    size_t colon = s.rfind(':');
    auto bad = [&] {
        return Error(
            ExitCode::Usage, fmt::format("bad SITE '{}': want FILE:LINE, e.g. app.py:12", text),
            "copy it from `memtap diff` or `memtap watch` (FILE may be the file's name or a tail "
            "of its path)");
    };
    if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
        throw bad();
    }
    Site site;
    site.file = s.substr(0, colon);
    uint64_t line = 0;
    for (char c : s.substr(colon + 1)) {
        if (c < '0' || c > '9' || line > 100'000'000) {
            throw bad();
        }
        line = line * 10 + static_cast<uint64_t>(c - '0');
    }
    if (line == 0) {
        throw bad();
    }
    site.line = static_cast<int>(line);
    if (site.file.size() > kMaxFileBytes) {
        // The agent matches a path tail at a '/': keep the longest tail that fits.
        size_t slash = site.file.find('/', site.file.size() - kMaxFileBytes);
        if (slash == std::string::npos) {
            throw Error(ExitCode::Usage, "SITE's file name is longer than 199 bytes",
                        "give a shorter tail of its path");
        }
        site.file = site.file.substr(slash + 1);
    }
    return site;
}

std::string
refsRequest(const Site& site, uint64_t maxObjects, size_t top) {
    return fmt::format("refs {} {} {} {}", maxObjects, top, site.line, site.file);
}

std::string
typesRequest(uint64_t maxObjects) {
    return fmt::format("types {}", maxObjects);
}

uint64_t
armHeapWalkOrThrow(pid_t pid, const std::string& request) {
    try {
        return inject::AgentClient::connectOrThrow(pid, attachHint(pid))
            .armHeapWalkOrThrow(request, kRequestTimeout);
    } catch (const Error& e) {
        std::string what = e.what();
        if (what.find("unknown command") != std::string::npos) {
            throw Error(ExitCode::NotSupported,
                        fmt::format("the agent in process {} predates heap walks", pid),
                        fmt::format("`memtap detach {}` and attach again with this memtap", pid));
        }
        if (what.find("busy") != std::string::npos) {
            throw Error(ExitCode::Failure,
                        fmt::format("another heap walk is armed or running in process {}", pid),
                        "wait for the other memtap refs/types to finish, then try again");
        }
        throw;
    }
}

report::HeapWalk
pollHeapWalkOrThrow(pid_t pid, uint64_t sequence) {
    auto client = inject::AgentClient::tryConnect(pid);
    if (!client) {
        throw Error(ExitCode::NotAttached,
                    fmt::format("the agent of process {} went away during the heap walk", pid),
                    "it was detached, or the process exited");
    }
    report::HeapWalk walk =
        report::HeapWalk::parseOrThrow(std::move(*client).heapWalkResultOrThrow(kResultTimeout));
    if (static_cast<uint64_t>(walk.number("heap_walk_requested")) != sequence) {
        throw Error(ExitCode::Failure, "the heap walk was replaced by another memtap's request");
    }
    std::string state = walk.state();
    if (state == "cancelled") {
        throw Error(ExitCode::Failure, "the heap walk was cancelled in the target (a detach?)");
    }
    if (state == "done" && walk.result() == "unsupported" && !walk.text("walk_note").empty()) {
        throw Error(ExitCode::NotSupported, fmt::format("process {}: {}", pid, walk.text("walk_note")));
    }
    if (state == "done" && walk.result() == "unsupported") {
        throw Error(ExitCode::NotSupported,
                    fmt::format("process {}'s interpreter cannot be walked: memtap reads no frames of "
                                "this version (see `memtap status`)",
                                pid));
    }
    if (state == "done" && walk.result() == "no-memory") {
        throw Error(ExitCode::Failure, "the heap walk could not map its tables in the target",
                    "lower --max-objects");
    }
    return walk;
}

void
cancelHeapWalkQuietly(pid_t pid) {
    try {
        if (auto client = inject::AgentClient::tryConnect(pid)) {
            std::move(*client).cancelHeapWalkOrThrow(kRequestTimeout);
        }
    } catch (const Error&) {
        // The agent went away (detach, exit): nothing of the walk is left.
    }
}

std::string
attachHint(pid_t pid) {
    return fmt::format("attach first with `memtap attach {}` (add --exact to see every object)", pid);
}

} // namespace memtap::cli
