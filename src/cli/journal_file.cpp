#include "cli/journal_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "base/error.h"
#include "cli/target_status.h"
#include "report/text_report.h"

namespace memtap::cli {
namespace {

[[noreturn]] void
refuseOutput(const std::string& path, const std::string& why) {
    throw Error(ExitCode::Failure, fmt::format("refusing -o {}: {}", path, why),
                "give a new file name, or a journal this command wrote for the same process");
}

} // namespace

uint64_t
unixNowMs() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

JournalFile
JournalFile::createInStoreOrThrow(const ProcessInstance& instance) {
    SnapshotStore store = SnapshotStore::openOrThrow(StoreLocation::fromEnvironment(), instance, true);
    auto [name, fd] = store.createJournalOrThrow();
    JournalFile file(fmt::format("{}/{}", store.directory(), name), std::move(fd),
                     report::JournalEncoder(), true, true, 0);
    file.store_.emplace(std::move(store));
    file.nameInStore_ = name;
    return file;
}

JournalFile
JournalFile::openOutputOrThrow(const std::string& path, const ProcessInstance& instance) {
    // No O_CREAT yet: an existing file is judged before anything is written to it.
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    bool created = false;
    if (!fd && errno == ENOENT) {
        fd.reset(
            ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        created = fd.valid();
    }
    if (!fd) {
        int err = errno;
        if (err == ELOOP) {
            refuseOutput(path,
                         "it is a symbolic link (memtap writes journals only to files it can check)");
        }
        throw Error(ExitCode::Failure, describeErrno(fmt::format("opening -o {}", path), err),
                    "check the path and its directory's permissions");
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        throw Error(ExitCode::Failure, describeErrno(fmt::format("checking {}", path), errno));
    }
    if (!S_ISREG(st.st_mode)) {
        refuseOutput(path, "it is not a regular file");
    }
    if (st.st_uid != ::geteuid()) {
        refuseOutput(path, fmt::format("it belongs to uid {}, and memtap runs as uid {}", st.st_uid,
                                       ::geteuid()));
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        refuseOutput(path,
                     fmt::format("it is writable by group or others (mode {:04o})", st.st_mode & 07777));
    }
    if (st.st_size == 0) {
        return JournalFile(path, std::move(fd), report::JournalEncoder(), true, created, 0);
    }
    std::string bytes = readAllOrThrow(fd.get(), path);
    if (!report::looksLikeJournal(bytes)) {
        refuseOutput(path, "it exists and is not a memtap journal");
    }
    report::Journal journal;
    try {
        journal = report::parseJournalOrThrow(bytes);
    } catch (const Error& e) {
        refuseOutput(path, fmt::format("it cannot be appended to: {}", e.what()));
    }
    const report::JournalHeader& first = journal.headers.front();
    if (first.pid != instance.pid || first.startTime != instance.startTime) {
        refuseOutput(path,
                     fmt::format("it is the journal of another process (PID {}, started at tick {}; "
                                 "this one is PID {}, started at tick {})",
                                 first.pid, first.startTime, instance.pid, instance.startTime));
    }
    if (journal.completeBytes < bytes.size()) {
        // A torn last record would sit in the middle once more are appended,
        // and be read as damage: cut it off, as the reader would ignore it.
        if (::ftruncate(fd.get(), static_cast<off_t>(journal.completeBytes)) != 0) {
            throw Error(ExitCode::Failure, describeErrno(fmt::format("truncating {}", path), errno));
        }
        std::fprintf(stderr, "memtap: %s: its incomplete last record was removed before appending\n",
                     path.c_str());
    }
    return JournalFile(path, std::move(fd), report::JournalEncoder(journal.nextSequence), false, false,
                       journal.completeBytes);
}

void
JournalFile::writeOrThrow(std::string_view bytes) {
    // One write() for the record: a writer killed mid-way leaves a prefix of
    // it, never a mix. A short write (a full disk) is retried for the rest,
    // whose failure then leaves a torn record the reader ignores.
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd_.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            throw Error(ExitCode::Failure,
                        describeErrno(fmt::format("writing the journal {}", path_), errno),
                        "free some space, or give another file with -o");
        }
        done += static_cast<size_t>(n);
        size_ += static_cast<uint64_t>(n);
    }
    // On disk before the next interval: an OOM kill or power loss after this
    // loses none of it. (On tmpfs this returns at once; the data is in memory
    // the kernel keeps when a process dies.)
    if (::fdatasync(fd_.get()) != 0 && errno != EINVAL && errno != EROFS) {
        throw Error(ExitCode::Failure,
                    describeErrno(fmt::format("syncing the journal {}", path_), errno));
    }
}

void
JournalFile::startOrThrow(const report::JournalHeader& header) {
    writeOrThrow(encoder_.header(header, fresh_));
    fresh_ = false;
    started_ = true;
}

bool
JournalFile::appendSampleOrThrow(const report::JournalSample& sample) {
    if (full_) {
        return false;
    }
    // The encoder is copied so that a record not written leaves it as it
    // was (the sequence, the peak last carried) for the end record.
    report::JournalEncoder trial = encoder_;
    std::string record = trial.sample(sample);
    // Room is kept for the end record (well under 1 KiB).
    if (size_ + record.size() + 1024 > limit_) {
        writeOrThrow(encoder_.end(
            report::JournalEnd{unixNowMs(), "stopped",
                               fmt::format("the journal reached its size limit ({})",
                                           report::formatSize(static_cast<double>(limit_), false))}));
        full_ = true;
        return false;
    }
    encoder_ = trial;
    writeOrThrow(record);
    return true;
}

void
JournalFile::endOrThrow(const report::JournalEnd& end) {
    if (!full_) {
        writeOrThrow(encoder_.end(end));
    }
}

void
JournalFile::removeIfUnused() {
    if (started_ || !created_) {
        return;
    }
    if (store_) {
        store_->removeJournal(nameInStore_);
    } else {
        ::unlink(path_.c_str());
    }
    created_ = false;
}

report::JournalSample
journalSampleFrom(const inject::AgentStatus& agentStatus, int64_t rssBytes, uint64_t unixMs,
                  report::Snapshot now, std::optional<report::Snapshot> peak) {
    report::JournalSample sample;
    sample.unixMs = unixMs;
    sample.rssBytes = rssBytes;
    sample.tracedBytes = agentStatus.tracedBytes;
    sample.tracedCount = agentStatus.tracedCount;
    sample.peakTracedBytes = agentStatus.peakTracedBytes.value_or(-1);
    sample.peakUnixMs = agentStatus.peakUnixMs;
    sample.now = std::move(now);
    sample.peak = std::move(peak);
    return sample;
}

report::JournalHeader
journalHeaderFrom(const ProcessInstance& instance, const inject::AgentStatus& agentStatus,
                  const std::string& python, uint64_t intervalMs, const std::string& recorder) {
    report::JournalHeader header;
    header.pid = instance.pid;
    header.startTime = instance.startTime;
    header.python = agentStatus.python.empty() ? python : agentStatus.python;
    header.mode = agentStatus.exact ? "exact" : "sampled";
    header.sampleBytes = static_cast<uint64_t>(std::max<int64_t>(0, agentStatus.sampleBytes));
    header.attachedAtUnixMs = agentStatus.attachedAtUnixMs;
    header.intervalMs = intervalMs;
    header.startedUnixMs = unixNowMs();
    header.recorder = recorder;
    return header;
}

} // namespace memtap::cli
