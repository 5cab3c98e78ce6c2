#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <sys/uio.h>
#include <unistd.h>

#include <climits>

#include "base/error.h"
#include "spawned_process.h"
#include "symbols/process_modules.h"

using memtap::RemotePtr;
using memtap::test::SpawnedProcess;
using namespace memtap::symbols;

namespace {

std::vector<unsigned char>
readRemoteOrFail(pid_t pid, RemotePtr address, size_t size) {
    std::vector<unsigned char> bytes(size);
    iovec local{bytes.data(), size};
    iovec remote{reinterpret_cast<void*>(address.value()), size};
    REQUIRE(::process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size));
    return bytes;
}

// The code bytes at a symbol's runtime address equal the file's bytes there:
// proof that loadBias + st_value is where the loader put it.
void
checkSymbolMatchesFile(const ProcessModules& modules, const Module& module, const char* name) {
    INFO(module.path << " " << name);
    RemotePtr address = modules.resolveOrThrow(module, name);
    auto symbol = modules.elf(module).findSymbol(name);
    REQUIRE(symbol);
    size_t size = std::min<uint64_t>(symbol->size == 0 ? 16 : symbol->size, 32);
    auto fileBytes = modules.elf(module).readAtVaddr(symbol->value, size);
    REQUIRE(fileBytes);
    CHECK(readRemoteOrFail(modules.pid(), address, size) == *fileBytes);
}

std::string
selfExe() {
    char buffer[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer));
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

} // namespace

TEST_CASE("ProcessModules of this test process", "[modules]") {
    ProcessModules modules = ProcessModules::readOrThrow(::getpid());
    REQUIRE(modules.mainExecutable() != nullptr);
    CHECK(modules.mainExecutable()->path == selfExe());
    REQUIRE(modules.libc() != nullptr);
    CHECK(modules.libc()->path.ends_with("/libc.so.6"));
    CHECK(modules.libc()->hostPath == fmt::format("/proc/{}/root{}", ::getpid(), modules.libc()->path));
    for (const Module& module : modules.modules()) {
        INFO(module.path);
        CHECK(module.path.front() == '/'); // no [heap], [vdso], anonymous ...
        CHECK(module.start < module.end);
        CHECK(module.loadBias <= module.start);
    }
    CHECK(modules.findModuleDefining("pthread_create") == modules.libc());
    CHECK(modules.findModuleDefining("definitely_not_a_symbol_xyz") == nullptr);
    CHECK_FALSE(modules.findSymbol(*modules.libc(), "definitely_not_a_symbol_xyz"));
    CHECK_THROWS_WITH(modules.resolveOrThrow(*modules.libc(), "definitely_not_a_symbol_xyz"),
                      Catch::Contains("definitely_not_a_symbol_xyz") && Catch::Contains("libc.so.6"));
    // What the dynamic linker says (dlvsym: the default version, not a sanitizer
    // interceptor of the same name).
    void* loaded = ::dlvsym(RTLD_DEFAULT, "pthread_create", "GLIBC_2.34");
    REQUIRE(loaded != nullptr);
    CHECK(modules.resolveOrThrow(*modules.libc(), "pthread_create").value() ==
          reinterpret_cast<uint64_t>(loaded));
}

TEST_CASE("ProcessModules of a live Python: libc symbols resolve to the loaded code", "[modules]") {
    const std::string python = "/root/.pyenv/versions/3.11.7/bin/python3";
    if (::access(python.c_str(), X_OK) != 0) {
        WARN("no " << python);
        return;
    }
    SpawnedProcess child(memtap::test::parkedPython(python));
    REQUIRE(child.waitReady());
    ProcessModules modules = ProcessModules::readOrThrow(child.pid());
    CHECK(modules.pid() == child.pid());
    REQUIRE(modules.mainExecutable() != nullptr);
    CHECK(modules.mainExecutable()->path == "/root/.pyenv/versions/3.11.7/bin/python3.11");
    REQUIRE(modules.libc() != nullptr);
    for (const char* name : {"pthread_create", "dlopen", "syscall"}) {
        checkSymbolMatchesFile(modules, *modules.libc(), name);
    }
    const Module* libpython = modules.findModuleDefining("PyMem_SetAllocator");
    REQUIRE(libpython != nullptr);
    CHECK(libpython->path.ends_with("libpython3.11.so.1.0"));
    checkSymbolMatchesFile(modules, *libpython, "PyMem_SetAllocator");
    // Cached: the same object every time, also for a copy of the Module.
    Module copy = *libpython;
    CHECK(&modules.elf(copy) == &modules.elf(*libpython));
}

TEST_CASE("ProcessModules of Debian's non-PIE python3.11", "[modules]") {
    const std::string python = "/usr/bin/python3.11";
    if (::access(python.c_str(), X_OK) != 0) {
        WARN("no " << python);
        return;
    }
    SpawnedProcess child(memtap::test::parkedPython(python));
    REQUIRE(child.waitReady());
    ProcessModules modules = ProcessModules::readOrThrow(child.pid());
    REQUIRE(modules.mainExecutable() != nullptr);
    CHECK(modules.mainExecutable()->loadBias == RemotePtr(0)); // ET_EXEC: linked at its address
    checkSymbolMatchesFile(modules, *modules.mainExecutable(), "PyMem_SetAllocator");
    checkSymbolMatchesFile(modules, *modules.libc(), "pthread_create");
}

TEST_CASE("ProcessModules::readOrThrow reports a missing process", "[modules]") {
    try {
        ProcessModules::readOrThrow(5'000'000); // above PID_MAX_LIMIT
        FAIL("expected an error");
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::NoSuchProcess);
    }
}
