#include "attach/smaps.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "agent/protocol.h"
#include "attach/proc.h"
#include "base/fields.h"

namespace memtap::attach {

namespace {

bool
parseNumber(std::string_view field, uint64_t& out, int base) {
    auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), out, base);
    return ec == std::errc() && ptr == field.data() + field.size();
}

// "start-end perms offset major:minor inode [path]", as in maps (proc(5)).
bool
parseHeader(std::string_view line, SmapsMapping& mapping) {
    std::string_view rest = line;
    std::string_view range = nextField(rest);
    std::string_view perms = nextField(rest);
    std::string_view offset = nextField(rest);
    std::string_view device = nextField(rest);
    std::string_view inode = nextField(rest);
    size_t dash = range.find('-');
    uint64_t ignored = 0;
    if (perms.size() != 4 || device.find(':') == std::string_view::npos ||
        dash == std::string_view::npos || !parseNumber(range.substr(0, dash), mapping.start, 16) ||
        !parseNumber(range.substr(dash + 1), mapping.end, 16) || mapping.end < mapping.start ||
        !parseNumber(offset, ignored, 16) || !parseNumber(inode, mapping.inode, 10)) {
        return false;
    }
    std::copy(perms.begin(), perms.end(), mapping.perms);
    size_t pathBegin = rest.find_first_not_of(' ');
    mapping.path =
        pathBegin == std::string_view::npos ? std::string() : std::string(rest.substr(pathBegin));
    return true;
}

// "Rss:                1596 kB": the kernel prints these counters in kB
// (fs/proc/task_mmu.c, SEQ_PUT_DEC(" kB\n")).
bool
parseKilobytes(std::string_view rest, uint64_t& bytes) {
    std::string_view number = nextField(rest);
    uint64_t kb = 0;
    if (!parseNumber(number, kb, 10) || nextField(rest) != "kB") {
        return false;
    }
    bytes = kb * 1024;
    return true;
}

bool
isAnonymousPath(const SmapsMapping& m) {
    return m.inode == 0 && (m.path.empty() || m.path.front() == '[');
}

// Shared memory in the kernel's sense (shmem: tmpfs pages): a shared
// anonymous mapping shows as "/dev/zero (deleted)" or, since 6.x, as
// "[anon_shmem]"; memfds as "/memfd:NAME"; SysV segments as "/SYSV...".
bool
isShmemPath(const SmapsMapping& m) {
    const std::string& p = m.path;
    return p.rfind("/memfd:", 0) == 0 || p.rfind("/dev/zero", 0) == 0 || p.rfind("/SYSV", 0) == 0 ||
           p.rfind("/dev/shm/", 0) == 0 || p == "[anon_shmem]" ||
           (!m.isPrivate() && m.inode == 0 && m.path.empty());
}

bool
isAgentCode(const SmapsMapping& m) {
    return m.path.rfind(fmt::format("/memfd:{}", MEMTAP_AGENT_MEMFD_NAME), 0) == 0;
}

bool
looksLikeGlibcThreadStack(const std::vector<SmapsMapping>& mappings, size_t i) {
    const SmapsMapping& m = mappings[i];
    if (i == 0 || !m.isPrivate() || m.perms[0] != 'r' || m.perms[1] != 'w' || !isAnonymousPath(m) ||
        !m.path.empty()) {
        return false;
    }
    const SmapsMapping& guard = mappings[i - 1];
    return guard.end == m.start && guard.isPrivate() && guard.isInaccessible() &&
           isAnonymousPath(guard) && guard.path.empty() && guard.size() <= kMaxGuardBytes;
}

} // namespace

std::vector<SmapsMapping>
parseSmaps(std::string_view text) {
    std::vector<SmapsMapping> mappings;
    bool inMapping = false;
    while (!text.empty()) {
        size_t newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
        std::string_view rest = line;
        std::string_view first = nextField(rest);
        if (first.empty()) {
            continue;
        }
        if (first.back() == ':') { // a counter or "VmFlags:" of the current mapping
            if (!inMapping) {
                continue;
            }
            SmapsMapping& current = mappings.back();
            if (first == "Rss:") {
                parseKilobytes(rest, current.rssBytes);
            } else if (first == "Anonymous:") {
                parseKilobytes(rest, current.anonymousBytes);
            }
            continue;
        }
        SmapsMapping mapping;
        inMapping = parseHeader(line, mapping);
        if (inMapping) {
            mappings.push_back(std::move(mapping));
        }
    }
    return mappings;
}

ResidentMemory
classifyResidentMemory(const std::vector<SmapsMapping>& mappings,
                       const std::vector<ThreadStackPointer>& threads) {
    std::vector<bool> isStack(mappings.size(), false);
    int unknownPointers = 0;
    for (const auto& thread : threads) {
        if (!thread.sp) {
            ++unknownPointers;
            continue;
        }
        for (size_t i = 0; i < mappings.size(); ++i) {
            if (*thread.sp >= mappings[i].start && *thread.sp < mappings[i].end) {
                isStack[i] = true;
                break;
            }
        }
    }
    for (size_t i = 0; i < mappings.size(); ++i) {
        if (mappings[i].path == "[stack]") {
            isStack[i] = true;
        }
    }
    for (size_t i = 0; i < mappings.size() && unknownPointers > 0; ++i) {
        if (!isStack[i] && looksLikeGlibcThreadStack(mappings, i)) {
            isStack[i] = true;
            --unknownPointers;
        }
    }

    ResidentMemory out;
    for (size_t i = 0; i < mappings.size(); ++i) {
        const SmapsMapping& m = mappings[i];
        out.rssBytes += m.rssBytes;
        // "Anonymous:" never exceeds "Rss:" in the kernel's count; a torn
        // read of a mapping that changed between the two lines might.
        uint64_t anonymous = std::min(m.anonymousBytes, m.rssBytes);
        uint64_t rest = m.rssBytes - anonymous;
        out.anonymousBytes += anonymous;
        if (m.path == "[heap]") {
            out.heapBytes += anonymous;
        } else if (isStack[i]) {
            out.stackBytes += anonymous;
            ++out.stacks;
        } else {
            out.otherAnonymousBytes += anonymous;
        }
        if (isAgentCode(m)) {
            out.agentCodeBytes += rest;
        } else if (isShmemPath(m)) {
            out.shmemBytes += rest;
        } else {
            out.fileBytes += rest;
        }
    }
    return out;
}

std::optional<ResidentMemory>
tryReadResidentMemory(pid_t pid) {
    std::vector<ThreadStackPointer> threads;
    for (pid_t tid : listThreads(pid)) {
        auto syscall = readThreadSyscall(pid, tid);
        ThreadStackPointer thread{tid, std::nullopt};
        if ((syscall.kind == ThreadSyscall::Kind::InSyscall ||
             syscall.kind == ThreadSyscall::Kind::BlockedOutsideSyscall) &&
            syscall.stackPointer.value() != 0) {
            thread.sp = syscall.stackPointer.value();
        }
        threads.push_back(thread);
    }
    auto text = readWholeFile(fmt::format("/proc/{}/smaps", pid));
    if (!text || text->empty()) {
        return std::nullopt;
    }
    return classifyResidentMemory(parseSmaps(*text), threads);
}

} // namespace memtap::attach
