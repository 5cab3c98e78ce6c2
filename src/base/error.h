// The one error type of the host code. It carries what a user needs: a
// one-line cause, an optional hint they can act on, and the exit code the CLI
// turns it into (the CLI is the only place that catches it).
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace memtap {

// Exit codes scripts can rely on; documented in README.md.
enum class ExitCode : int {
    Ok = 0,
    Failure = 1,       // anything not listed below
    Usage = 2,         // bad command line
    NoSuchProcess = 3, // PID does not exist, or exited while we worked
    NotSupported = 4,  // not a Python process, Python 2, unsupported version, stopped process
    PermissionDenied = 5,
    Timeout = 6,     // no safe point / agent did not answer in time
    NotAttached = 7, // command needs an attached agent and there is none
};

class Error : public std::runtime_error {
public:
    Error(ExitCode code, std::string message, std::string hint = {})
        : std::runtime_error(std::move(message)), code_(code), hint_(std::move(hint)) {}

    ExitCode code() const { return code_; }
    const std::string& hint() const { return hint_; }

private:
    ExitCode code_;
    std::string hint_;
};

// "what: strerror(errno)" for an OS call that failed with `err`.
inline std::string
describeErrno(const std::string& what, int err) {
    return fmt::format("{}: {}", what, std::strerror(err));
}

} // namespace memtap
