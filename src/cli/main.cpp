// memtap's entry: dispatch to a command, and the one place where errors
// become a one-line message on stderr and an exit code (base/error.h).
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "base/error.h"
#include "cli/commands.h"
#include "cli/std_output.h"

namespace {

using memtap::ExitCode;
using memtap::cli::CommandSpec;

std::vector<CommandSpec>
allCommands() {
    auto commands = memtap::cli::coreCommands();
    for (auto more :
         {memtap::cli::snapshotCommands(), memtap::cli::watchCommands(), memtap::cli::recordCommands(),
          memtap::cli::reportCommands(), memtap::cli::memoryCommands(), memtap::cli::heapCommands()}) {
        commands.insert(commands.end(), more.begin(), more.end());
    }
    return commands;
}

std::string
mainHelp(const std::vector<CommandSpec>& commands) {
    std::string text = "usage: memtap [-v] COMMAND PID [options]\n\n"
                       "Find what holds memory in a running CPython process (3.6-3.15): attach by PID,\n"
                       "no restart, no code change, nothing installed in the target.\n\ncommands:\n";
    for (const auto& command : commands) {
        text += fmt::format("  {:<10} {}\n", command.name, command.summary);
    }
    text += "\n`memtap COMMAND --help` describes a command.\n"
            "Exit codes: 0 ok, 1 failure, 2 usage, 3 no such process, 4 not supported,\n"
            "5 permission denied, 6 timeout, 7 not attached. Output that cannot be written\n"
            "is a failure (1); a reader that goes away (`| head`) ends the output quietly.\n"
            "Logs: -v for debug logs on stderr, or SPDLOG_LEVEL=debug.\n";
    return text;
}

void
setUpLogging(bool verbose) {
    auto logger = spdlog::stderr_color_mt("memtap");
    logger->set_pattern("memtap: %l: %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);
    spdlog::cfg::load_env_levels();
}

int
run(int argc, char** argv) {
    std::vector<std::string> words(argv + 1, argv + argc);
    bool verbose = false;
    while (!words.empty() && (words[0] == "-v" || words[0] == "--verbose")) {
        verbose = true;
        words.erase(words.begin());
    }
    setUpLogging(verbose);
    auto commands = allCommands();
    if (words.empty() || words[0] == "--help" || words[0] == "-h" || words[0] == "help") {
        std::fputs(mainHelp(commands).c_str(), words.empty() ? stderr : stdout);
        return words.empty() ? static_cast<int>(ExitCode::Usage) : 0;
    }
    if (words[0] == "--version") {
        std::printf("memtap %s\n", MEMTAP_VERSION);
        return 0;
    }
    for (const auto& command : commands) {
        if (command.name != words[0]) {
            continue;
        }
        std::vector<std::string> rest(words.begin() + 1, words.end());
        for (const auto& word : rest) {
            if (word == "--help" || word == "-h") {
                std::fputs(memtap::cli::commandHelp(command).c_str(), stdout);
                return 0;
            }
        }
        return command.run(memtap::cli::parseOrThrow(command, rest));
    }
    throw memtap::Error(ExitCode::Usage, fmt::format("unknown command '{}'", words[0]),
                        "see `memtap --help` for the commands");
}

} // namespace

int
main(int argc, char** argv) {
    // Output goes to pipes (`memtap diff ... | head`): a reader that has gone
    // ends us quietly through EPIPE (exit 0, cli/std_output.h) instead of
    // SIGPIPE mid-report, which would kill `watch` with the agent attached.
    ::signal(SIGPIPE, SIG_IGN);
    try {
        memtap::cli::ensureStandardFdsOrThrow(); // before anything opens an fd
        int code = run(argc, argv);
        memtap::cli::flushStdoutOrThrow();
        return code;
    } catch (const memtap::Error& e) {
        std::fflush(stdout);
        if (e.hint().empty()) {
            std::fprintf(stderr, "memtap: error: %s\n", e.what());
        } else {
            std::fprintf(stderr, "memtap: error: %s (%s)\n", e.what(), e.hint().c_str());
        }
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "memtap: error: %s\n", e.what());
        return static_cast<int>(ExitCode::Failure);
    }
}
