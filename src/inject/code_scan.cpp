#include "inject/code_scan.h"

#include <capstone/capstone.h>

#include <memory>

#include "base/error.h"

namespace memtap::inject {
namespace {

struct CapstoneHandle {
    csh handle = 0;
    CapstoneHandle() {
        if (cs_open(CS_ARCH_X86, CS_MODE_64, &handle) != CS_ERR_OK) {
            throw Error(ExitCode::Failure, "capstone: cannot open an x86-64 disassembler");
        }
    }
    ~CapstoneHandle() { cs_close(&handle); }
    CapstoneHandle(const CapstoneHandle&) = delete;
    CapstoneHandle& operator=(const CapstoneHandle&) = delete;
};

struct InsnDeleter {
    size_t count;
    void operator()(cs_insn* insn) const { cs_free(insn, count); }
};
using InsnArray = std::unique_ptr<cs_insn, InsnDeleter>;

InsnArray
disassemble(const CapstoneHandle& cs, std::span<const uint8_t> code, uint64_t address, size_t maxCount,
            size_t* count) {
    cs_insn* insn = nullptr;
    *count = cs_disasm(cs.handle, code.data(), code.size(), address, maxCount, &insn);
    return InsnArray(insn, InsnDeleter{*count});
}

} // namespace

bool
endsWithSyscallInstruction(std::span<const uint8_t> bytes) {
    // `syscall` is 0f 05 (Intel SDM vol. 2B).
    if (bytes.size() < 2) {
        return false;
    }
    CapstoneHandle cs;
    size_t count = 0;
    auto insn = disassemble(cs, bytes.subspan(bytes.size() - 2), 0, 1, &count);
    return count == 1 && insn.get()[0].id == X86_INS_SYSCALL && insn.get()[0].size == 2;
}

std::optional<RemotePtr>
findSyscallInstruction(std::span<const uint8_t> code, RemotePtr base) {
    CapstoneHandle cs;
    size_t count = 0;
    auto insn = disassemble(cs, code, base.value(), 0, &count);
    for (size_t i = 0; i < count; ++i) {
        if (insn.get()[i].id == X86_INS_SYSCALL) {
            return RemotePtr(insn.get()[i].address);
        }
        if (insn.get()[i].id == X86_INS_RET) {
            break; // stay inside the function we were pointed at
        }
    }
    return std::nullopt;
}

std::string
describeInstruction(std::span<const uint8_t> code, RemotePtr address) {
    CapstoneHandle cs;
    size_t count = 0;
    auto insn = disassemble(cs, code, address.value(), 1, &count);
    if (count == 0) {
        return "(undecodable)";
    }
    return fmt::format("{} {}", insn.get()[0].mnemonic, insn.get()[0].op_str);
}

std::vector<std::string>
disassembleAll(std::span<const uint8_t> code, RemotePtr address) {
    CapstoneHandle cs;
    size_t count = 0;
    auto insn = disassemble(cs, code, address.value(), 0, &count);
    std::vector<std::string> lines;
    size_t decoded = 0;
    for (size_t i = 0; i < count; ++i) {
        lines.push_back(fmt::format("{} {}", insn.get()[i].mnemonic, insn.get()[i].op_str));
        decoded += insn.get()[i].size;
    }
    if (decoded != code.size()) {
        lines.push_back("(undecodable)");
    }
    return lines;
}

} // namespace memtap::inject
