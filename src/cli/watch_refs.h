// Key `r` in watch: `memtap refs` for the selected row, armed without
// waiting and looked at between redraws, so keys and reports go on while the
// target gets to it (an idle worker only at its next request). Its answer
// replaces the table until Enter or Esc.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "report/diff.h"
#include "report/watch_screen.h"

namespace memtap::cli {

class WatchRefs {
public:
    WatchRefs() = default;
    WatchRefs(const WatchRefs&) = delete;
    WatchRefs& operator=(const WatchRefs&) = delete;
    ~WatchRefs() { cancel(); }

    // Arms a walk for the row's site (its most recent frame); what the status
    // line says about it, including why it cannot (a row with no line).
    std::string start(pid_t pid, const report::WatchRow& row, report::GroupBy by, bool exact);
    bool pending() const { return pending_.has_value(); }
    // Looks at the pending walk (at most every 100 ms). True when the panel
    // or *statusLine changed.
    bool poll(std::string* statusLine);
    // The answer, rendered as `memtap refs` prints it; empty when none.
    const std::string& panel() const { return panel_; }
    void closePanel() { panel_.clear(); }
    // Disarms a pending walk (quitting, or a new `r`).
    void cancel();

private:
    using Clock = std::chrono::steady_clock;
    struct Pending {
        pid_t pid;
        uint64_t sequence;
        std::string site;
        bool exact;
        Clock::time_point armed;
    };
    std::optional<Pending> pending_;
    std::string panel_;
    Clock::time_point lastPoll_{};
};

} // namespace memtap::cli
