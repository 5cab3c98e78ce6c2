// A real target process for integration tests: spawned with its stdout on a
// pipe, announces "ready ...", answers SIGUSR1 with "check ...", and is
// killed and reaped by the destructor whatever the test did.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace memtap::testing {

class TargetProcess {
public:
    explicit TargetProcess(const std::vector<std::string>& argv, const std::string& cwd = "");
    ~TargetProcess();
    TargetProcess(const TargetProcess&) = delete;
    TargetProcess& operator=(const TargetProcess&) = delete;

    pid_t pid() const { return pid_; }
    // Next line that starts with `prefix`; throws std::runtime_error on timeout or EOF.
    std::string waitForLine(const std::string& prefix, std::chrono::milliseconds timeout);
    // Sends SIGUSR1 and returns the facts of the "check" line.
    std::map<std::string, std::string>
    check(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    bool running() const;

private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string buffer_;
    int checks_ = 0;
};

std::map<std::string, std::string> parseFacts(const std::string& line);

// Paths the tests need, from the environment ctest sets (see CMakeLists.txt).
std::string testPython();         // MEMTAP_TEST_PYTHON
std::string parkedTargetScript(); // tests/targets/parked_target.py
bool ptraceIsPermitted();         // false -> the test binary exits 77

} // namespace memtap::testing
