#include "golden.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>

#include <catch2/catch.hpp>

namespace memtap::report::test {

void
checkGolden(const std::string& name, const std::string& actual) {
    std::string path = std::string(MEMTAP_REPORT_GOLDEN_DIR) + "/" + name;
    const char* update = std::getenv("MEMTAP_UPDATE_GOLDEN");
    if (update != nullptr && std::string_view(update) == "1") {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << actual;
        REQUIRE(out.good());
        WARN("rewrote golden file " << path);
        return;
    }
    std::ifstream in(path, std::ios::binary);
    INFO("golden file " << path << " (MEMTAP_UPDATE_GOLDEN=1 rewrites it)");
    REQUIRE(in.good());
    std::ostringstream expected;
    expected << in.rdbuf();
    CHECK(actual == expected.str());
}

} // namespace memtap::report::test
