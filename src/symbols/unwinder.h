// Native stack unwinding of a thread that the caller has stopped (libdwfl).
//
// The Unwinder never attaches: memtap's attach layer already owns every thread
// with PTRACE_SEIZE, so libdwfl gets our own thread callbacks
// (dwfl_attach_state) that hand it the caller's saved registers and read memory
// through /proc/PID/mem (attach/remote_memory.h), instead of dwfl_linux_proc_attach, which would try
// to PTRACE_ATTACH itself.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "base/remote_ptr.h"

typedef struct Dwfl Dwfl; // libdwfl.h, kept out of this header

namespace memtap::symbols {

struct NativeFrame {
    RemotePtr pc;
    std::string function; // "" if unknown
    std::string module;   // path of the module holding pc, "" if none
};

struct UnwindResult {
    std::vector<NativeFrame> frames; // innermost first
    bool complete = false;           // reached the outermost frame normally
    std::string error;               // why it stopped early, "" if complete
};

class Unwinder {
public:
    // Reports the process's modules to libdwfl now, so that each unwind later
    // only pays for CFI lookups. Throws Error(NoSuchProcess / Failure).
    static Unwinder createOrThrow(pid_t pid);

    Unwinder(Unwinder&&) noexcept;
    Unwinder& operator=(Unwinder&&) noexcept;
    Unwinder(const Unwinder&) = delete;
    Unwinder& operator=(const Unwinder&) = delete;
    ~Unwinder();

    // `tid` must be a thread of the process, stopped by the caller (ptrace) for
    // the whole call; `regs` are its registers (PTRACE_GETREGS). Never throws
    // for unwinding problems: they end up in UnwindResult::error.
    UnwindResult unwind(pid_t tid, const struct user_regs_struct& regs, size_t maxFrames = 128);

    // Loads every module's ELF, unwind tables (CFI) and symbol index now.
    // Otherwise the first unwind pays for it (2-30 ms) while the caller holds
    // a target thread stopped; call this before stopping anything.
    void warmUp();

    pid_t pid() const;

    // Implementation detail, public only so that the libdwfl callbacks in the
    // .cpp can name it: the dwfl_arg, at a fixed address while libdwfl holds it.
    struct Context;

private:
    struct DwflDeleter {
        void operator()(Dwfl* dwfl) const;
    };

    Unwinder(std::unique_ptr<Context> context, std::unique_ptr<Dwfl, DwflDeleter> dwfl);

    // Declared before dwfl_ so that it is destroyed after it: dwfl_end calls
    // back into the context (detach callbacks).
    std::unique_ptr<Context> context_;
    std::unique_ptr<Dwfl, DwflDeleter> dwfl_;
};

} // namespace memtap::symbols
