#include "inject/leftover_scratch.h"

#include <signal.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "attach/proc.h"
#include "inject/scratch_stub.h"
#include "symbols/proc_maps.h"

namespace memtap::inject {

uint64_t
processStartTime(pid_t pid) {
    return attach::tryReadProcessStartTime(pid).value_or(0);
}

namespace {

bool
atScratchHint(RemotePtr start) {
    uint64_t a = start.value();
    return a >= kScratchHint && a < kScratchHint + kScratchHintSlots * kScratchHintStride &&
           (a - kScratchHint) % kScratchHintStride == 0;
}

bool
isAnonymous(const symbols::MapEntry& e) {
    return e.path.empty() && e.inode == 0;
}

} // namespace

std::vector<LeftoverScratch>
findLeftoverScratch(pid_t pid, const attach::RemoteMemory& memory) {
    std::vector<LeftoverScratch> found;
    auto maps = symbols::readMapsOrThrow(pid);
    for (size_t i = 0; i < maps.size(); ++i) {
        const auto& code = maps[i];
        // An anonymous read+execute range, then (normally) the read+write
        // data right behind its first page.
        if (!isAnonymous(code) || !code.readable || code.writable || !code.executable) {
            continue;
        }
        LeftoverScratch leftover{code.start, code.end - code.start, false, false};
        if (leftover.size == kScratchControlOffset && i + 1 < maps.size() && isAnonymous(maps[i + 1]) &&
            maps[i + 1].start == code.end && maps[i + 1].readable && maps[i + 1].writable &&
            !maps[i + 1].executable) {
            leftover.size = maps[i + 1].end - code.start;
            leftover.dataWritable = true;
        }
        if (leftover.size < scratchBytesFor(0) || leftover.size > 64 * 4096) {
            continue;
        }
        ScratchControl control{};
        if (!memory.tryRead(code.start + kScratchControlOffset, &control, sizeof(control))) {
            continue;
        }
        ScratchControl zero{};
        if (std::memcmp(&control, &zero, sizeof(control)) == 0) {
            // Mapped, never written: its memtap died right after the mmap.
            // Only at our hint, and with no code in it, is it surely ours
            // (attaches to one target are serialised: not a live one's).
            uint8_t head[16] = {};
            if (atScratchHint(code.start) && memory.tryRead(code.start, head, sizeof(head)) &&
                std::all_of(std::begin(head), std::end(head), [](uint8_t b) { return b == 0; })) {
                leftover.adoptable = true;
                found.push_back(leftover);
            }
            continue;
        }
        if (!leftover.dataWritable ||
            std::memcmp(control.magic, kScratchMagic, sizeof(kScratchMagic)) != 0 ||
            control.totalBytes != leftover.size) {
            continue;
        }
        bool ownerAlive = control.ownerPid > 0 && ::kill(control.ownerPid, 0) == 0 &&
                          processStartTime(control.ownerPid) == control.ownerStartTime;
        leftover.adoptable = !ownerAlive && control.inCall == 0;
        found.push_back(leftover);
    }
    return found;
}

} // namespace memtap::inject
