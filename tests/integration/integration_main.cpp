// Integration tests need ptrace; where it is denied they skip with 77.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "target_process.h"

int
main(int argc, char** argv) {
    if (!memtap::testing::ptraceIsPermitted()) {
        std::fprintf(stderr, "SKIP: ptrace is not permitted here (need root or CAP_SYS_PTRACE)\n");
        return 77;
    }
    return Catch::Session().run(argc, argv);
}
