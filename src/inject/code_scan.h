// Machine-code checks with Capstone. This file is the only one that sees a
// csh: the rest of memtap asks questions about bytes and gets answers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/remote_ptr.h"

namespace memtap::inject {

// True when the last two of `bytes` (the code just before a stop site)
// decode as `syscall`. The kernel already told us the thread is in a syscall
// (orig_rax >= 0) and rip points just past the instruction that entered it;
// this confirms that instruction was `syscall` (not int 0x80 or sysenter), so
// rewinding rip by 2 on restart re-issues the same call.
bool endsWithSyscallInstruction(std::span<const uint8_t> bytes);

// The address of the first `syscall` instruction in a linear decode of
// `code`, which starts at `base` in the target (used on libc's syscall()).
std::optional<RemotePtr> findSyscallInstruction(std::span<const uint8_t> code, RemotePtr base);

// "mnemonic operands" of every instruction in `code`, with a last line
// "(undecodable)" if the bytes do not decode to the end (for tests).
std::vector<std::string> disassembleAll(std::span<const uint8_t> code, RemotePtr address);

// "mnemonic operands" of the instruction at the start of `code`, for logs.
std::string describeInstruction(std::span<const uint8_t> code, RemotePtr address);

} // namespace memtap::inject
