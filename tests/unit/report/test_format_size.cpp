// formatSize against tracemalloc._format_size. The table was produced by
// running CPython 3.11.7's tracemalloc on each value (the doubles are
// Python's repr, so they are the same binary values here).
#include <string>

#include <catch2/catch.hpp>

#include "report/text_report.h"

using memtap::report::formatSize;

namespace {

struct Expected {
    double size;
    const char* unsigned_;
    const char* signed_;
};

// clang-format off
const Expected kTable[] = {
    {0.0, "0 B", "+0 B"},
    {1.0, "1 B", "+1 B"},
    {-1.0, "-1 B", "-1 B"},
    {0.5, "0 B", "+0 B"},
    {1.5, "2 B", "+2 B"},
    {2.5, "2 B", "+2 B"},
    {-0.4, "-0 B", "-0 B"},
    {55.5, "56 B", "+56 B"},
    {56.49, "56 B", "+56 B"},
    {99.0, "99 B", "+99 B"},
    {99.9, "100 B", "+100 B"},
    {100.0, "100 B", "+100 B"},
    {101.0, "101 B", "+101 B"},
    {1023.0, "1023 B", "+1023 B"},
    {1024.0, "1024 B", "+1024 B"},
    {1025.0, "1025 B", "+1025 B"},
    {10239.0, "10239 B", "+10239 B"},
    {10240.0, "10.0 KiB", "+10.0 KiB"},
    {10241.0, "10.0 KiB", "+10.0 KiB"},
    {-10240.0, "-10.0 KiB", "-10.0 KiB"},
    {102399.0, "100.0 KiB", "+100.0 KiB"},
    {102400.0, "100 KiB", "+100 KiB"},
    {102450.0, "100 KiB", "+100 KiB"},
    {150000.0, "146 KiB", "+146 KiB"},
    {1048576.0, "1024 KiB", "+1024 KiB"},
    {102338.56, "99.9 KiB", "+99.9 KiB"},
    {102348.8, "100.0 KiB", "+100.0 KiB"},
    {102359.04, "100.0 KiB", "+100.0 KiB"},
    {1048575.0, "1024 KiB", "+1024 KiB"},
    {10485759.0, "10240 KiB", "+10240 KiB"},
    {10485760.0, "10.0 MiB", "+10.0 MiB"},
    {3405824.0, "3326 KiB", "+3326 KiB"},
    {2678784.0, "2616 KiB", "+2616 KiB"},
    {123456.0, "121 KiB", "+121 KiB"},
    {-123456.0, "-121 KiB", "-121 KiB"},
    {1234567.0, "1206 KiB", "+1206 KiB"},
    {-1234567.0, "-1206 KiB", "-1206 KiB"},
    {12345678901.0, "11.5 GiB", "+11.5 GiB"},
    {1099511627776.0, "1024 GiB", "+1024 GiB"},
    {109841211614822.4, "99.9 TiB", "+99.9 TiB"},
    {109951162777600.0, "100 TiB", "+100 TiB"},
    {1.357347104489472e+16, "12345 TiB", "+12345 TiB"},
    {-1125899906842624.0, "-1024 TiB", "-1024 TiB"},
    {9.223372036854776e+18, "8388608 TiB", "+8388608 TiB"},
    {0.04, "0 B", "+0 B"},
    {-0.05, "-0 B", "-0 B"},
    {524288.0, "512 KiB", "+512 KiB"},
    {4096.5, "4096 B", "+4096 B"},
    {51.2, "51 B", "+51 B"},
    {10188.8, "10189 B", "+10189 B"},
    {56.123, "56 B", "+56 B"},
    {56.17298081839323, "56 B", "+56 B"},
    {88.17590520079, "88 B", "+88 B"},
    {1e+18, "909495 TiB", "+909495 TiB"},
    {-99.95, "-100 B", "-100 B"},
    {1536.0, "1536 B", "+1536 B"},
    {15360.0, "15.0 KiB", "+15.0 KiB"},
    {1572864.0, "1536 KiB", "+1536 KiB"},
    {5368709121.0, "5120 MiB", "+5120 MiB"},
    {-8053063680.0, "-7680 MiB", "-7680 MiB"},
};
// clang-format on

} // namespace

TEST_CASE("formatSize matches tracemalloc._format_size", "[format_size]") {
    for (const Expected& e : kTable) {
        INFO("size " << e.size);
        CHECK(formatSize(e.size, false) == e.unsigned_);
        CHECK(formatSize(e.size, true) == e.signed_);
    }
}
