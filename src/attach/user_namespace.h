// Which uid the target's user namespace sees for memtap's process.
//
// The agent checks its clients with SO_PEERCRED, which the kernel translates
// into the agent's (the target's) user namespace. For a target in a rootless
// container (`unshare --user --map-root-user` run by an unprivileged user),
// host root has no mapping there and shows as the overflow uid; the host
// must tell the agent which uid to expect (protocol.h: peer_uid, peer_flags).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace memtap::attach {

// One line of /proc/PID/uid_map (user_namespaces(7)): uids [inside,
// inside + count) of the namespace are [outside, outside + count) of the
// reader's namespace (of the parent one when the reader is in the same
// namespace as PID).
struct UidMapRange {
    uint32_t inside = 0;
    uint32_t outside = 0;
    uint32_t count = 0;
};

// Error(Failure) on a line that is not three unsigned numbers or a range
// that wraps past 2^32. An empty map (no line) is valid: nothing is mapped
// yet (a namespace whose map was not written).
std::vector<UidMapRange> parseUidMapOrThrow(std::string_view text);

// The inside uid that `outside` maps to, or nullopt when it is unmapped.
std::optional<uint32_t> mapUidInto(const std::vector<UidMapRange>& map, uint32_t outside);

struct PeerIdentity {
    uid_t uid = 0;         // what SO_PEERCRED shows the agent for memtap's euid
    bool unmapped = false; // no mapping: uid is the kernel's overflow uid
};

// For memtap's euid hostEuid (as memtap's own user namespace sees it).
// Same user namespace as the target: hostEuid itself. Otherwise the mapping
// in /proc/PID/uid_map, or the overflow uid of /proc/sys/kernel/overflowuid
// (65534 if unreadable) flagged as unmapped.
// Error(NoSuchProcess) if the process is gone; Error(PermissionDenied) if
// its namespace cannot be inspected.
PeerIdentity peerIdentityInTargetOrThrow(pid_t pid, uid_t hostEuid);

} // namespace memtap::attach
