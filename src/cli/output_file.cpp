#include "cli/output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/error.h"

namespace memtap::cli {
namespace {

[[noreturn]] void
failOrThrow(const std::string& what, const std::string& path, int err) {
    throw Error(ExitCode::Failure, fmt::format("cannot {} {}: {}", what, path, std::strerror(err)),
                "choose a path in a directory you can write, with space left");
}

} // namespace

OutputFile
OutputFile::createOrThrow(const std::string& path) {
    if (path.empty()) {
        throw Error(ExitCode::Usage, "the output path is empty", "give a file name to -o");
    }
    std::string temp = fmt::format("{}.tmp-memtap-{}", path, ::getpid());
    // O_EXCL: never write through a file or symlink someone else put there.
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        failOrThrow("create a file next to", path, errno);
    }
    return OutputFile(path, std::move(temp), UniqueFd(fd));
}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : path_(std::move(other.path_)), temp_(std::exchange(other.temp_, {})), fd_(std::move(other.fd_)) {}

OutputFile::~OutputFile() {
    if (!temp_.empty()) {
        ::unlink(temp_.c_str());
    }
}

void
OutputFile::commitOrThrow(std::string_view data) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd_.get(), data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            failOrThrow("write", path_, n < 0 ? errno : EIO);
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd_.get()) != 0) {
        failOrThrow("write", path_, errno);
    }
    int fd = fd_.release();
    if (::close(fd) != 0) {
        failOrThrow("write", path_, errno);
    }
    if (::rename(temp_.c_str(), path_.c_str()) != 0) {
        failOrThrow("rename the finished report onto", path_, errno);
    }
    temp_.clear();
}

} // namespace memtap::cli
