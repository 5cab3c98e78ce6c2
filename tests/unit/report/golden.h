// Golden-file comparison for the report tests.
#pragma once

#include <string>

namespace memtap::report::test {

// Compares `actual` with golden/<name> byte for byte. With
// MEMTAP_UPDATE_GOLDEN=1 in the environment it writes the file instead, so
// a deliberate format change is one run plus a reviewed git diff.
void checkGolden(const std::string& name, const std::string& actual);

} // namespace memtap::report::test
