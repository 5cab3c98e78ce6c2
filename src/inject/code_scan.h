// Machine-code checks with Capstone. This file is the only one that sees a
// csh: the rest of memtap asks questions about bytes and gets answers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "base/remote_ptr.h"

namespace memtap::inject {

// True when `bytes` (the code just before a stop site) end with a complete
// `syscall` instruction, i.e. the thread stopped on return from a syscall.
bool endsWithSyscallInstruction(std::span<const uint8_t> bytes);

// The address of the first `syscall` instruction in a linear decode of
// `code`, which starts at `base` in the target (used on libc's syscall()).
std::optional<RemotePtr> findSyscallInstruction(std::span<const uint8_t> code, RemotePtr base);

// "mnemonic operands" of the instruction at the start of `code`, for logs.
std::string describeInstruction(std::span<const uint8_t> code, RemotePtr address);

} // namespace memtap::inject
