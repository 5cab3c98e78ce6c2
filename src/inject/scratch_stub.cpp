#include "inject/scratch_stub.h"

#include <cstddef>
#include <cstring>

#include "agent/protocol.h"
#include "attach/registers.h"
#include "base/error.h"

namespace memtap::inject {
namespace {

constexpr uint64_t kPage = 4096;
constexpr long kRestartSyscall = 219; // __NR_restart_syscall, syscall_64.tbl

// The stub reads these fields RIP-relative; keep the layout fixed.
static_assert(sizeof(ScratchControl) <= kScratchStringsOffset - kScratchControlOffset);
static_assert(offsetof(ScratchControl, result) % 8 == 0);
// The agent's release-scratch reads the head of the block (protocol.h).
static_assert(kScratchControlOffset == MEMTAP_SCRATCH_CONTROL_OFFSET);
static_assert(offsetof(ScratchControl, magic) == offsetof(memtap_scratch_header, magic));
static_assert(offsetof(ScratchControl, totalBytes) == offsetof(memtap_scratch_header, total_bytes));
static_assert(offsetof(ScratchControl, ownerPid) == offsetof(memtap_scratch_header, owner_pid));
static_assert(offsetof(ScratchControl, inCall) == offsetof(memtap_scratch_header, in_call));
static_assert(kScratchXstateOffset % 64 == 0, "XRSTOR needs a 64-byte aligned area");

// XSAVE area layout (Intel SDM vol. 1, 13.4): the legacy FXSAVE region's
// bytes 464..511 are software-available; Linux puts struct _fpx_sw_bytes there
// (arch/x86/include/uapi/asm/sigcontext.h): magic1, extended_size, xfeatures.
// The XSAVE header (XSTATE_BV first) starts at byte 512.
constexpr size_t kSwBytesOffset = 464;
constexpr uint32_t kFpXstateMagic1 = 0x46505853;
constexpr size_t kXstateBvOffset = 512;
constexpr uint64_t kXfeatureTileData = 1ull << 18;
constexpr uint64_t kXfeatureLegacy = 0x3; // x87 | SSE

// A minimal emitter for the handful of instructions the stub needs, with
// RIP-relative operands given as offsets within the scratch mapping.
class Emitter {
public:
    uint64_t here() const { return code_.size(); }
    void bytes(std::initializer_list<uint8_t> b) { code_.insert(code_.end(), b); }
    // Appends the disp32 of a RIP-relative operand; `trailing` is the number
    // of instruction bytes that follow the displacement (an immediate).
    void ripRelative(uint64_t target, size_t trailing = 0) {
        int64_t end = static_cast<int64_t>(here() + 4 + trailing);
        int64_t disp = static_cast<int64_t>(target) - end;
        uint32_t d = static_cast<uint32_t>(static_cast<int32_t>(disp));
        for (int i = 0; i < 4; ++i) {
            code_.push_back(static_cast<uint8_t>(d >> (8 * i)));
        }
    }
    void imm32(uint32_t v) {
        for (int i = 0; i < 4; ++i) {
            code_.push_back(static_cast<uint8_t>(v >> (8 * i)));
        }
    }
    void patchRel8(uint64_t at, uint64_t target) {
        code_[at] = static_cast<uint8_t>(static_cast<int8_t>(target - (at + 1)));
    }
    std::vector<uint8_t> take() { return std::move(code_); }

private:
    std::vector<uint8_t> code_;
};

constexpr uint64_t
field(size_t offset) {
    return kScratchControlOffset + offset;
}

// `mov REG64, [rip + target]`: REX.W (+R for r8-r15), 8B, ModRM mod=00 rm=101.
void
loadRegister(Emitter& e, unsigned reg, uint64_t target) {
    e.bytes({static_cast<uint8_t>(reg >= 8 ? 0x4c : 0x48), 0x8b,
             static_cast<uint8_t>(((reg & 7) << 3) | 0x05)});
    e.ripRelative(target);
}

// Loads rflags, every general register, rsp and rip from the control block
// at `control` (an offset in the same address space as the code). With
// `ownStack`, popfq goes through the control block's miniStack; without, the
// thread's stack 256 bytes below rsp (clear of the 128-byte red zone).
void
emitRegisterRestore(Emitter& e, uint64_t control, bool ownStack) {
    auto at = [control](size_t offset) { return control + offset; };
    if (ownStack) {
        e.bytes({0x48, 0x8d, 0x25}); // lea rsp, [rip+miniStack end]
        e.ripRelative(at(offsetof(ScratchControl, miniStack) + sizeof(ScratchControl::miniStack)));
    } else {
        e.bytes({0x48, 0x8d, 0xa4, 0x24, 0x00, 0xff, 0xff, 0xff}); // lea rsp, [rsp-256]
    }
    e.bytes({0xff, 0x35}); // push qword [rip+rflags]
    e.ripRelative(at(offsetof(ScratchControl, rflags)));
    e.bytes({0x9d}); // popfq; nothing below changes the flags
    // ModRM register numbers: rax 0, rcx 1, rdx 2, rbx 3, rsp 4, rbp 5, rsi 6, rdi 7, r8..r15 8..15.
    const struct {
        unsigned reg;
        size_t offset;
    } loads[] = {
        {0, offsetof(ScratchControl, rax)},  {1, offsetof(ScratchControl, rcx)},
        {2, offsetof(ScratchControl, rdx)},  {3, offsetof(ScratchControl, rbx)},
        {5, offsetof(ScratchControl, rbp)},  {6, offsetof(ScratchControl, rsi)},
        {7, offsetof(ScratchControl, rdi)},  {8, offsetof(ScratchControl, r8)},
        {9, offsetof(ScratchControl, r9)},   {10, offsetof(ScratchControl, r10)},
        {11, offsetof(ScratchControl, r11)}, {12, offsetof(ScratchControl, r12)},
        {13, offsetof(ScratchControl, r13)}, {14, offsetof(ScratchControl, r14)},
        {15, offsetof(ScratchControl, r15)}, {4, offsetof(ScratchControl, rsp)},
    };
    for (const auto& load : loads) {
        loadRegister(e, load.reg, at(load.offset));
    }
    e.bytes({0xff, 0x25}); // jmp [rip+rip]
    e.ripRelative(at(offsetof(ScratchControl, rip)));
}

} // namespace

uint64_t
scratchBytesFor(size_t xstateBytes) {
    uint64_t xstatePages = (std::max<uint64_t>(xstateBytes, 1) + kPage - 1) / kPage;
    return kScratchXstateOffset + xstatePages * kPage;
}

std::vector<uint8_t>
buildStubCode(StubEntries& entries) {
    Emitter e;
    entries.syscallEntry = e.here();
    e.bytes({0x0f, 0x05}); // syscall
    entries.landing = e.here();
    e.bytes({0x48, 0x89, 0x05}); // mov [rip+result], rax
    e.ripRelative(field(offsetof(ScratchControl, result)));
    e.bytes({0xb8}); // mov eax, getpid
    e.imm32(static_cast<uint32_t>(kMarkerSyscall));
    e.bytes({0x0f, 0x05}); // syscall: the host takes over at its entry stop
    entries.markerEnd = e.here();

    // From here on memtap is gone: put the thread back by itself.
    e.bytes({0xc7, 0x05}); // mov dword [rip+inCall], 0
    e.ripRelative(field(offsetof(ScratchControl, inCall)), 4);
    e.imm32(0);
    // The memfd of a dlopen in progress: closeResultFd names the result of
    // the memfd_create just made, else fdToClosePlusOne the one held.
    e.bytes({0x8b, 0x3d}); // mov edi, [rip+fdToClosePlusOne]
    e.ripRelative(field(offsetof(ScratchControl, fdToClosePlusOne)));
    e.bytes({0xff, 0xcf}); // dec edi
    e.bytes({0x83, 0x3d}); // cmp dword [rip+closeResultFd], 0
    e.ripRelative(field(offsetof(ScratchControl, closeResultFd)), 1);
    e.bytes({0x00});
    e.bytes({0x74, 0x06}); // je +6: keep edi
    e.bytes({0x8b, 0x3d}); // mov edi, [rip+result] (low half: the fd)
    e.ripRelative(field(offsetof(ScratchControl, result)));
    e.bytes({0x85, 0xff}); // test edi, edi
    e.bytes({0x78, 0x00}); // js skipClose
    uint64_t jsClose = e.here() - 1;
    e.bytes({0xb8}); // mov eax, close
    e.imm32(3);      // __NR_close, syscall_64.tbl
    e.bytes({0x0f, 0x05});
    e.patchRel8(jsClose, e.here());
    e.bytes({0x48, 0x8b, 0x05}); // mov rax, [rip+errnoAddress]
    e.ripRelative(field(offsetof(ScratchControl, errnoAddress)));
    e.bytes({0x48, 0x85, 0xc0}); // test rax, rax
    e.bytes({0x74, 0x00});       // jz skipErrno
    uint64_t jzErrno = e.here() - 1;
    e.bytes({0x8b, 0x0d}); // mov ecx, [rip+savedErrno]
    e.ripRelative(field(offsetof(ScratchControl, savedErrno)));
    e.bytes({0x89, 0x08}); // mov [rax], ecx
    e.patchRel8(jzErrno, e.here());

    e.bytes({0x48, 0x8b, 0x05}); // mov rax, [rip+xrstorMask]
    e.ripRelative(field(offsetof(ScratchControl, xrstorMask)));
    e.bytes({0x48, 0x85, 0xc0}); // test rax, rax
    e.bytes({0x74, 0x00});       // jz skipXstate
    uint64_t jzXstate = e.here() - 1;
    e.bytes({0x48, 0x89, 0xc2});       // mov rdx, rax
    e.bytes({0x48, 0xc1, 0xea, 0x20}); // shr rdx, 32
    e.bytes({0x48, 0x0f, 0xae, 0x2d}); // xrstor64 [rip+xstate] (EDX:EAX = mask)
    e.ripRelative(kScratchXstateOffset);
    e.patchRel8(jzXstate, e.here());

    emitRegisterRestore(e, kScratchControlOffset, true);
    auto code = e.take();
    if (code.size() > kScratchControlOffset) {
        throw Error(ExitCode::Failure, "return stub larger than its page");
    }
    return code;
}

std::vector<uint8_t>
buildPaddingStub(const user_regs_struct& interrupted) {
    Emitter e;
    e.bytes({0x0f, 0x05}); // syscall; the host takes over at its exit stop
    emitRegisterRestore(e, kPaddingControlOffset, false);
    auto code = e.take();
    if (code.size() > kPaddingControlOffset) {
        throw Error(ExitCode::Failure, "padding stub larger than its slot");
    }
    ScratchControl control = makeScratchControl(0, interrupted, {}, 0, 0);
    code.resize(kPaddingControlOffset);
    const auto* bytes = reinterpret_cast<const uint8_t*>(&control);
    code.insert(code.end(), bytes, bytes + sizeof(control));
    return code;
}

user_regs_struct
resumeRegistersFor(const user_regs_struct& interrupted) {
    user_regs_struct regs = interrupted;
    auto nr = static_cast<int64_t>(interrupted.orig_rax);
    auto rax = static_cast<int64_t>(interrupted.rax);
    if (nr >= 0 && attach::isRestartCode(rax)) {
        // Back onto the 2-byte `syscall` (checked by the safe-point rule).
        regs.rip = interrupted.rip - 2;
        regs.rax = (rax == -attach::kErestartRestartBlock) ? kRestartSyscall : interrupted.orig_rax;
    }
    regs.orig_rax = static_cast<uint64_t>(-1);
    return regs;
}

uint64_t
xrstorMaskFor(const std::vector<uint8_t>& xstate) {
    if (xstate.size() < kXstateBvOffset + 64) {
        return 0;
    }
    uint32_t magic1 = 0;
    uint64_t xfeatures = 0;
    uint64_t xstateBv = 0;
    std::memcpy(&magic1, xstate.data() + kSwBytesOffset, sizeof(magic1));
    std::memcpy(&xfeatures, xstate.data() + kSwBytesOffset + 8, sizeof(xfeatures));
    std::memcpy(&xstateBv, xstate.data() + kXstateBvOffset, sizeof(xstateBv));
    uint64_t mask = (magic1 == kFpXstateMagic1) ? xfeatures : (xstateBv | kXfeatureLegacy);
    if ((xstateBv & kXfeatureTileData) == 0) {
        mask &= ~kXfeatureTileData;
    }
    return mask;
}

ScratchControl
makeScratchControl(uint64_t totalBytes, const user_regs_struct& interrupted,
                   const std::vector<uint8_t>& xstate, int ownerPid, uint64_t ownerStartTime) {
    ScratchControl c{};
    std::memcpy(c.magic, kScratchMagic, sizeof(c.magic));
    c.layoutVersion = 1;
    c.totalBytes = static_cast<uint32_t>(totalBytes);
    c.ownerPid = ownerPid;
    c.ownerStartTime = ownerStartTime;
    c.xrstorMask = xrstorMaskFor(xstate);
    user_regs_struct r = resumeRegistersFor(interrupted);
    c.rax = r.rax;
    c.rbx = r.rbx;
    c.rcx = r.rcx;
    c.rdx = r.rdx;
    c.rsi = r.rsi;
    c.rdi = r.rdi;
    c.rbp = r.rbp;
    c.r8 = r.r8;
    c.r9 = r.r9;
    c.r10 = r.r10;
    c.r11 = r.r11;
    c.r12 = r.r12;
    c.r13 = r.r13;
    c.r14 = r.r14;
    c.r15 = r.r15;
    c.rsp = r.rsp;
    c.rip = r.rip;
    c.rflags = r.eflags;
    return c;
}

} // namespace memtap::inject
