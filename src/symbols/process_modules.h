// The ELF modules (executable and shared objects) mapped into a live process,
// with their load bias, and symbol lookup at the process's addresses.
// Reads /proc only; never stops or ptraces the process.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/remote_ptr.h"
#include "symbols/elf_file.h"
#include "symbols/proc_maps.h"

namespace memtap::symbols {

struct Module {
    std::string path;     // as the target sees it (its mount namespace)
    std::string hostPath; // where we open it: "/proc/PID/root" + path, or map_files/ if deleted
    RemotePtr start;      // span of all its mappings
    RemotePtr end;
    RemotePtr loadBias;   // runtime address = loadBias + st_value
    bool deleted = false; // the file was unlinked after it was mapped
};

class ProcessModules {
public:
    // Throws Error(NoSuchProcess / PermissionDenied) like readMapsOrThrow.
    static ProcessModules readOrThrow(pid_t pid);
    // For tests: modules from already-parsed maps of `pid`.
    static ProcessModules fromMapsOrThrow(pid_t pid, const std::vector<MapEntry>& maps,
                                          std::string exePath);

    ProcessModules(ProcessModules&&) noexcept;
    ProcessModules& operator=(ProcessModules&&) noexcept;
    ~ProcessModules();

    // In address order.
    const std::vector<Module>& modules() const { return modules_; }
    // The module of /proc/PID/exe, nullptr if it is not mapped (should not happen).
    const Module* mainExecutable() const;
    // The module whose file name is libc.so.6, nullptr if none (static binaries).
    const Module* libc() const;
    // The first module that defines `symbol` (main executable first), nullptr if none.
    // Opens the ELF files it needs.
    const Module* findModuleDefining(std::string_view symbol) const;

    // Runtime address of a defined symbol of `module`.
    std::optional<RemotePtr> findSymbol(const Module& module, std::string_view name) const;
    // Same; throws Error(Failure) naming the module when the symbol is not defined.
    RemotePtr resolveOrThrow(const Module& module, std::string_view name) const;
    // The module's ELF file, opened on first use and cached (throws if unreadable).
    const ElfFile& elf(const Module& module) const;

    pid_t pid() const { return pid_; }

private:
    ProcessModules() = default;

    pid_t pid_ = 0;
    std::vector<Module> modules_;
    size_t mainIndex_ = SIZE_MAX;
    // Keyed by Module::hostPath so that copies of a Module find the same entry.
    mutable std::unordered_map<std::string, std::unique_ptr<ElfFile>> elfCache_;
};

} // namespace memtap::symbols
