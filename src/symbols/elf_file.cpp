#include "symbols/elf_file.h"

#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>

#include <cerrno>
#include <mutex>

#include <fmt/format.h>

#include "base/error.h"

namespace memtap::symbols {

namespace {

// elf_version() must be called once before any other libelf call (libelf(3)).
void
initLibelfOnce() {
    static std::once_flag once;
    std::call_once(once, [] { ::elf_version(EV_CURRENT); });
}

std::string
libelfError(const std::string& what) {
    return fmt::format("{}: {}", what, ::elf_errmsg(-1));
}

// Bit 15 of a .gnu.version entry marks a non-default (hidden) version, e.g.
// "pthread_create@GLIBC_2.2.5" next to the default "@@GLIBC_2.34"
// (LSB Core, "Symbol Version Table"; VERSYM_HIDDEN in elf.h).
constexpr uint16_t kVersymHidden = 0x8000;

} // namespace

void
ElfFile::ElfDeleter::operator()(Elf* elf) const {
    ::elf_end(elf);
}

ElfFile::ElfFile(std::string path, UniqueFd fd, std::unique_ptr<Elf, ElfDeleter> elf)
    : path_(std::move(path)), fd_(std::move(fd)), elf_(std::move(elf)) {}

ElfFile::ElfFile(ElfFile&&) noexcept = default;
ElfFile& ElfFile::operator=(ElfFile&&) noexcept = default;
ElfFile::~ElfFile() {
    // The index points into elf_'s data: drop it before the Elf*.
    index_.reset();
}

ElfFile
ElfFile::openOrThrow(const std::string& path) {
    initLibelfOnce();
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        throw Error(ExitCode::Failure, describeErrno("cannot open " + path, errno));
    }
    std::unique_ptr<Elf, ElfDeleter> elf(::elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr));
    if (!elf) {
        throw Error(ExitCode::Failure, libelfError("cannot read ELF file " + path));
    }
    if (::elf_kind(elf.get()) != ELF_K_ELF) {
        throw Error(ExitCode::Failure, fmt::format("{} is not an ELF file", path));
    }
    GElf_Ehdr ehdr;
    if (::gelf_getehdr(elf.get(), &ehdr) == nullptr) {
        throw Error(ExitCode::Failure, libelfError("cannot read the ELF header of " + path));
    }
    return ElfFile(path, std::move(fd), std::move(elf));
}

void
ElfFile::buildIndex() const {
    auto index = std::make_unique<SymbolIndex>();
    // .dynsym first so that, between equal candidates, the exported one wins.
    for (Elf64_Word wanted : {SHT_DYNSYM, SHT_SYMTAB}) {
        Elf_Scn* scn = nullptr;
        while ((scn = ::elf_nextscn(elf_.get(), scn)) != nullptr) {
            GElf_Shdr shdr;
            if (::gelf_getshdr(scn, &shdr) == nullptr || shdr.sh_type != wanted ||
                shdr.sh_entsize == 0) {
                continue;
            }
            Elf_Data* data = ::elf_getdata(scn, nullptr);
            if (data == nullptr) {
                continue;
            }
            // The version table runs parallel to .dynsym (same index).
            Elf_Data* versyms = nullptr;
            if (wanted == SHT_DYNSYM) {
                Elf_Scn* vscn = nullptr;
                while ((vscn = ::elf_nextscn(elf_.get(), vscn)) != nullptr) {
                    GElf_Shdr vshdr;
                    if (::gelf_getshdr(vscn, &vshdr) != nullptr && vshdr.sh_type == SHT_GNU_versym) {
                        versyms = ::elf_getdata(vscn, nullptr);
                        break;
                    }
                }
            }
            size_t count = shdr.sh_size / shdr.sh_entsize;
            for (size_t i = 1; i < count; ++i) { // entry 0 is the reserved null symbol
                GElf_Sym sym;
                if (::gelf_getsym(data, static_cast<int>(i), &sym) == nullptr ||
                    sym.st_shndx == SHN_UNDEF || sym.st_name == 0) {
                    continue;
                }
                unsigned char type = GELF_ST_TYPE(sym.st_info);
                if (type == STT_SECTION || type == STT_FILE) {
                    continue;
                }
                const char* name = ::elf_strptr(elf_.get(), shdr.sh_link, sym.st_name);
                if (name == nullptr || *name == '\0') {
                    continue;
                }
                bool hidden = false;
                if (versyms != nullptr && (i + 1) * sizeof(GElf_Versym) <= versyms->d_size) {
                    GElf_Versym versym;
                    if (::gelf_getversym(versyms, static_cast<int>(i), &versym) != nullptr) {
                        hidden = (versym & kVersymHidden) != 0;
                    }
                }
                unsigned char binding = GELF_ST_BIND(sym.st_info);
                int rank =
                    (binding != STB_LOCAL ? 4 : 0) + (!hidden ? 2 : 0) + (binding == STB_GLOBAL ? 1 : 0);
                IndexedSymbol candidate{ElfSymbol{sym.st_value, sym.st_size, type}, rank};
                auto [it, inserted] = index->try_emplace(std::string_view(name), candidate);
                if (!inserted && rank > it->second.rank) {
                    it->second = candidate;
                }
            }
        }
    }
    index_ = std::move(index);
}

std::optional<ElfSymbol>
ElfFile::findSymbol(std::string_view name) const {
    if (!index_) {
        buildIndex();
    }
    auto it = index_->find(name);
    if (it == index_->end()) {
        return std::nullopt;
    }
    return it->second.symbol;
}

uint64_t
ElfFile::firstLoadVaddr() const {
    size_t phnum = 0;
    if (::elf_getphdrnum(elf_.get(), &phnum) != 0) {
        return 0;
    }
    for (size_t i = 0; i < phnum; ++i) {
        GElf_Phdr phdr;
        if (::gelf_getphdr(elf_.get(), static_cast<int>(i), &phdr) != nullptr &&
            phdr.p_type == PT_LOAD) {
            // The kernel maps segments at page granularity (ELF gABI, "Program
            // Loading": p_vaddr and p_offset are congruent modulo the page size).
            long pageSize = ::sysconf(_SC_PAGESIZE);
            return phdr.p_vaddr & ~static_cast<uint64_t>(pageSize - 1);
        }
    }
    return 0;
}

std::optional<ElfFile::Padding>
ElfFile::executablePadding() const {
    size_t phnum = 0;
    if (::elf_getphdrnum(elf_.get(), &phnum) != 0) {
        return std::nullopt;
    }
    std::optional<Padding> found;
    auto pageSize = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    for (size_t i = 0; i < phnum; ++i) {
        GElf_Phdr phdr;
        if (::gelf_getphdr(elf_.get(), static_cast<int>(i), &phdr) != nullptr &&
            phdr.p_type == PT_LOAD && (phdr.p_flags & PF_X) != 0) {
            if (phdr.p_memsz != phdr.p_filesz) {
                continue; // zero-filled tail: not plain file bytes
            }
            uint64_t end = phdr.p_vaddr + phdr.p_filesz;
            uint64_t pageEnd = (end + pageSize - 1) & ~(pageSize - 1);
            found = Padding{end, pageEnd, phdr.p_offset + phdr.p_filesz};
        }
    }
    if (found && found->start == found->end) {
        return std::nullopt;
    }
    return found;
}

std::string
ElfFile::buildId() const {
    auto scanNotes = [](Elf_Data* data) -> std::string {
        size_t offset = 0;
        GElf_Nhdr nhdr;
        size_t nameOffset = 0;
        size_t descOffset = 0;
        while (data != nullptr && offset < data->d_size &&
               (offset = ::gelf_getnote(data, offset, &nhdr, &nameOffset, &descOffset)) > 0) {
            const char* base = static_cast<const char*>(data->d_buf);
            if (nhdr.n_type == NT_GNU_BUILD_ID && nhdr.n_namesz == sizeof(ELF_NOTE_GNU) &&
                std::string_view(base + nameOffset, nhdr.n_namesz - 1) == ELF_NOTE_GNU) {
                std::string hex;
                for (size_t i = 0; i < nhdr.n_descsz; ++i) {
                    hex += fmt::format("{:02x}", static_cast<unsigned char>(base[descOffset + i]));
                }
                return hex;
            }
        }
        return {};
    };
    Elf_Scn* scn = nullptr;
    while ((scn = ::elf_nextscn(elf_.get(), scn)) != nullptr) {
        GElf_Shdr shdr;
        if (::gelf_getshdr(scn, &shdr) != nullptr && shdr.sh_type == SHT_NOTE) {
            std::string id = scanNotes(::elf_getdata(scn, nullptr));
            if (!id.empty()) {
                return id;
            }
        }
    }
    // Section headers may be stripped entirely; the PT_NOTE segments remain.
    size_t phnum = 0;
    if (::elf_getphdrnum(elf_.get(), &phnum) == 0) {
        for (size_t i = 0; i < phnum; ++i) {
            GElf_Phdr phdr;
            if (::gelf_getphdr(elf_.get(), static_cast<int>(i), &phdr) != nullptr &&
                phdr.p_type == PT_NOTE) {
                std::string id = scanNotes(
                    ::elf_getdata_rawchunk(elf_.get(), static_cast<int64_t>(phdr.p_offset),
                                           phdr.p_filesz, phdr.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR));
                if (!id.empty()) {
                    return id;
                }
            }
        }
    }
    return {};
}

bool
ElfFile::isX86_64() const {
    GElf_Ehdr ehdr;
    return ::gelf_getehdr(elf_.get(), &ehdr) != nullptr && ehdr.e_ident[EI_CLASS] == ELFCLASS64 &&
           ehdr.e_machine == EM_X86_64;
}

std::string
ElfFile::soname() const {
    Elf_Scn* scn = nullptr;
    while ((scn = ::elf_nextscn(elf_.get(), scn)) != nullptr) {
        GElf_Shdr shdr;
        if (::gelf_getshdr(scn, &shdr) == nullptr || shdr.sh_type != SHT_DYNAMIC ||
            shdr.sh_entsize == 0) {
            continue;
        }
        Elf_Data* data = ::elf_getdata(scn, nullptr);
        size_t count = shdr.sh_size / shdr.sh_entsize;
        for (size_t i = 0; data != nullptr && i < count; ++i) {
            GElf_Dyn dyn;
            if (::gelf_getdyn(data, static_cast<int>(i), &dyn) == nullptr || dyn.d_tag == DT_NULL) {
                break;
            }
            if (dyn.d_tag == DT_SONAME) {
                const char* name = ::elf_strptr(elf_.get(), shdr.sh_link, dyn.d_un.d_val);
                return name != nullptr ? name : "";
            }
        }
    }
    return {};
}

std::optional<uint64_t>
ElfFile::fileOffsetOf(uint64_t vaddr) const {
    size_t phnum = 0;
    if (::elf_getphdrnum(elf_.get(), &phnum) != 0) {
        return std::nullopt;
    }
    for (size_t i = 0; i < phnum; ++i) {
        GElf_Phdr phdr;
        if (::gelf_getphdr(elf_.get(), static_cast<int>(i), &phdr) != nullptr &&
            phdr.p_type == PT_LOAD && vaddr >= phdr.p_vaddr && vaddr - phdr.p_vaddr < phdr.p_filesz) {
            return phdr.p_offset + (vaddr - phdr.p_vaddr);
        }
    }
    return std::nullopt;
}

std::optional<std::vector<unsigned char>>
ElfFile::readAtVaddr(uint64_t vaddr, size_t size) const {
    std::optional<uint64_t> first = fileOffsetOf(vaddr);
    std::optional<uint64_t> last = size == 0 ? first : fileOffsetOf(vaddr + size - 1);
    if (!first || !last || *last - *first + 1 != (size == 0 ? 1 : size)) {
        return std::nullopt;
    }
    std::vector<unsigned char> bytes(size);
    size_t done = 0;
    while (done < size) {
        ssize_t n =
            ::pread(fd_.get(), bytes.data() + done, size - done, static_cast<off_t>(*first + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return std::nullopt;
        }
        done += static_cast<size_t>(n);
    }
    return bytes;
}

std::optional<std::string>
ElfFile::readStringAtVaddr(uint64_t vaddr, size_t maxSize) const {
    std::string text;
    for (size_t i = 0; i < maxSize; ++i) {
        std::optional<uint64_t> offset = fileOffsetOf(vaddr + i);
        char c = 0;
        if (!offset || ::pread(fd_.get(), &c, 1, static_cast<off_t>(*offset)) != 1) {
            return std::nullopt;
        }
        if (c == '\0') {
            return text;
        }
        text += c;
    }
    return std::nullopt;
}

std::optional<ElfFile::Section>
ElfFile::section(std::string_view name) const {
    size_t shstrndx = 0;
    if (::elf_getshdrstrndx(elf_.get(), &shstrndx) != 0) {
        return std::nullopt;
    }
    Elf_Scn* scn = nullptr;
    while ((scn = ::elf_nextscn(elf_.get(), scn)) != nullptr) {
        GElf_Shdr shdr;
        if (::gelf_getshdr(scn, &shdr) == nullptr || shdr.sh_type == SHT_NOBITS) {
            continue;
        }
        const char* sectionName = ::elf_strptr(elf_.get(), shstrndx, shdr.sh_name);
        if (sectionName == nullptr || name != sectionName) {
            continue;
        }
        Elf_Data* data = ::elf_getdata(scn, nullptr);
        if (data == nullptr || data->d_buf == nullptr) {
            return std::nullopt;
        }
        return Section{shdr.sh_addr,
                       std::string_view(static_cast<const char*>(data->d_buf), data->d_size)};
    }
    return std::nullopt;
}

} // namespace memtap::symbols
