#include "cli/watch_refs.h"

#include <fmt/format.h>

#include "base/error.h"
#include "cli/heap_walk_client.h"

namespace memtap::cli {

namespace {

constexpr auto kPollEvery = std::chrono::milliseconds(100);
// As `memtap refs --timeout`: how long a thread has to start the walk.
constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr size_t kChainsShown = 5;

} // namespace

std::string
WatchRefs::start(pid_t pid, const report::WatchRow& row, report::GroupBy by, bool exact) {
    // refs matches a site against the most recent frame: rows grouped by
    // line or by traceback have it first; files, threads and users do not.
    if ((by != report::GroupBy::Lineno && by != report::GroupBy::Traceback) || row.key.empty() ||
        !row.label.empty() || row.key.front().line <= 0) {
        return "r shows what holds a line's objects: group by line (t) and select a row";
    }
    const report::Frame& top = row.key.front();
    std::string site = fmt::format("{}:{}", top.file, top.line);
    cancel();
    panel_.clear();
    try {
        uint64_t sequence = armHeapWalkOrThrow(
            pid, refsRequest(parseSiteOrThrow(site), kDefaultMaxObjects, kChainsShown));
        pending_ = Pending{pid, sequence, site, exact, Clock::now()};
        lastPoll_ = Clock::time_point{};
    } catch (const Error& e) {
        return fmt::format("refs {}: {}", site, e.what());
    }
    return fmt::format("refs {}: waiting for a thread holding the GIL to walk the heap...", site);
}

bool
WatchRefs::poll(std::string* statusLine) {
    if (!pending_ || Clock::now() - lastPoll_ < kPollEvery) {
        return false;
    }
    lastPoll_ = Clock::now();
    const Pending p = *pending_;
    try {
        report::HeapWalk walk = pollHeapWalkOrThrow(p.pid, p.sequence);
        if (walk.state() == "done") {
            pending_.reset();
            panel_ =
                report::renderRefsText(walk, report::RefsView{p.pid, p.site, p.exact, kChainsShown});
            *statusLine = fmt::format("refs {}: {}", p.site, report::walkCostText(walk));
            return true;
        }
        if (walk.state() == "armed" && Clock::now() - p.armed >= kStartTimeout) {
            cancel();
            *statusLine = fmt::format(
                "refs {}: no thread holding the GIL allocated within {} s; disarmed (an idle "
                "worker walks at its next request: press r again then)",
                p.site, std::chrono::duration_cast<std::chrono::seconds>(kStartTimeout).count());
            return true;
        }
    } catch (const Error& e) {
        pending_.reset();
        *statusLine = fmt::format("refs {}: {}", p.site, e.what());
        return true;
    }
    return false;
}

void
WatchRefs::cancel() {
    if (pending_) {
        cancelHeapWalkQuietly(pending_->pid);
        pending_.reset();
    }
}

} // namespace memtap::cli
