#include "symbols/process_modules.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "base/error.h"
#include "base/unique_fd.h"

namespace memtap::symbols {

namespace {

// The magic at the start of every ELF file (ELF gABI, "ELF Identification").
constexpr char kElfMagic[4] = {0x7f, 'E', 'L', 'F'};

bool
looksLikeElf(const std::string& hostPath) {
    UniqueFd fd(::open(hostPath.c_str(), O_RDONLY | O_CLOEXEC));
    char magic[sizeof(kElfMagic)] = {};
    return fd && ::pread(fd.get(), magic, sizeof(magic), 0) == sizeof(magic) &&
           std::memcmp(magic, kElfMagic, sizeof(magic)) == 0;
}

// Files that are mapped but cannot be modules: memfd (no real path) and devices.
bool
isCandidatePath(const MapEntry& entry) {
    return entry.isFileBacked() && !entry.path.starts_with("/memfd:") &&
           !entry.path.starts_with("/dev/") && !entry.path.starts_with("/SYSV");
}

std::string
readExeLink(pid_t pid) {
    std::string link = fmt::format("/proc/{}/exe", pid);
    char buffer[PATH_MAX];
    ssize_t n = ::readlink(link.c_str(), buffer, sizeof(buffer) - 1);
    if (n < 0) {
        return {}; // kernel threads and zombies have none; the caller copes
    }
    std::string path(buffer, static_cast<size_t>(n));
    constexpr std::string_view kDeleted = " (deleted)";
    if (path.ends_with(kDeleted)) {
        path.resize(path.size() - kDeleted.size());
    }
    return path;
}

std::string_view
baseName(std::string_view path) {
    size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

} // namespace

ProcessModules::ProcessModules(ProcessModules&&) noexcept = default;
ProcessModules& ProcessModules::operator=(ProcessModules&&) noexcept = default;
ProcessModules::~ProcessModules() = default;

ProcessModules
ProcessModules::readOrThrow(pid_t pid) {
    std::vector<MapEntry> maps = readMapsOrThrow(pid);
    return fromMapsOrThrow(pid, maps, readExeLink(pid));
}

ProcessModules
ProcessModules::fromMapsOrThrow(pid_t pid, const std::vector<MapEntry>& maps, std::string exePath) {
    ProcessModules result;
    result.pid_ = pid;

    // Group mappings by file identity; a library is mapped as 4-5 consecutive
    // ranges (r, r-x, r, rw) but they need not be adjacent.
    struct Group {
        Module module;
        bool haveOffsetZero = false;
        RemotePtr offsetZeroStart;
        RemotePtr offsetZeroEnd;
    };
    std::map<std::pair<std::string, uint64_t>, Group> groups;
    std::vector<std::pair<std::string, uint64_t>> order;
    for (const MapEntry& entry : maps) {
        if (!isCandidatePath(entry)) {
            continue;
        }
        auto key = std::make_pair(entry.path, entry.inode);
        auto [it, inserted] = groups.try_emplace(key);
        Group& group = it->second;
        if (inserted) {
            order.push_back(key);
            group.module.path = entry.path;
            group.module.start = entry.start;
            group.module.end = entry.end;
            group.module.deleted = entry.deleted;
        }
        group.module.start = std::min(group.module.start, entry.start);
        group.module.end = std::max(group.module.end, entry.end);
        if (entry.offset == 0 && !group.haveOffsetZero) {
            group.haveOffsetZero = true;
            group.offsetZeroStart = entry.start;
            group.offsetZeroEnd = entry.end;
        }
    }

    for (const auto& key : order) {
        Group& group = groups[key];
        Module& module = group.module;
        if (!group.haveOffsetZero) {
            continue; // only a data file slice is mapped: cannot be an ELF module we can place
        }
        // A deleted file no longer has a path, but the mapping itself can still be
        // opened through map_files/ (proc(5), needs CAP_SYS_ADMIN or ptrace access).
        module.hostPath = module.deleted
                              ? fmt::format("/proc/{}/map_files/{:x}-{:x}", pid,
                                            group.offsetZeroStart.value(), group.offsetZeroEnd.value())
                              : fmt::format("/proc/{}/root{}", pid, module.path);
        if (!looksLikeElf(module.hostPath)) {
            continue;
        }
        // The mapping at file offset 0 starts at loadBias + (first PT_LOAD's
        // page-aligned p_vaddr); the bias is needed before any symbol lookup, so
        // the ELF is opened here and kept in the cache.
        uint64_t firstVaddr = 0;
        try {
            firstVaddr = result.elf(module).firstLoadVaddr();
        } catch (const Error&) {
            continue; // unreadable or truncated: not a module we can use
        }
        module.loadBias = group.offsetZeroStart - firstVaddr;
        result.modules_.push_back(std::move(module));
    }
    std::sort(result.modules_.begin(), result.modules_.end(),
              [](const Module& a, const Module& b) { return a.start < b.start; });

    for (size_t i = 0; i < result.modules_.size(); ++i) {
        if (!exePath.empty() && result.modules_[i].path == exePath) {
            result.mainIndex_ = i;
            break;
        }
    }
    return result;
}

const Module*
ProcessModules::mainExecutable() const {
    return mainIndex_ < modules_.size() ? &modules_[mainIndex_] : nullptr;
}

const Module*
ProcessModules::libc() const {
    for (const Module& module : modules_) {
        if (baseName(module.path) == "libc.so.6") {
            return &module;
        }
    }
    return nullptr;
}

const Module*
ProcessModules::findModuleDefining(std::string_view symbol) const {
    auto defines = [&](const Module& module) {
        try {
            return elf(module).findSymbol(symbol).has_value();
        } catch (const Error&) {
            return false;
        }
    };
    if (const Module* main = mainExecutable(); main != nullptr && defines(*main)) {
        return main;
    }
    for (size_t i = 0; i < modules_.size(); ++i) {
        if (i != mainIndex_ && defines(modules_[i])) {
            return &modules_[i];
        }
    }
    return nullptr;
}

std::optional<RemotePtr>
ProcessModules::findSymbol(const Module& module, std::string_view name) const {
    std::optional<ElfSymbol> symbol = elf(module).findSymbol(name);
    if (!symbol) {
        return std::nullopt;
    }
    // Absolute symbols (SHN_ABS) are rare in shared objects and never what we
    // look up; every defined symbol we need is relative to the load bias.
    return module.loadBias + symbol->value;
}

RemotePtr
ProcessModules::resolveOrThrow(const Module& module, std::string_view name) const {
    std::optional<RemotePtr> address = findSymbol(module, name);
    if (!address) {
        throw Error(ExitCode::Failure,
                    fmt::format("symbol {} is not defined in {} (process {})", name, module.path, pid_));
    }
    return *address;
}

const ElfFile&
ProcessModules::elf(const Module& module) const {
    auto it = elfCache_.find(module.hostPath);
    if (it == elfCache_.end()) {
        auto file = std::make_unique<ElfFile>(ElfFile::openOrThrow(module.hostPath));
        it = elfCache_.emplace(module.hostPath, std::move(file)).first;
    }
    return *it->second;
}

} // namespace memtap::symbols
