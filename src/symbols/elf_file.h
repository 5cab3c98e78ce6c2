// Symbol lookup and a few facts from one ELF file on disk (libelf). Knows
// nothing about processes: addresses here are the file's own virtual
// addresses (st_value, p_vaddr); ProcessModules adds the load bias.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/unique_fd.h"

typedef struct Elf Elf; // libelf.h, kept out of this header

namespace memtap::symbols {

struct ElfSymbol {
    uint64_t value = 0; // st_value: the file's virtual address
    uint64_t size = 0;
    unsigned char type = 0; // GELF_ST_TYPE: STT_FUNC, STT_OBJECT, STT_GNU_IFUNC ...
};

class ElfFile {
public:
    // Throws Error(Failure) with errno or libelf text when the file cannot be
    // opened or is not an ELF file.
    static ElfFile openOrThrow(const std::string& path);

    ElfFile(ElfFile&&) noexcept;
    ElfFile& operator=(ElfFile&&) noexcept;
    ElfFile(const ElfFile&) = delete;
    ElfFile& operator=(const ElfFile&) = delete;
    ~ElfFile();

    // A defined symbol by name: .dynsym first, then .symtab. A global symbol
    // wins over a local one of the same name, and the default version of a
    // versioned symbol over a hidden one. The first call builds a hash index.
    std::optional<ElfSymbol> findSymbol(std::string_view name) const;

    // p_vaddr of the first PT_LOAD, aligned down to the page: what the mapping
    // at file offset 0 corresponds to.
    uint64_t firstLoadVaddr() const;
    // [start, end) in vaddr space between the end of the last executable
    // PT_LOAD's contents and the end of its last page: bytes the kernel maps
    // executable that no code occupies. nullopt if there is none.
    struct Padding {
        uint64_t start = 0, end = 0; // vaddr
        uint64_t fileOffset = 0;     // of `start`: the bytes the kernel maps there
    };
    std::optional<Padding> executablePadding() const;
    // Hex of the NT_GNU_BUILD_ID note, "" if there is none.
    std::string buildId() const;
    bool isX86_64() const;
    // DT_SONAME, "" if there is none (executables).
    std::string soname() const;

    // The file offset holding virtual address `vaddr`, if a PT_LOAD segment
    // holds it in the file (not in its zero-filled .bss tail).
    std::optional<uint64_t> fileOffsetOf(uint64_t vaddr) const;
    // `size` bytes of the file at virtual address `vaddr`; nullopt when they
    // are not all backed by one segment's file contents.
    std::optional<std::vector<unsigned char>> readAtVaddr(uint64_t vaddr, size_t size) const;
    // A NUL-terminated string at `vaddr` (at most `maxSize` bytes), if it is in the file.
    std::optional<std::string> readStringAtVaddr(uint64_t vaddr, size_t maxSize = 256) const;
    // Contents of the section with this name (e.g. ".rodata") and its address.
    struct Section {
        uint64_t vaddr = 0;
        std::string_view bytes; // valid as long as this ElfFile
    };
    std::optional<Section> section(std::string_view name) const;

    const std::string& path() const { return path_; }

private:
    struct ElfDeleter {
        void operator()(Elf* elf) const;
    };
    struct IndexedSymbol {
        ElfSymbol symbol;
        int rank = 0; // higher wins among definitions of the same name
    };
    using SymbolIndex = std::unordered_map<std::string_view, IndexedSymbol>;

    ElfFile(std::string path, UniqueFd fd, std::unique_ptr<Elf, ElfDeleter> elf);
    void buildIndex() const;

    std::string path_;
    // Declaration order is destruction order in reverse: the Elf* reads through
    // the fd, so it goes first.
    UniqueFd fd_;
    std::unique_ptr<Elf, ElfDeleter> elf_;
    // Keys point into libelf's section data, which lives as long as elf_.
    mutable std::unique_ptr<SymbolIndex> index_;
};

} // namespace memtap::symbols
