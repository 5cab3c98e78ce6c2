#include "report/gzip_writer.h"

#include "report/crc32.h"

#include <algorithm>

namespace memtap::report {
namespace {

void
appendLe32(std::string& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
}

void
appendLe16(std::string& out, uint16_t v) {
    out.push_back(static_cast<char>(v & 0xff));
    out.push_back(static_cast<char>(v >> 8));
}

} // namespace

std::string
gzipStored(std::string_view data) {
    // RFC 1952 2.3: ID1 ID2, CM=8 (deflate), FLG=0, MTIME=0 (none), XFL=0,
    // OS=255 (unknown).
    std::string out = {'\x1f', '\x8b', '\x08', '\x00', '\x00', '\x00', '\x00', '\x00', '\x00', '\xff'};
    // RFC 1951 3.2.4: a stored block is the 3 header bits (BFINAL, BTYPE=00)
    // padded to a byte, then LEN and its one's complement NLEN, then LEN
    // bytes; at most 65535 bytes a block. Empty input still needs one block.
    constexpr size_t kMaxBlock = 65535;
    size_t offset = 0;
    do {
        size_t n = std::min(kMaxBlock, data.size() - offset);
        bool final = offset + n == data.size();
        out.push_back(final ? '\x01' : '\x00');
        appendLe16(out, static_cast<uint16_t>(n));
        appendLe16(out, static_cast<uint16_t>(~n & 0xffff));
        out.append(data.substr(offset, n));
        offset += n;
    } while (offset < data.size());
    // RFC 1952 2.3.1: CRC32 and ISIZE (size mod 2^32), little-endian.
    appendLe32(out, crc32(data));
    appendLe32(out, static_cast<uint32_t>(data.size()));
    return out;
}

} // namespace memtap::report
