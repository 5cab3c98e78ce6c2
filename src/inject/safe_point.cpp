#include "inject/safe_point.h"

#include <sys/syscall.h>

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "inject/code_scan.h"

namespace memtap::inject {
namespace {

// Plain blocking syscalls (x86-64 numbers from <sys/syscall.h>): they hold
// no user-space lock and restart cleanly after an interrupt stop.
constexpr std::array kBlockingSyscalls = {
    SYS_read,
    SYS_pread64,
    SYS_readv,
    SYS_preadv,
    SYS_recvfrom,
    SYS_recvmsg,
    SYS_select,
    SYS_pselect6,
    SYS_poll,
    SYS_ppoll,
    SYS_epoll_wait,
    SYS_epoll_pwait,
    SYS_accept,
    SYS_accept4,
    SYS_nanosleep,
    SYS_clock_nanosleep,
    SYS_wait4,
    SYS_waitid,
    SYS_pause,
    SYS_rt_sigtimedwait,
    SYS_write,
    SYS_sendto,
    SYS_sendmsg,
    SYS_connect,
    441 /* epoll_pwait2 */,
};

// libc / ld.so frames allowed on a borrowed thread's stack, as normalized
// names: the wrappers of the syscalls above and the entry points every
// thread starts from (_start -> __libc_start_main for the main thread,
// clone3 -> start_thread for the others).
constexpr auto kAllowedLibcFrames = std::to_array<std::string_view>({
    "read",       "pread64",         "pread",        "readv",        "preadv",   "recv",
    "recvfrom",   "recvmsg",         "select",       "pselect",      "pselect6", "poll",
    "ppoll",      "epoll_wait",      "epoll_pwait",  "epoll_pwait2", "accept",   "accept4",
    "nanosleep",  "clock_nanosleep", "sleep",        "usleep",       "wait4",    "waitpid",
    "waitid",     "pause",           "sigtimedwait", "write",        "send",     "sendto",
    "sendmsg",    "connect",         "syscall",      "start_thread", "clone3",   "clone",
    "start_main", "start_call_main", "start",
});

// Prefixes (after normalization) that mark allocator or loader code anywhere.
constexpr auto kForbiddenPrefixes = std::to_array<std::string_view>({
    "malloc",          "free",
    "calloc",          "realloc",
    "memalign",        "posix_memalign",
    "aligned_alloc",   "valloc",
    "pvalloc",         "int_malloc",
    "int_free",        "int_realloc",
    "tcache",          "dl",
    "PyMem_",          "PyObject_Malloc",
    "PyObject_Calloc", "PyObject_Realloc",
    "PyObject_Free",   "PyMem",
    "pymalloc",        "fork",
});

bool
isLibcOrLoader(const std::string& module) {
    auto base = module.substr(module.rfind('/') + 1);
    return base.rfind("libc.so", 0) == 0 || base.rfind("libc-", 0) == 0 ||
           base.rfind("ld-linux", 0) == 0 || base.rfind("libpthread", 0) == 0 ||
           base.rfind("libdl", 0) == 0;
}

} // namespace

std::string
normalizeLibcName(std::string_view name) {
    for (bool changed = true; changed;) {
        changed = false;
        for (std::string_view prefix : {"__GI_", "__libc_", "__", "_IO_"}) {
            if (name.size() > prefix.size() && name.substr(0, prefix.size()) == prefix) {
                name.remove_prefix(prefix.size());
                changed = true;
            }
        }
    }
    // Versioned or suffixed aliases: "clock_nanosleep@GLIBC_2.17", "select_nocancel".
    if (auto at = name.find('@'); at != std::string_view::npos) {
        name = name.substr(0, at);
    }
    for (std::string_view suffix : {"_nocancel", "64"}) {
        if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix &&
            name != "pread64") {
            name.remove_suffix(suffix.size());
        }
    }
    return std::string(name);
}

bool
isPlainBlockingSyscall(long number) {
    return std::find(kBlockingSyscalls.begin(), kBlockingSyscalls.end(), number) !=
           kBlockingSyscalls.end();
}

SafePointVerdict
judgeSafePoint(const user_regs_struct& regs, std::span<const uint8_t> codeBeforeRip,
               const symbols::UnwindResult& stack) {
    auto syscallNumber = static_cast<long>(regs.orig_rax);
    if (syscallNumber >= 0) {
        if (!isPlainBlockingSyscall(syscallNumber)) {
            return {false, fmt::format("in syscall {} (not a plain blocking syscall)", syscallNumber)};
        }
        if (!endsWithSyscallInstruction(codeBeforeRip)) {
            return {false, "in a syscall, but the code before rip is not a `syscall` instruction"};
        }
    }
    if (!stack.complete) {
        return {false, fmt::format("native stack did not unwind completely ({})",
                                   stack.error.empty() ? "stopped early" : stack.error)};
    }
    for (const auto& frame : stack.frames) {
        auto name = normalizeLibcName(frame.function);
        for (auto prefix : kForbiddenPrefixes) {
            if (name.rfind(prefix, 0) == 0 || frame.function.rfind(prefix, 0) == 0) {
                return {false, fmt::format("inside {} ({})", frame.function, frame.module)};
            }
        }
        if (isLibcOrLoader(frame.module)) {
            bool allowed = std::find(kAllowedLibcFrames.begin(), kAllowedLibcFrames.end(), name) !=
                           kAllowedLibcFrames.end();
            if (!allowed) {
                return {false, fmt::format("inside libc function '{}'", frame.function)};
            }
        }
    }
    return {true, {}};
}

} // namespace memtap::inject
