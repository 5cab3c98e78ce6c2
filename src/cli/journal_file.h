// Writing a journal (src/report/journal.h) so that it outlives both the
// target and memtap: each record goes out in one write() followed by
// fdatasync(), so a kill -9 of either, or an OOM kill, loses at most the
// record being written, which a reader then drops as incomplete.
//
// Where: by default a new journal-N.mtj in the snapshot store of the process
// (its rules: private directories, O_EXCL|O_NOFOLLOW, mode 0600); with
// `record -o FILE`, that file, which must be new, empty, or a journal of the
// same process instance (then appended to, a torn last record cut off
// first), and is opened without following a symlink and used only if it is
// the caller's own regular file that others cannot write.
//
// Size: a record holds a snapshot (two when the peak moved), so a large
// exact-mode process watched every 2 s can write a gigabyte an hour, often
// into a tmpfs (RAM). Each journal has a limit; the record that would cross
// it is not written: an end record says so instead, and nothing follows.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/unique_fd.h"
#include "cli/snapshot_store.h"
#include "inject/agent_client.h"
#include "report/journal.h"

namespace memtap::cli {

// Default limits: `record` is an explicit request; watch's journal is a side effect.
inline constexpr uint64_t kRecordJournalLimit = 1ull << 30;
inline constexpr uint64_t kWatchJournalLimit = 256ull << 20;

class JournalFile {
public:
    // A new journal in the store of `instance`.
    static JournalFile createInStoreOrThrow(const ProcessInstance& instance);
    // `-o FILE`; Error(Failure) naming the file and what it is otherwise.
    static JournalFile openOutputOrThrow(const std::string& path, const ProcessInstance& instance);

    JournalFile(JournalFile&&) = default;
    JournalFile& operator=(JournalFile&&) = default;

    const std::string& path() const { return path_; }
    // Whether the peak breakdown should go in the next sample (the encoder's rule).
    bool wantsPeak(int64_t peakTracedBytes, uint64_t peakUnixMs) const {
        return encoder_.wantsPeak(peakTracedBytes, peakUnixMs);
    }
    void setLimit(uint64_t maxBytes) { limit_ = maxBytes; }
    // Each writes one record with one write() and fdatasync()s it.
    void startOrThrow(const report::JournalHeader& header);
    // False, with an end record saying so, when the sample would take the
    // file past its limit; then the journal is full and takes nothing more.
    [[nodiscard]] bool appendSampleOrThrow(const report::JournalSample& sample);
    // Nothing once full (the end record is written already).
    void endOrThrow(const report::JournalEnd& end);
    bool full() const { return full_; }
    uint64_t limit() const { return limit_; }
    // Removes a file this object created when no header was written (the
    // attach failed): nothing half-made is left behind.
    void removeIfUnused();

private:
    JournalFile(std::string path, UniqueFd fd, report::JournalEncoder encoder, bool fresh, bool created,
                uint64_t size)
        : path_(std::move(path)), fd_(std::move(fd)), encoder_(encoder), fresh_(fresh),
          created_(created), size_(size) {}
    void writeOrThrow(std::string_view bytes);

    std::string path_;
    UniqueFd fd_;
    report::JournalEncoder encoder_;
    bool fresh_;   // empty: the magic line goes before the first header
    bool created_; // made by us (removeIfUnused may unlink it)
    bool started_ = false;
    bool full_ = false;
    uint64_t size_;                        // bytes in the file
    uint64_t limit_ = kRecordJournalLimit; // setLimit
    std::optional<SnapshotStore> store_;   // for a journal in the store: where to remove it
    std::string nameInStore_;
};

// The journal figures of one interval from what the agent and /proc say.
report::JournalSample journalSampleFrom(const inject::AgentStatus& agentStatus, int64_t rssBytes,
                                        uint64_t unixMs, report::Snapshot now,
                                        std::optional<report::Snapshot> peak);
report::JournalHeader journalHeaderFrom(const ProcessInstance& instance,
                                        const inject::AgentStatus& agentStatus,
                                        const std::string& python, uint64_t intervalMs,
                                        const std::string& recorder);
// Wall clock now, in unix ms.
uint64_t unixNowMs();

} // namespace memtap::cli
