#include "report/gzip_writer.h"

#include <algorithm>
#include <array>

namespace memtap::report {
namespace {

constexpr std::array<uint32_t, 256>
crcTable() {
    std::array<uint32_t, 256> table{};
    for (uint32_t n = 0; n < 256; ++n) {
        uint32_t c = n;
        for (int k = 0; k < 8; ++k) {
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        table[n] = c;
    }
    return table;
}

constexpr auto kCrcTable = crcTable();

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

uint32_t
crc32(std::string_view data) {
    uint32_t c = 0xffffffffu;
    for (unsigned char byte : data) {
        c = kCrcTable[(c ^ byte) & 0xff] ^ (c >> 8);
    }
    return c ^ 0xffffffffu;
}

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
