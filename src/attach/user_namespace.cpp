#include "attach/user_namespace.h"

#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <charconv>

#include <fmt/format.h>

#include "attach/proc.h"
#include "base/error.h"
#include "base/permission_hint.h"

namespace memtap::attach {
namespace {

// include/linux/highuid.h: DEFAULT_OVERFLOWUID, what the kernel shows for an
// unmapped uid unless /proc/sys/kernel/overflowuid says otherwise.
constexpr uint32_t kDefaultOverflowUid = 65534;

bool
parseU32(std::string_view& rest, uint32_t* out) {
    size_t start = rest.find_first_not_of(" \t");
    if (start == std::string_view::npos) {
        return false;
    }
    rest.remove_prefix(start);
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), *out);
    if (ec != std::errc() || end == rest.data()) {
        return false;
    }
    rest.remove_prefix(static_cast<size_t>(end - rest.data()));
    return true;
}

uint32_t
overflowUid() {
    auto text = readWholeFile("/proc/sys/kernel/overflowuid");
    uint32_t uid = kDefaultOverflowUid;
    if (text) {
        std::string_view rest(*text);
        if (!parseU32(rest, &uid)) {
            uid = kDefaultOverflowUid;
        }
    }
    return uid;
}

// Identity of the user namespace of `pid` (its nsfs inode), or of memtap
// with "self". Reading /proc/PID/ns/user needs ptrace read access, which an
// attach needs anyway.
struct stat
userNamespaceOrThrow(const std::string& proc, pid_t pid) {
    struct stat st {};
    if (::stat(fmt::format("/proc/{}/ns/user", proc).c_str(), &st) != 0) {
        int err = errno;
        if (err == ENOENT || err == ESRCH) {
            throw Error(ExitCode::NoSuchProcess, fmt::format("no process with PID {}", pid));
        }
        throw Error(
            ExitCode::PermissionDenied,
            describeErrno(fmt::format("cannot inspect the user namespace of process {}", pid), err),
            processAccessHint());
    }
    return st;
}

} // namespace

std::vector<UidMapRange>
parseUidMapOrThrow(std::string_view text) {
    std::vector<UidMapRange> map;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (line.find_first_not_of(" \t") == std::string_view::npos) {
            continue;
        }
        UidMapRange range;
        std::string_view rest = line;
        bool ok = parseU32(rest, &range.inside) && parseU32(rest, &range.outside) &&
                  parseU32(rest, &range.count) &&
                  rest.find_first_not_of(" \t") == std::string_view::npos;
        // The kernel refuses inside ranges that wrap (kernel/user_namespace.c,
        // map_write). The outside column is not checked: read from a
        // namespace that cannot map it, it shows (uid_t)-1
        // (from_kuid in uid_m_show), whatever the count.
        if (!ok || range.count == 0 || uint64_t{range.inside} + range.count > (uint64_t{1} << 32)) {
            throw Error(ExitCode::Failure, fmt::format("malformed uid_map line: '{}'", line));
        }
        map.push_back(range);
    }
    return map;
}

std::optional<uint32_t>
mapUidInto(const std::vector<UidMapRange>& map, uint32_t outside) {
    for (const UidMapRange& r : map) {
        if (outside >= r.outside && uint64_t{outside} < uint64_t{r.outside} + r.count) {
            return r.inside + (outside - r.outside);
        }
    }
    return std::nullopt;
}

PeerIdentity
peerIdentityInTargetOrThrow(pid_t pid, uid_t hostEuid) {
    struct stat mine = userNamespaceOrThrow("self", pid);
    struct stat theirs = userNamespaceOrThrow(std::to_string(pid), pid);
    if (mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino) {
        // uid_map would show the mapping into the parent namespace here, not
        // ours: in the same namespace every uid is itself.
        return PeerIdentity{hostEuid, false};
    }
    auto text = readWholeFile(fmt::format("/proc/{}/uid_map", pid));
    if (!text) {
        if (::kill(pid, 0) != 0 && errno == ESRCH) {
            throw Error(ExitCode::NoSuchProcess, fmt::format("no process with PID {}", pid));
        }
        throw Error(ExitCode::PermissionDenied, fmt::format("cannot read /proc/{}/uid_map", pid));
    }
    // Read from another namespace, the outside column is in the reader's
    // namespace (user_namespaces(7)), i.e. in the terms of hostEuid.
    if (auto inside = mapUidInto(parseUidMapOrThrow(*text), static_cast<uint32_t>(hostEuid))) {
        return PeerIdentity{static_cast<uid_t>(*inside), false};
    }
    return PeerIdentity{static_cast<uid_t>(overflowUid()), true};
}

} // namespace memtap::attach
