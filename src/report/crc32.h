// CRC-32 as gzip (RFC 1952 8) and memtap's journal frames use it: IEEE
// 802.3's polynomial, reflected (0xEDB88320), initial and final XOR
// 0xFFFFFFFF, so crc32("123456789") == 0xCBF43926.
#pragma once

#include <cstdint>
#include <string_view>

namespace memtap::report {

uint32_t crc32(std::string_view bytes);

} // namespace memtap::report
