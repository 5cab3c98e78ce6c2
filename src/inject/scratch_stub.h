// The scratch mapping a borrowed thread works in, and the return stub that
// makes every moment of the borrow survivable without memtap.
//
// Why: memtap can be SIGKILLed at any moment (a closed terminal, the OOM
// killer, `timeout -s KILL`). The kernel then detaches the borrowed thread and
// it runs on with whatever registers it has at that instant. So at every
// instant, the thread's registers and the memory they point into must lead it
// back to the exact state it was interrupted in, with nobody's help:
//
//  - every remote call returns into `landing` below, every remote syscall is
//    issued from `syscallEntry` and falls into it;
//  - `landing` stores rax for the host, then makes one marker syscall
//    (getpid). The host resumes the thread with PTRACE_SYSCALL and takes over
//    at the marker's syscall-entry stop; the code after the marker never runs
//    while memtap is alive;
//  - if memtap is gone, the thread runs on past the marker and restores
//    itself: errno, the extended state (XRSTOR), rflags, every general
//    register, rsp, and jumps back. A syscall it had been blocked in is
//    re-issued the way the kernel restarts one (rip rewound onto the
//    `syscall` instruction, rax = the syscall number; restart_syscall for
//    -ERESTART_RESTARTBLOCK), computed once on the host: resumeRegistersFor.
//
// Layout (one anonymous mapping, read/write/execute, at an address the
// kernel picks):
//   +0x0000  code: syscallEntry, landing, marker, the restore path
//   +0x1000  ScratchControl: magic, owner, result, errno, resume registers
//   +0x1800  strings the remote calls take (memfd name, the dlopen path)
//   +0x2000  memtap_start_args (8 KiB reserved)
//   +0x4000  the saved XSAVE area (64-byte aligned, as XRSTOR requires)
//
// A memtap killed mid-attach leaves this mapping behind (a few pages). The
// next attach finds it by its magic, and adopts it when its owner is gone and
// no remote call is in flight (ScratchControl::inCall, cleared by the stub's
// own restore path); the agent unmaps it once the host says the thread left.
#pragma once

#include <sys/user.h>

#include <cstdint>
#include <vector>

#include "base/remote_ptr.h"

namespace memtap::inject {

inline constexpr uint64_t kScratchCodeOffset = 0x0000;
inline constexpr uint64_t kScratchControlOffset = 0x1000;
inline constexpr uint64_t kScratchStringsOffset = 0x1800;
inline constexpr uint64_t kScratchArgsOffset = 0x2000;
inline constexpr uint64_t kScratchArgsBytes = 0x2000;
inline constexpr uint64_t kScratchXstateOffset = 0x4000;
inline constexpr char kScratchMagic[8] = {'m', 'e', 'm', 't', 'a', 'p', 'S', '1'};

// Where the scratch is mapped (MAP_FIXED_NOREPLACE, first free of a few
// slots from here, else where the kernel likes): a fixed place lets the next
// attach recognise a scratch that a memtap killed between the mmap and the
// first write left zeroed, without its header. ASCII "memt", far below the
// kernel's mmap base and above any executable's image.
inline constexpr uint64_t kScratchHint = 0x6d656d740000;
inline constexpr int kScratchHintSlots = 8;
inline constexpr uint64_t kScratchHintStride = 0x100000; // 1 MiB apart

// Bytes of scratch for a thread whose XSAVE area has `xstateBytes`.
uint64_t scratchBytesFor(size_t xstateBytes);

// The control block at +0x1000. The stub addresses its fields RIP-relative,
// so the layout is fixed (static_asserts in scratch_stub.cpp).
struct ScratchControl {
    char magic[8];
    uint32_t layoutVersion;
    uint32_t totalBytes;
    int32_t ownerPid;        // the memtap process (host pid) that set this scratch up
    uint32_t inCall;         // 1 while the thread may be running our code; the stub clears it
    uint64_t ownerStartTime; // its start time (/proc/PID/stat field 22), against PID reuse
    uint32_t reserved0;      // 0
    uint32_t closeResultFd;  // 1: the last call's result is a new fd of ours: the stub closes it
    uint64_t result;         // rax of the last remote call, stored by `landing`
    uint64_t errnoAddress;   // the thread's &errno (0 until known): the stub restores it
    int32_t savedErrno;
    int32_t fdToClosePlusOne; // else: a memfd of ours the stub closes (0: none)
    uint64_t xrstorMask;      // EDX:EAX for XRSTOR; 0 = no extended state saved
    // Resume registers (resumeRegistersFor), loaded by the restore path.
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rsp, rip, rflags;
    uint64_t miniStack[8]; // the restore path's stack for `push; popfq`
};

// Offsets of the stub's entry points in the code page.
struct StubEntries {
    uint64_t syscallEntry; // `syscall`, then falls into landing
    uint64_t landing;      // return address of every remote call
    uint64_t markerEnd;    // rip at the marker syscall's entry stop
};

// The stub's machine code, and where its entries are. Pure: unit-tested by
// decoding it with Capstone.
std::vector<uint8_t> buildStubCode(StubEntries& entries);

// The stub that creates and removes the scratch mapping, which cannot live
// in it. It goes into the padding after the last executable segment of a
// loaded module (bytes mapped executable that no code occupies, restored
// afterwards): `syscall`, then, if memtap is gone, the register restore above
// with its data right behind the code. A syscall changes neither errno nor
// the extended state, so general registers and rflags are all it restores.
inline constexpr uint64_t kPaddingControlOffset = 256;
inline constexpr uint64_t kPaddingStubBytes = kPaddingControlOffset + sizeof(ScratchControl);
std::vector<uint8_t> buildPaddingStub(const user_regs_struct& interrupted);

// The marker syscall `landing` makes (getpid: no side effect, allowed by
// every seccomp policy we know; checked against the target's filter anyway).
inline constexpr long kMarkerSyscall = 39; // __NR_getpid, arch/x86/entry/syscalls/syscall_64.tbl

// The registers that put the thread back where it was interrupted, with a
// syscall it was blocked in re-issued the way the kernel restarts one
// (arch/x86/kernel/signal.c, arch_do_signal_or_restart), and orig_rax = -1 so
// the kernel applies no restart logic of its own on top. Pure.
user_regs_struct resumeRegistersFor(const user_regs_struct& interrupted);

// The XRSTOR mask for a saved XSAVE area in the standard (non-compacted)
// format that PTRACE_GETREGSET(NT_X86_XSTATE) returns: the user features the
// kernel enabled (sw_reserved.xfeatures), minus AMX tile data unless the
// area holds it (XRSTOR of a feature disabled by XFD raises #NM). 0 for an
// area too short to hold an XSAVE header (then nothing is restored).
uint64_t xrstorMaskFor(const std::vector<uint8_t>& xstate);

// The control block for a fresh borrow, from the saved state.
ScratchControl makeScratchControl(uint64_t totalBytes, const user_regs_struct& interrupted,
                                  const std::vector<uint8_t>& xstate, int ownerPid,
                                  uint64_t ownerStartTime);

} // namespace memtap::inject
