#include <catch2/catch.hpp>

#include <elf.h>
#include <unistd.h>

#include "base/error.h"
#include "symbols/elf_file.h"

using namespace memtap::symbols;

namespace {
const std::string kDebianPython = "/usr/bin/python3.11";
const std::string kPyenvLibpython = "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0";
const std::string kLibc = "/lib/x86_64-linux-gnu/libc.so.6";
} // namespace

TEST_CASE("ElfFile: Debian's static, stripped python3.11 via .dynsym", "[elf]") {
    if (::access(kDebianPython.c_str(), R_OK) != 0) {
        WARN("no " << kDebianPython);
        return;
    }
    ElfFile elf = ElfFile::openOrThrow(kDebianPython);
    CHECK(elf.isX86_64());
    CHECK(elf.soname().empty());
    CHECK(elf.firstLoadVaddr() == 0x400000); // non-PIE executable
    CHECK(elf.buildId().size() == 40);       // SHA-1: 20 bytes in hex
    auto setAllocator = elf.findSymbol("PyMem_SetAllocator");
    REQUIRE(setAllocator);
    CHECK(setAllocator->type == STT_FUNC);
    CHECK(setAllocator->value >= 0x400000);
    auto version = elf.findSymbol("Py_Version");
    REQUIRE(version);
    CHECK(version->type == STT_OBJECT);
    auto bytes = elf.readAtVaddr(version->value, 8);
    REQUIRE(bytes);
    CHECK((*bytes)[3] == 3);  // PY_VERSION_HEX major, highest byte (little-endian)
    CHECK((*bytes)[2] == 11); // minor
    CHECK_FALSE(elf.findSymbol("no_such_symbol_anywhere"));
    CHECK_FALSE(elf.findSymbol("malloc")); // imported only: undefined here
}

TEST_CASE("ElfFile: pyenv's libpython3.11 (shared, with .symtab)", "[elf]") {
    if (::access(kPyenvLibpython.c_str(), R_OK) != 0) {
        WARN("no " << kPyenvLibpython);
        return;
    }
    ElfFile elf = ElfFile::openOrThrow(kPyenvLibpython);
    CHECK(elf.isX86_64());
    CHECK(elf.soname() == "libpython3.11.so.1.0");
    CHECK(elf.firstLoadVaddr() == 0);
    CHECK(elf.findSymbol("PyMem_SetAllocator"));
    CHECK(elf.findSymbol("_PyEval_EvalFrameDefault"));
    CHECK(elf.findSymbol("Py_GetVersion"));
    // Moving keeps the (already built) index usable.
    ElfFile moved = std::move(elf);
    CHECK(moved.findSymbol("PyMem_GetAllocator"));
}

TEST_CASE("ElfFile: libc exports what the injector calls", "[elf]") {
    ElfFile elf = ElfFile::openOrThrow(kLibc);
    CHECK(elf.isX86_64());
    CHECK(elf.soname() == "libc.so.6");
    CHECK_FALSE(elf.buildId().empty());
    for (const char* name : {"dlopen", "pthread_create", "syscall"}) {
        INFO(name);
        auto symbol = elf.findSymbol(name);
        REQUIRE(symbol);
        CHECK(symbol->type == STT_FUNC);
        CHECK(symbol->value != 0);
        CHECK(elf.fileOffsetOf(symbol->value));
    }
}

TEST_CASE("ElfFile::openOrThrow fails with a message for non-ELF and missing files", "[elf]") {
    CHECK_THROWS_WITH(ElfFile::openOrThrow("/nonexistent/file"),
                      Catch::Contains("/nonexistent/file") && Catch::Contains("No such file"));
    CHECK_THROWS_WITH(ElfFile::openOrThrow("/etc/passwd"), Catch::Contains("not an ELF file"));
}
