#include "attach/remote_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/error.h"
#include "base/permission_hint.h"

namespace memtap::attach {

RemoteMemory
RemoteMemory::openOrThrow(pid_t pid) {
    int fd = ::open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT || err == ESRCH) {
            throw Error(ExitCode::NoSuchProcess, fmt::format("no process with PID {}", pid));
        }
        if (err == EACCES || err == EPERM) {
            throw Error(ExitCode::PermissionDenied,
                        describeErrno(fmt::format("cannot open the memory of process {}", pid), err),
                        processAccessHint());
        }
        throw Error(ExitCode::Failure, describeErrno(fmt::format("open /proc/{}/mem", pid), err));
    }
    return RemoteMemory(pid, UniqueFd(fd));
}

std::optional<RemoteMemory>
RemoteMemory::tryOpenForReading(pid_t pid) {
    int fd = ::open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return std::nullopt;
    }
    return RemoteMemory(pid, UniqueFd(fd));
}

bool
RemoteMemory::tryRead(RemotePtr address, void* buffer, size_t size) const {
    auto* out = static_cast<char*>(buffer);
    size_t done = 0;
    while (done < size) {
        ssize_t n =
            ::pread(fd_.get(), out + done, size - done, static_cast<off_t>(address.value() + done));
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        done += static_cast<size_t>(n);
    }
    return true;
}

void
RemoteMemory::readOrThrow(RemotePtr address, void* buffer, size_t size) const {
    if (!tryRead(address, buffer, size)) {
        throw Error(ExitCode::Failure, describeErrno(fmt::format("reading {} bytes at {} in process {}",
                                                                 size, address, pid_),
                                                     errno));
    }
}

void
RemoteMemory::writeOrThrow(RemotePtr address, const void* data, size_t size) const {
    auto* in = static_cast<const char*>(data);
    size_t done = 0;
    while (done < size) {
        ssize_t n =
            ::pwrite(fd_.get(), in + done, size - done, static_cast<off_t>(address.value() + done));
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            throw Error(
                ExitCode::Failure,
                describeErrno(fmt::format("writing {} bytes at {} in process {}", size, address, pid_),
                              n == 0 ? EIO : errno));
        }
        done += static_cast<size_t>(n);
    }
}

std::string
RemoteMemory::readCStringOrThrow(RemotePtr address, size_t maxLength) const {
    std::string result;
    char chunk[256];
    while (result.size() < maxLength) {
        // Read up to the end of the page so a string near an unmapped page still reads.
        size_t toPageEnd = 4096 - (address.value() + result.size()) % 4096;
        size_t want = std::min({sizeof(chunk), toPageEnd, maxLength - result.size()});
        readOrThrow(address + result.size(), chunk, want);
        for (size_t i = 0; i < want; ++i) {
            if (chunk[i] == '\0') {
                return result;
            }
            result.push_back(chunk[i]);
        }
    }
    return result;
}

} // namespace memtap::attach
