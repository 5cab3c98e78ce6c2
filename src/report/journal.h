// The journal: evidence that outlives the process. `memtap record` and
// `memtap watch` append one record per interval (figures, the "now" snapshot,
// the peak breakdown when the peak moved), so that a process killed by the
// OOM killer leaves behind all it showed up to its last interval. Plain data
// and bytes only: where the file lives and how it is written is the CLI's
// business (src/cli/journal_file.h).
//
// File format, version 1 (all text but the framing is line-oriented):
//   memtap-journal 1\n
//   then records, each one frame line and LENGTH bytes of payload:
//   mtj SEQ TYPE LENGTH PAYLOAD_CRC FRAME_CRC\n<payload>
// SEQ counts records from 1 with no gap; TYPE is "header", "sample" or
// "end" (a reader skips a well-framed record of a type it does not know);
// PAYLOAD_CRC is the CRC-32 (IEEE 802.3, the zlib/PNG one) of the payload
// and FRAME_CRC that of the frame line up to and including the space before
// it, both 8 lower-case hex digits. The frame's own checksum means a damaged
// LENGTH is found as damage, never taken for a record cut short.
//
// A writer appends each record with one write(): a writer killed mid-write
// leaves a prefix of its last record. So the last record may be torn (its
// frame line without its newline, or its payload short) or, after a machine
// crash, hold a full length of other bytes (payload checksum wrong): it is
// dropped with a note ("last record incomplete: ignored"). Anything wrong
// before the last record is damage, and reading fails naming the record.
//
// Payloads are "KEY VALUE\n" lines (unknown keys are ignored), and in sample
// records "snapshot NAME BYTES\n" followed by BYTES bytes of a snapshot in
// the protocol.h text format (src/report/snapshot.h reads and writes it, so
// a new snapshot format version is carried as it is):
//   header: pid, start_time (/proc/PID/stat field 22), python, mode,
//           sample_bytes, attached_at_unix_ms (the attach session),
//           interval_ms, started_unix_ms, recorder ("record" or "watch").
//           A second header record starts another session appended to the
//           same file (a later `memtap record -o` of the same process).
//   sample: unix_ms, rss_bytes, traced_bytes, traced_count,
//           peak_traced_bytes and peak_unix_ms (absent when the agent keeps
//           no peak), then "snapshot now" and, when the peak moved since the
//           last record that carried one, "snapshot peak".
//   end:    unix_ms, reason ("stopped", "died" or "failed"), detail (the
//           rest of the line: "killed by signal 9 (SIGKILL)", "SIGINT",
//           "--count", or what failed).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "report/snapshot.h"

namespace memtap::report {

struct JournalHeader {
    int64_t pid = 0;
    std::string startTime; // /proc/PID/stat field 22: with pid, names the process instance
    std::string python;
    std::string mode = "exact";
    uint64_t sampleBytes = 0;
    uint64_t attachedAtUnixMs = 0;
    uint64_t intervalMs = 0;
    uint64_t startedUnixMs = 0;
    std::string recorder; // "record" | "watch"
};

struct JournalSample {
    uint64_t unixMs = 0;
    int64_t rssBytes = 0;
    int64_t tracedBytes = 0;
    int64_t tracedCount = 0;
    int64_t peakTracedBytes = -1; // -1: the agent keeps no peak
    uint64_t peakUnixMs = 0;
    Snapshot now;
    std::optional<Snapshot> peak; // only in records where the peak moved
};

struct JournalEnd {
    uint64_t unixMs = 0;
    std::string reason; // "stopped" | "died" | "failed"
    std::string detail;
};

struct Journal {
    std::vector<JournalHeader> headers; // at least one; more for appended sessions
    // Per header: the index in samples of its session's first sample.
    std::vector<size_t> sessionStarts;
    std::vector<JournalSample> samples;
    std::optional<JournalEnd> end;
    std::vector<std::string> notes; // "last record incomplete: ignored"
    // Where the complete records end (a writer appending truncates a torn
    // tail to here), and the SEQ the next record takes.
    size_t completeBytes = 0;
    uint64_t nextSequence = 1;
};

inline constexpr std::string_view kJournalMagic = "memtap-journal 1\n";

// Whether `bytes` starts as a journal does (the magic line, or a prefix of
// it for a file cut short).
bool looksLikeJournal(std::string_view bytes);

// Reads a whole journal (magic line included). Error(Failure) for a file
// that is not a journal, a journal with no complete header, or damage
// before the last record: the message names the record (1-based) and its
// byte offset. Nothing is guessed.
Journal parseJournalOrThrow(std::string_view bytes);

// Encodes records one at a time, each ready for one write(). It keeps the
// sequence and the peak last written, so that the peak breakdown, as large
// as a snapshot, is carried only by records where the peak moved: a process
// past its peak then costs one snapshot per record, not two.
class JournalEncoder {
public:
    // nextSequence: 1 for a new file, Journal::nextSequence to append.
    explicit JournalEncoder(uint64_t nextSequence = 1) : next_(nextSequence) {}

    // The magic line (for a new file only) and the header record.
    std::string header(const JournalHeader& header, bool withMagic);
    // Whether a sample with this peak should carry the breakdown: the peak
    // differs from the one last carried (or none was carried yet).
    bool wantsPeak(int64_t peakTracedBytes, uint64_t peakUnixMs) const;
    // A sample record; its peak is left out unless wantsPeak says otherwise.
    std::string sample(const JournalSample& sample);
    std::string end(const JournalEnd& end);

private:
    std::string frame(std::string_view type, std::string_view payload);

    uint64_t next_;
    bool carriedPeak_ = false;
    int64_t lastPeakBytes_ = 0;
    uint64_t lastPeakUnixMs_ = 0;
};

} // namespace memtap::report
