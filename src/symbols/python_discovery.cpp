#include "symbols/python_discovery.h"

#include <charconv>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "attach/remote_memory.h"
#include "base/error.h"

namespace memtap::symbols {

namespace detail {

namespace {

// Reads a run of 1..maxDigits decimal digits at the front of `text`.
bool
takeNumber(std::string_view& text, int& out, size_t maxDigits) {
    size_t n = 0;
    while (n < text.size() && n < maxDigits + 1 && text[n] >= '0' && text[n] <= '9') {
        ++n;
    }
    if (n == 0 || n > maxDigits) {
        return false;
    }
    std::from_chars(text.data(), text.data() + n, out);
    text.remove_prefix(n);
    return true;
}

bool
takePrefix(std::string_view& text, std::string_view prefix) {
    if (!text.starts_with(prefix)) {
        return false;
    }
    text.remove_prefix(prefix.size());
    return true;
}

} // namespace

bool
versionFromFileName(std::string_view path, int& major, int& minor) {
    size_t slash = path.rfind('/');
    std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
    takePrefix(name, "lib");
    int parsedMajor = 0;
    int parsedMinor = 0;
    if (!takePrefix(name, "python") || !takeNumber(name, parsedMajor, 1) || !takePrefix(name, ".") ||
        !takeNumber(name, parsedMinor, 2)) {
        return false;
    }
    // ABI flags of old builds (PEP 3149: d, m, u), then the end or a separator.
    while (!name.empty() && (name.front() == 'd' || name.front() == 'm' || name.front() == 'u')) {
        name.remove_prefix(1);
    }
    if (!name.empty() && name.front() != '.' && name.front() != '-' && name.front() != '_') {
        return false;
    }
    major = parsedMajor;
    minor = parsedMinor;
    return true;
}

std::string
formatVersionHex(uint64_t hex, int& major, int& minor) {
    // PY_VERSION_HEX layout (Include/patchlevel.h): major << 24 | minor << 16 |
    // micro << 8 | level << 4 | serial, level 0xA alpha, 0xB beta, 0xC rc, 0xF final.
    major = static_cast<int>((hex >> 24) & 0xff);
    minor = static_cast<int>((hex >> 16) & 0xff);
    int micro = static_cast<int>((hex >> 8) & 0xff);
    unsigned level = (hex >> 4) & 0xf;
    unsigned serial = hex & 0xf;
    std::string version = fmt::format("{}.{}.{}", major, minor, micro);
    switch (level) {
    case 0xA:
        return version + fmt::format("a{}", serial);
    case 0xB:
        return version + fmt::format("b{}", serial);
    case 0xC:
        return version + fmt::format("rc{}", serial);
    default:
        return version;
    }
}

bool
parseVersionString(std::string_view text, int& major, int& minor) {
    // PY_VERSION (Include/patchlevel.h): "X.Y.Z", then an optional "aN", "bN"
    // or "rcN", then "+" for builds between releases.
    int parsedMajor = 0;
    int parsedMinor = 0;
    int micro = 0;
    if (!takeNumber(text, parsedMajor, 1) || (parsedMajor != 2 && parsedMajor != 3) ||
        !takePrefix(text, ".") || !takeNumber(text, parsedMinor, 2) || !takePrefix(text, ".") ||
        !takeNumber(text, micro, 3)) {
        return false;
    }
    if (takePrefix(text, "rc") || takePrefix(text, "a") || takePrefix(text, "b")) {
        int serial = 0;
        if (!takeNumber(text, serial, 2)) {
            return false;
        }
    }
    takePrefix(text, "+");
    if (!text.empty()) {
        return false;
    }
    major = parsedMajor;
    minor = parsedMinor;
    return true;
}

} // namespace detail

namespace {

struct Version {
    int major = 0;
    int minor = 0;
    std::string text;
};

std::optional<std::vector<unsigned char>>
readRemote(pid_t pid, RemotePtr address, size_t size) {
    auto memory = attach::RemoteMemory::tryOpenForReading(pid);
    std::vector<unsigned char> bytes(size);
    if (!memory || !memory->tryRead(address, bytes.data(), size)) {
        return std::nullopt;
    }
    return bytes;
}

// 3.11+: the exported constant `Py_Version` holds PY_VERSION_HEX (PEP 0 /
// "API and ABI Versioning" in the C-API docs). Read it from the live process
// (what runs), falling back to the file (same bytes: it lives in .rodata).
std::optional<Version>
versionFromPyVersionSymbol(const ProcessModules& modules, const Module& module) {
    std::optional<ElfSymbol> symbol = modules.elf(module).findSymbol("Py_Version");
    if (!symbol) {
        return std::nullopt;
    }
    size_t size = symbol->size == 4 ? 4 : 8; // `const unsigned long`: 8 on LP64
    auto bytes = readRemote(modules.pid(), module.loadBias + symbol->value, size);
    if (!bytes) {
        bytes = modules.elf(module).readAtVaddr(symbol->value, size);
    }
    if (!bytes) {
        return std::nullopt;
    }
    uint64_t hex = 0;
    std::memcpy(&hex, bytes->data(), size); // x86-64 is little-endian
    Version version;
    version.text = detail::formatVersionHex(hex, version.major, version.minor);
    if (version.major < 2 || version.major > 3) {
        return std::nullopt;
    }
    return version;
}

// Before 3.11 the only place the full version lives is the PY_VERSION string
// literal, which Py_GetVersion() passes to PyOS_snprintf (Python/getversion.c).
// Its address is an operand of Py_GetVersion's code: a RIP-relative LEA in
// position-independent code, or a MOV r32, imm32 in a non-PIE executable. We
// try every byte offset instead of decoding instructions: a false match would
// have to point at a string that parses as a Python version, which is harmless.
std::optional<Version>
versionFromPyGetVersionCode(const ProcessModules& modules, const Module& module) {
    const ElfFile& elf = modules.elf(module);
    std::optional<ElfSymbol> function = elf.findSymbol("Py_GetVersion");
    if (!function) {
        return std::nullopt;
    }
    size_t size = function->size != 0 && function->size < 512 ? function->size : 128;
    auto code = elf.readAtVaddr(function->value, size);
    if (!code) {
        return std::nullopt;
    }
    auto tryTarget = [&](uint64_t target) -> std::optional<Version> {
        std::optional<std::string> text = elf.readStringAtVaddr(target, 32);
        Version version;
        if (text && detail::parseVersionString(*text, version.major, version.minor)) {
            version.text = *text;
            return version;
        }
        return std::nullopt;
    };
    const std::vector<unsigned char>& b = *code;
    auto disp32 = [&](size_t at) {
        int32_t value = 0;
        std::memcpy(&value, &b[at], sizeof(value));
        return value;
    };
    for (size_t i = 0; i + 7 <= b.size(); ++i) {
        // REX.W (0x48) or REX.WR (0x4c), opcode 0x8d (LEA), ModRM mod=00 rm=101:
        // [RIP + disp32] (Intel SDM Vol. 2, Table 2-7 "RIP-Relative Addressing").
        if ((b[i] == 0x48 || b[i] == 0x4c) && b[i + 1] == 0x8d && (b[i + 2] & 0xc7) == 0x05) {
            uint64_t next = function->value + i + 7;
            if (auto version = tryTarget(next + static_cast<int64_t>(disp32(i + 3)))) {
                return version;
            }
        }
    }
    for (size_t i = 0; i + 5 <= b.size(); ++i) {
        // MOV r32, imm32 is 0xb8+r (Intel SDM Vol. 2, "MOV"); zero-extends to 64 bits.
        if (b[i] >= 0xb8 && b[i] <= 0xbf) {
            if (auto version = tryTarget(static_cast<uint32_t>(disp32(i + 1)))) {
                return version;
            }
        }
    }
    return std::nullopt;
}

// Free-threaded builds (PEP 703, configure --disable-gil, Py_GIL_DISABLED)
// change the object header and thread state, so nothing memtap injects or
// reads fits them. Returns what gave one away, or nullopt for a GIL build.
std::optional<std::string>
freeThreadedEvidence(const ProcessModules& modules, const Module& module) {
    const ElfFile& elf = modules.elf(module);
    // Include/object.h (v3.13.0, also 3.14) declares these only under
    // Py_GIL_DISABLED: the biased reference counting's slow paths.
    for (const char* name : {"_Py_DecRefShared", "_Py_MergeZeroLocalRefcount"}) {
        if (elf.findSymbol(name)) {
            return fmt::format("it exports {}", name);
        }
    }
    // 3.13+: _PyRuntime starts with _Py_DebugOffsets { char cookie[8] =
    // "xdebugpy"; uint64_t version; uint64_t free_threaded; ... }
    // (Include/internal/pycore_runtime.h in v3.13.0,
    // pycore_debug_offsets.h in 3.14). Read from the live process first.
    std::optional<ElfSymbol> runtime = elf.findSymbol("_PyRuntime");
    if (!runtime) {
        return std::nullopt;
    }
    constexpr size_t kPrefix = 24;
    auto bytes = readRemote(modules.pid(), module.loadBias + runtime->value, kPrefix);
    if (!bytes) {
        bytes = elf.readAtVaddr(runtime->value, kPrefix);
    }
    if (!bytes || std::memcmp(bytes->data(), "xdebugpy", 8) != 0) {
        return std::nullopt;
    }
    uint64_t freeThreaded = 0;
    std::memcpy(&freeThreaded, bytes->data() + 16, sizeof freeThreaded);
    if (freeThreaded != 0) {
        return std::string("its _PyRuntime.debug_offsets.free_threaded is set");
    }
    return std::nullopt;
}

// _PyRuntime starts with _Py_DebugOffsets { char cookie[8] = "xdebugpy";
// uint64_t version (PY_VERSION_HEX); ... } (Include/internal/pycore_runtime.h
// v3.13.0, pycore_debug_offsets.h v3.14.0): true if it is there and names
// this major.minor.
bool
debugOffsetsNameVersion(const ProcessModules& modules, const Module& module, const Version& version) {
    const ElfFile& elf = modules.elf(module);
    std::optional<ElfSymbol> runtime = elf.findSymbol("_PyRuntime");
    if (!runtime) {
        return false;
    }
    constexpr size_t kPrefix = 16;
    auto bytes = readRemote(modules.pid(), module.loadBias + runtime->value, kPrefix);
    if (!bytes) {
        bytes = elf.readAtVaddr(runtime->value, kPrefix);
    }
    if (!bytes || bytes->size() < kPrefix || std::memcmp(bytes->data(), "xdebugpy", 8) != 0) {
        return false;
    }
    uint64_t hex = 0;
    std::memcpy(&hex, bytes->data() + 8, sizeof hex);
    return static_cast<int>((hex >> 24) & 0xff) == version.major &&
           static_cast<int>((hex >> 16) & 0xff) == version.minor;
}

std::string
supportedRange() {
    return fmt::format("memtap supports CPython 3.{} to 3.{}", kMinSupportedMinor, kMaxSupportedMinor);
}

} // namespace

PythonTarget
discoverPythonOrThrow(const ProcessModules& modules) {
    pid_t pid = modules.pid();
    // PyMem_SetAllocator (3.4+, PEP 445) is what memtap hooks, so the module
    // exporting it is the runtime. Py_GetVersion is exported by every CPython,
    // 2 and 3, and tells an old interpreter apart from no interpreter at all.
    const Module* runtime = modules.findModuleDefining("PyMem_SetAllocator");
    bool hasAllocatorApi = runtime != nullptr;
    if (runtime == nullptr) {
        runtime = modules.findModuleDefining("Py_GetVersion");
    }
    if (runtime == nullptr) {
        throw Error(
            ExitCode::NotSupported,
            fmt::format("process {} is not a Python process: no CPython runtime is mapped into it", pid),
            "check the PID; memtap attaches to CPython interpreters and programs embedding libpython");
    }

    std::optional<Version> version = versionFromPyVersionSymbol(modules, *runtime);
    if (!version) {
        version = versionFromPyGetVersionCode(modules, *runtime);
    }
    if (!version) {
        Version fromName;
        if (detail::versionFromFileName(runtime->path, fromName.major, fromName.minor)) {
            fromName.text = fmt::format("{}.{}", fromName.major, fromName.minor);
            version = fromName;
        }
    }
    if (!version && !hasAllocatorApi && modules.elf(*runtime).findSymbol("PyString_FromString")) {
        // Python 2's str API; gone in 3.0.
        version = Version{2, 0, "2"};
    }
    if (!version) {
        throw Error(
            ExitCode::NotSupported,
            fmt::format("process {} runs CPython from {} but its version could not be determined", pid,
                        runtime->path),
            supportedRange());
    }

    if (version->major == 2) {
        std::string shown = version->minor > 0 ? fmt::format("2.{}", version->minor) : "2";
        throw Error(ExitCode::NotSupported,
                    fmt::format("process {} runs Python {}; {}", pid, shown, supportedRange()),
                    "Python 2 has no allocator hook API (PEP 445); run the program under Python 3");
    }
    // Before the version range: a 3.14t is refused for what it is.
    if (version->major == 3 && version->minor >= 13 && hasAllocatorApi) {
        if (std::optional<std::string> evidence = freeThreadedEvidence(modules, *runtime)) {
            throw Error(ExitCode::NotSupported,
                        fmt::format("process {} runs a free-threaded CPython {} (Py_GIL_DISABLED: {}); "
                                    "memtap does not support free-threaded builds yet",
                                    pid, version->text, *evidence),
                        "run the program under the default (GIL) build of CPython");
        }
    }
    // Newer than every layout memtap has: sizes and counts need only the
    // allocator API, frames need a _Py_DebugOffsets table (the agent decides),
    // so a valid cookie naming this very version is enough to attach.
    bool newerWithDebugOffsets = version->major == 3 && version->minor > kMaxSupportedMinor &&
                                 hasAllocatorApi && debugOffsetsNameVersion(modules, *runtime, *version);
    if (version->major != 3 || version->minor < kMinSupportedMinor ||
        (version->minor > kMaxSupportedMinor && !newerWithDebugOffsets) || !hasAllocatorApi) {
        throw Error(ExitCode::NotSupported,
                    fmt::format("process {} runs Python {}; {}", pid, version->text, supportedRange()));
    }
    if (!modules.elf(*runtime).isX86_64()) {
        throw Error(ExitCode::NotSupported,
                    fmt::format("process {} runs a CPython that is not an x86-64 build ({})", pid,
                                runtime->path),
                    "memtap supports x86-64 targets only");
    }

    PythonTarget target;
    target.module = *runtime;
    target.isMainExecutable = runtime == modules.mainExecutable();
    target.major = version->major;
    target.minor = version->minor;
    target.version = version->text;
    if (newerWithDebugOffsets) {
        target.note = fmt::format("CPython {} is newer than memtap knows (3.{} to 3.{}): sizes and "
                                  "counts are traced, frames only if its _Py_DebugOffsets has every "
                                  "field the walker needs (see `memtap status`); refs and types are "
                                  "refused",
                                  version->text, kMinSupportedMinor, kMaxSupportedMinor);
    }
    return target;
}

} // namespace memtap::symbols
