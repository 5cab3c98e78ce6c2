// A gzip member (RFC 1952) holding its data in deflate's stored blocks
// (RFC 1951 3.2.4): valid for every gzip reader, no compression library.
// pprof files are gzip'd by convention; what matters is that readers accept
// them, not their size.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace memtap::report {

std::string gzipStored(std::string_view data);

} // namespace memtap::report
