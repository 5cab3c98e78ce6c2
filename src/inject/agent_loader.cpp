#include "inject/agent_loader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <functional>
#include <random>

#include <spdlog/spdlog.h>

#include "attach/proc.h"
#include "base/error.h"
#include "base/unique_fd.h"
#include "inject/agent_image.h"
#include "inject/scratch_stub.h"
#include "symbols/proc_maps.h"

namespace memtap::inject {
namespace {

using std::chrono::milliseconds;

constexpr uint64_t kPathOffset = 256; // the dlopen path, after the memfd name

// Undo one change on the borrowed thread when leaving scope.
class RemoteUndo {
public:
    RemoteUndo(pid_t pid, std::function<void()> undo) : pid_(pid), undo_(std::move(undo)) {}
    ~RemoteUndo() {
        try {
            undo_();
        } catch (const std::exception& e) {
            // A target that died meanwhile is the real cause, said by the caller.
            if (::kill(pid_, 0) == 0) {
                spdlog::error("cleanup in the target failed: {}", e.what());
            }
        }
    }
    RemoteUndo(const RemoteUndo&) = delete;
    RemoteUndo& operator=(const RemoteUndo&) = delete;

private:
    pid_t pid_;
    std::function<void()> undo_;
};

// dlopen's handle is the library's struct link_map (<link.h>: l_addr, then
// l_name, a char* the loader allocated for exactly the path it was given).
void
renameLoadedLibrary(const attach::RemoteMemory& memory, RemotePtr linkMap, const std::string& loadedPath,
                    const std::string& newName) {
    auto namePointer = RemotePtr(memory.readOrThrow<uint64_t>(linkMap + 8));
    if (namePointer.isNull() || newName.size() > loadedPath.size() ||
        memory.readCStringOrThrow(namePointer, loadedPath.size() + 1) != loadedPath) {
        spdlog::warn("could not rename the agent in the loader's list; debuggers may see {}",
                     loadedPath);
        return;
    }
    std::string padded = newName;
    padded.resize(loadedPath.size() + 1, '\0');
    memory.writeOrThrow(namePointer, padded.data(), padded.size());
}

RemotePtr
dlopenOrThrow(HijackedThread& hijacked, pid_t pid, const attach::RemoteMemory& memory,
              const symbols::ProcessModules& modules, const std::string& path,
              std::chrono::milliseconds timeout, uint64_t& handle) {
    const symbols::Module* libc = modules.libc();
    RemotePtr pathAddress = hijacked.scratch() + kScratchStringsOffset + kPathOffset;
    memory.writeOrThrow(pathAddress, path.c_str(), path.size() + 1);
    handle = hijacked.callOrThrow(modules.resolveOrThrow(*libc, "dlopen"),
                                  {pathAddress.value(), RTLD_NOW}, timeout, "dlopen");
    if (handle == 0) {
        uint64_t message = hijacked.callOrThrow(modules.resolveOrThrow(*libc, "dlerror"), {},
                                                milliseconds(2000), "dlerror");
        std::string reason = message ? memory.readCStringOrThrow(RemotePtr(message), 512) : "unknown";
        throw Error(ExitCode::Failure,
                    fmt::format("process {} could not load the agent: {}", pid, reason));
    }
    auto base = findLoadedAgent(pid);
    if (!base) {
        throw Error(ExitCode::Failure, "the agent was loaded but its mapping is not in /proc/PID/maps");
    }
    return *base;
}

// memfd delivery; nullopt when the kernel refuses memfd_create (fall back).
std::optional<RemotePtr>
tryLoadThroughMemfd(HijackedThread& hijacked, pid_t pid, const attach::RemoteMemory& memory,
                    const symbols::ProcessModules& modules, std::chrono::milliseconds timeout) {
    const auto& image = agentImageInfoOrThrow();
    RemotePtr name = hijacked.scratch() + kScratchStringsOffset;
    memory.writeOrThrow(name, image.memfdName.c_str(), image.memfdName.size() + 1);
    hijacked.setFdToCloseOrThrow(-1, true); // if we die, the stub closes what this returns
    int64_t memfd = hijacked.syscallOrThrow(SYS_memfd_create, {name.value(), MFD_CLOEXEC});
    hijacked.setFdToCloseOrThrow(memfd >= 0 ? static_cast<int>(memfd) : -1);
    if (memfd == -EPERM || memfd == -ENOSYS || memfd == -EACCES) {
        spdlog::debug("memfd_create refused in process {} ({}); delivering through a file", pid, memfd);
        return std::nullopt;
    }
    if (memfd < 0) {
        throw Error(ExitCode::Failure,
                    describeErrno("memfd_create in the target", static_cast<int>(-memfd)));
    }
    RemoteUndo closeMemfd(pid, [&hijacked, memfd] {
        // Forget it first: closing twice could close a number reused meanwhile.
        hijacked.setFdToCloseOrThrow(-1);
        hijacked.syscallOrThrow(SYS_close, {static_cast<uint64_t>(memfd)});
    });
    {
        // The memfd belongs to the target; we fill it through its /proc entry.
        UniqueFd out(::open(fmt::format("/proc/{}/fd/{}", pid, memfd).c_str(), O_WRONLY | O_CLOEXEC));
        if (!out) {
            throw Error(ExitCode::Failure, describeErrno("opening the target's memfd", errno));
        }
        auto bytes = agentImage();
        if (::write(out.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
            throw Error(ExitCode::Failure,
                        describeErrno("writing the agent into the target's memfd", errno));
        }
    }
    // The loader keeps the path it was given as the library's name
    // (link_map.l_name), and debuggers read it from outside: gdb opens
    // "/proc/self/fd/N" in its own process and hangs reading its own pipe.
    // So the path is padded ("./" steps) to leave room, and once loaded
    // the name is overwritten with what /proc/PID/maps shows for it.
    std::string loadedName = fmt::format("/memfd:{} (deleted)", image.memfdName);
    std::string path = "/proc/self/fd/";
    while (path.size() + std::to_string(memfd).size() < loadedName.size()) {
        path += "./";
    }
    path += std::to_string(memfd);
    uint64_t handle = 0;
    RemotePtr base = dlopenOrThrow(hijacked, pid, memory, modules, path, timeout, handle);
    renameLoadedLibrary(memory, RemotePtr(handle), path, loadedName);
    return base;
}

// Removes the delivered file when the load is over, whatever happened.
class UnlinkOnExit {
public:
    explicit UnlinkOnExit(std::string hostPath) : hostPath_(std::move(hostPath)) {}
    ~UnlinkOnExit() { ::unlink(hostPath_.c_str()); }
    UnlinkOnExit(const UnlinkOnExit&) = delete;
    UnlinkOnExit& operator=(const UnlinkOnExit&) = delete;

private:
    std::string hostPath_;
};

RemotePtr
loadThroughFileOrThrow(HijackedThread& hijacked, pid_t pid, const attach::RemoteMemory& memory,
                       const symbols::ProcessModules& modules, std::chrono::milliseconds timeout) {
    const auto& image = agentImageInfoOrThrow();
    auto info = attach::readProcessInfoOrThrow(pid);
    std::random_device random;
    std::string name = fmt::format("{}-{:08x}.so", image.memfdName, random());
    std::string tried;
    for (const char* dir : {"/dev/shm", "/tmp"}) {
        std::string hostDir = fmt::format("/proc/{}/root{}", pid, dir);
        struct statvfs fs {};
        if (::statvfs(hostDir.c_str(), &fs) != 0 || (fs.f_flag & ST_NOEXEC) != 0) {
            tried += fmt::format(" {} (missing or noexec)", dir);
            continue;
        }
        std::string hostPath = hostDir + "/" + name;
        // O_EXCL|O_NOFOLLOW: never through a name someone planted; the
        // directory's sticky bit keeps others from replacing it meanwhile.
        UniqueFd out(
            ::open(hostPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0500));
        if (!out) {
            tried += fmt::format(" {} ({})", dir, std::strerror(errno));
            continue;
        }
        UnlinkOnExit unlink(hostPath);
        auto bytes = agentImage();
        if (::write(out.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()) ||
            ::fchown(out.get(), info.effectiveUid, static_cast<gid_t>(-1)) != 0) {
            throw Error(ExitCode::Failure, describeErrno("writing the agent file " + hostPath, errno));
        }
        out = UniqueFd();
        uint64_t handle = 0;
        return dlopenOrThrow(hijacked, pid, memory, modules, std::string(dir) + "/" + name, timeout,
                             handle);
    }
    throw Error(ExitCode::NotSupported,
                fmt::format("process {} may not call memfd_create and has no place to receive the agent "
                            "as a file:{}",
                            pid, tried),
                "give the target a writable, executable /dev/shm or /tmp");
}

} // namespace

std::optional<RemotePtr>
findLoadedAgent(pid_t pid) {
    const std::string& name = agentImageInfoOrThrow().memfdName;
    for (const auto& entry : symbols::readMapsOrThrow(pid)) {
        if (entry.offset != 0) {
            continue;
        }
        auto slash = entry.path.rfind('/');
        std::string base = slash == std::string::npos ? entry.path : entry.path.substr(slash + 1);
        if (entry.path == "/memfd:" + name || base.rfind(name + "-", 0) == 0) {
            return entry.start;
        }
    }
    return std::nullopt;
}

RemotePtr
loadAgentOrThrow(HijackedThread& hijacked, pid_t pid, const attach::RemoteMemory& memory,
                 const symbols::ProcessModules& modules, AgentDelivery delivery,
                 std::chrono::milliseconds timeout) {
    if (delivery == AgentDelivery::Memfd) {
        if (auto base = tryLoadThroughMemfd(hijacked, pid, memory, modules, timeout)) {
            return *base;
        }
    }
    return loadThroughFileOrThrow(hijacked, pid, memory, modules, timeout);
}

} // namespace memtap::inject
