#include "symbols/unwinder.h"

#include <dwarf.h>
#include <elfutils/libdwfl.h>

#include <algorithm>
#include <cerrno>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "attach/remote_memory.h"
#include "base/error.h"
#include "base/permission_hint.h"

namespace memtap::symbols {

namespace {

// The function symbols of one module sorted by address. dwfl_module_addrname
// scans the whole symbol table on every call (O(n): ~100 us for libpython's
// 15,000 symbols), which would dominate the unwind; this index makes it a
// binary search after the first lookup in the module.
class ModuleSymbols {
public:
    explicit ModuleSymbols(Dwfl_Module* module) {
        int count = ::dwfl_module_getsymtab(module);
        for (int i = 1; i < count; ++i) { // entry 0 is the null symbol
            GElf_Sym sym;
            GElf_Addr address = 0;
            GElf_Word shndx = 0;
            const char* name =
                ::dwfl_module_getsym_info(module, i, &sym, &address, &shndx, nullptr, nullptr);
            unsigned char type = GELF_ST_TYPE(sym.st_info);
            if (name == nullptr || *name == '\0' || shndx == SHN_UNDEF ||
                (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE)) {
                continue;
            }
            // Among aliases at one address prefer the public name (GLOBAL, then WEAK).
            int rank = GELF_ST_BIND(sym.st_info) == STB_GLOBAL ? 2
                       : GELF_ST_BIND(sym.st_info) == STB_WEAK ? 1
                                                               : 0;
            entries_.push_back(Entry{address, sym.st_size, rank, name});
        }
        std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
            return a.address != b.address ? a.address < b.address : a.rank > b.rank;
        });
    }

    // The function containing `pc`; else the nearest preceding symbol without a
    // size (hand-written assembly); "" if neither.
    const char* find(Dwarf_Addr pc) const {
        auto it = std::upper_bound(entries_.begin(), entries_.end(), pc,
                                   [](Dwarf_Addr value, const Entry& e) { return value < e.address; });
        if (it == entries_.begin()) {
            return "";
        }
        auto nearest = std::prev(it);
        // Walk back over the run of symbols that may still cover pc: sized
        // symbols do not nest in practice, so a few steps suffice.
        for (auto candidate = nearest;; --candidate) {
            if (candidate->size != 0 && pc < candidate->address + candidate->size) {
                // Best-ranked alias at that address (sorted first among equals).
                auto first =
                    std::lower_bound(entries_.begin(), candidate, candidate->address,
                                     [](const Entry& e, Dwarf_Addr value) { return e.address < value; });
                return first->name;
            }
            if (candidate == entries_.begin() || nearest - candidate >= 8) {
                break;
            }
        }
        if (nearest->size == 0) {
            auto first =
                std::lower_bound(entries_.begin(), nearest, nearest->address,
                                 [](const Entry& e, Dwarf_Addr value) { return e.address < value; });
            return first->name;
        }
        return "";
    }

private:
    struct Entry {
        Dwarf_Addr address;
        uint64_t size;
        int rank;
        const char* name; // libdwfl's string table: valid while the Dwfl lives
    };
    std::vector<Entry> entries_;
};

} // namespace

struct Unwinder::Context {
    pid_t pid = 0;
    // Per module, built on first use; owned here, dropped after dwfl_end.
    std::unordered_map<Dwfl_Module*, ModuleSymbols> symbols;
    // For memory_read (attach/remote_memory.h says why /proc/PID/mem).
    std::optional<attach::RemoteMemory> mem;
    // The thread being unwound: valid only during unwind().
    pid_t tid = 0;
    const user_regs_struct* regs = nullptr;
    bool threadReported = false;
};

namespace {

std::string
dwflError(const std::string& what) {
    return fmt::format("{}: {}", what, ::dwfl_errmsg(-1));
}

// Dwfl_Callbacks must outlive the Dwfl; debuginfo_path NULL means the default
// search (.debug next to the file and /usr/lib/debug).
char* gDebuginfoPath = nullptr;
const Dwfl_Callbacks kDwflCallbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = nullptr,
    .debuginfo_path = &gDebuginfoPath,
};

// We only ever unwind the one thread named by the current unwind() call.
pid_t
nextThread(Dwfl*, void* dwflArg, void** threadArgp) {
    auto* context = static_cast<Unwinder::Context*>(dwflArg);
    if (context->regs == nullptr || context->threadReported) {
        return 0; // no (more) threads
    }
    context->threadReported = true;
    *threadArgp = context;
    return context->tid;
}

bool
getThread(Dwfl*, pid_t tid, void* dwflArg, void** threadArgp) {
    auto* context = static_cast<Unwinder::Context*>(dwflArg);
    if (context->regs == nullptr || tid != context->tid) {
        return false;
    }
    *threadArgp = context;
    return true;
}

bool
memoryRead(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void* dwflArg) {
    auto* context = static_cast<Unwinder::Context*>(dwflArg);
    return context->mem && context->mem->tryRead(RemotePtr(addr), result, sizeof(*result));
}

bool
setInitialRegisters(Dwfl_Thread* thread, void* threadArg) {
    auto* context = static_cast<Unwinder::Context*>(threadArg);
    const user_regs_struct& r = *context->regs;
    // DWARF register numbers for x86-64 (System V psABI, AMD64 supplement,
    // Figure 3.36 "DWARF Register Number Mapping"): 0 rax, 1 rdx, 2 rcx,
    // 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp, 8-15 r8-r15, 16 return address (rip).
    const Dwarf_Word dwarfRegs[17] = {
        r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8,
        r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip,
    };
    if (!::dwfl_thread_state_registers(thread, 0, 17, dwarfRegs)) {
        return false;
    }
    ::dwfl_thread_state_register_pc(thread, r.rip);
    return true;
}

const Dwfl_Thread_Callbacks kThreadCallbacks = {
    .next_thread = nextThread,
    .get_thread = getThread,
    .memory_read = memoryRead,
    .set_initial_registers = setInitialRegisters,
    .detach = nullptr,        // nothing to undo: we never attached
    .thread_detach = nullptr, // the caller resumes its threads itself
};

struct FrameWalk {
    Dwfl* dwfl = nullptr;
    Unwinder::Context* context = nullptr;
    size_t maxFrames = 0;
    UnwindResult* result = nullptr;
    bool hitLimit = false;
    bool badFrame = false;
};

int
frameCallback(Dwfl_Frame* frame, void* arg) {
    auto* walk = static_cast<FrameWalk*>(arg);
    if (walk->result->frames.size() >= walk->maxFrames) {
        walk->hitLimit = true;
        return DWARF_CB_ABORT;
    }
    Dwarf_Addr pc = 0;
    bool isActivation = false;
    if (!::dwfl_frame_pc(frame, &pc, &isActivation)) {
        walk->badFrame = true;
        walk->result->error = dwflError("cannot read the frame's pc");
        return DWARF_CB_ABORT;
    }
    // A return address points after the call; look up the call itself so that
    // a call at the very end of a function is attributed to that function.
    // The initial frame and signal frames ("activations") hold exact pcs.
    Dwarf_Addr lookup = isActivation ? pc : pc - 1;
    NativeFrame out;
    out.pc = RemotePtr(pc);
    if (Dwfl_Module* module = ::dwfl_addrmodule(walk->dwfl, lookup); module != nullptr) {
        auto symbols = walk->context->symbols.find(module);
        if (symbols == walk->context->symbols.end()) {
            symbols = walk->context->symbols.try_emplace(module, module).first;
        }
        out.function = symbols->second.find(lookup);
        const char* moduleName =
            ::dwfl_module_info(module, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
        if (moduleName != nullptr) {
            out.module = moduleName;
        }
    }
    walk->result->frames.push_back(std::move(out));
    return DWARF_CB_OK;
}

} // namespace

void
Unwinder::DwflDeleter::operator()(Dwfl* dwfl) const {
    ::dwfl_end(dwfl);
}

Unwinder::Unwinder(std::unique_ptr<Context> context, std::unique_ptr<Dwfl, DwflDeleter> dwfl)
    : context_(std::move(context)), dwfl_(std::move(dwfl)) {}

Unwinder::Unwinder(Unwinder&&) noexcept = default;
Unwinder&
Unwinder::operator=(Unwinder&& other) noexcept {
    if (this != &other) {
        dwfl_.reset(); // before the context it calls back into
        context_ = std::move(other.context_);
        dwfl_ = std::move(other.dwfl_);
    }
    return *this;
}
Unwinder::~Unwinder() {
    dwfl_.reset();
}

pid_t
Unwinder::pid() const {
    return context_ ? context_->pid : 0;
}

Unwinder
Unwinder::createOrThrow(pid_t pid) {
    auto context = std::make_unique<Context>();
    context->pid = pid;
    context->mem = attach::RemoteMemory::tryOpenForReading(pid);

    std::unique_ptr<Dwfl, DwflDeleter> dwfl(::dwfl_begin(&kDwflCallbacks));
    if (!dwfl) {
        throw Error(ExitCode::Failure, dwflError("cannot start a libdwfl session"));
    }
    ::dwfl_report_begin(dwfl.get());
    // 0 on success, -1 for a libdwfl error, else an errno value from reading
    // /proc/PID/maps (libdwfl.h, dwfl_linux_proc_report).
    int rc = ::dwfl_linux_proc_report(dwfl.get(), pid);
    if (rc < 0) {
        throw Error(ExitCode::Failure,
                    dwflError(fmt::format("cannot report the modules of process {}", pid)));
    }
    if (rc > 0) {
        ExitCode code = rc == ENOENT || rc == ESRCH   ? ExitCode::NoSuchProcess
                        : rc == EACCES || rc == EPERM ? ExitCode::PermissionDenied
                                                      : ExitCode::Failure;
        throw Error(code,
                    describeErrno(fmt::format("cannot read the memory map of process {}", pid), rc),
                    code == ExitCode::PermissionDenied ? processAccessHint() : "");
    }
    if (::dwfl_report_end(dwfl.get(), nullptr, nullptr) != 0) {
        throw Error(ExitCode::Failure, dwflError("cannot finish reporting modules"));
    }
    // ELF NULL: libdwfl takes the architecture from the reported modules.
    if (!::dwfl_attach_state(dwfl.get(), nullptr, pid, &kThreadCallbacks, context.get())) {
        throw Error(ExitCode::Failure,
                    dwflError(fmt::format("cannot set up unwinding state for process {}", pid)));
    }
    return Unwinder(std::move(context), std::move(dwfl));
}

namespace {

int
warmUpModule(Dwfl_Module* module, void**, const char*, Dwarf_Addr, void* arg) {
    auto* context = static_cast<Unwinder::Context*>(arg);
    Dwarf_Addr bias = 0;
    // Both may fail for a module without ELF on disk; the unwind then copes as before.
    (void)::dwfl_module_getelf(module, &bias);
    (void)::dwfl_module_eh_cfi(module, &bias);
    context->symbols.try_emplace(module, module);
    return DWARF_CB_OK;
}

} // namespace

void
Unwinder::warmUp() {
    ::dwfl_getmodules(dwfl_.get(), warmUpModule, context_.get(), 0);
}

UnwindResult
Unwinder::unwind(pid_t tid, const struct user_regs_struct& regs, size_t maxFrames) {
    UnwindResult result;
    context_->tid = tid;
    context_->regs = &regs;
    context_->threadReported = false;

    FrameWalk walk;
    walk.dwfl = dwfl_.get();
    walk.context = context_.get();
    walk.maxFrames = maxFrames;
    walk.result = &result;
    // Three-way result (libdwfl.h, dwfl_getthread_frames; elfutils src/stack.c):
    // 0 all frames walked to the outermost one, -1 an error (dwfl_errmsg says
    // which; the frames so far are still valid), else our callback's abort.
    int rc = ::dwfl_getthread_frames(dwfl_.get(), tid, frameCallback, &walk);
    context_->regs = nullptr;
    switch (rc) {
    case 0:
        result.complete = true;
        break;
    case -1:
        result.error = dwflError(fmt::format("unwinding thread {} stopped", tid));
        break;
    default:
        if (walk.hitLimit) {
            result.error = fmt::format("stopped at the limit of {} frames", maxFrames);
        } else if (!walk.badFrame) {
            result.error = "unwinding was aborted";
        }
        break;
    }
    return result;
}

} // namespace memtap::symbols
