#include "cli/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/error.h"

namespace memtap::cli {
namespace {

// Smcup/rmcup and civis/cnorm as xterm, tmux, screen and the Linux console
// all understand them; a terminfo lookup would add a dependency for nothing.
constexpr std::string_view kEnterScreen = "\x1b[?1049h\x1b[?25l";
constexpr std::string_view kLeaveScreen = "\x1b[?25h\x1b[?1049l";

// Writes everything, retrying short writes and EINTR, ignoring any other
// error: entering and leaving the screen is best effort (a terminal that
// cannot be written shows up in draw, which reports it).
void
writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
}

} // namespace

std::optional<TerminalSize>
terminalSizeOf(int fd) {
    winsize size{};
    if (::ioctl(fd, TIOCGWINSZ, &size) != 0 || size.ws_col == 0 || size.ws_row == 0) {
        return std::nullopt;
    }
    return TerminalSize{size.ws_col, size.ws_row};
}

bool
screenCapable(int fd) {
    if (!::isatty(fd)) {
        return false;
    }
    const char* term = std::getenv("TERM");
    return term != nullptr && term[0] != '\0' && std::strcmp(term, "dumb") != 0;
}

bool
colorWanted(int fd) {
    return std::getenv("NO_COLOR") == nullptr && screenCapable(fd);
}

std::vector<Key>
decodeKeys(std::string_view bytes) {
    std::vector<Key> keys;
    size_t i = 0;
    while (i < bytes.size()) {
        char c = bytes[i];
        if (c != '\x1b') {
            if (c == '\r' || c == '\n') {
                keys.push_back({KeyKind::Enter, 0});
            } else {
                keys.push_back({KeyKind::Char, c});
            }
            ++i;
            continue;
        }
        if (i + 1 >= bytes.size() || (bytes[i + 1] != '[' && bytes[i + 1] != 'O')) {
            keys.push_back({KeyKind::Escape, 0});
            ++i;
            continue;
        }
        // CSI/SS3: parameters and intermediates (0x20-0x3f), then one final
        // byte (0x40-0x7e) that names the key.
        size_t j = i + 2;
        while (j < bytes.size() && bytes[j] >= 0x20 && bytes[j] <= 0x3f) {
            ++j;
        }
        if (j >= bytes.size()) {
            break; // cut off mid-sequence: drop the rest of this read
        }
        if (bytes[j] == 'A') {
            keys.push_back({KeyKind::Up, 0});
        } else if (bytes[j] == 'B') {
            keys.push_back({KeyKind::Down, 0});
        }
        i = j + 1;
    }
    return keys;
}

TerminalSession::TerminalSession() {
    if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved_) == 0) {
        termios raw = saved_;
        // Keys arrive one by one without echo. ISIG stays on: Ctrl-C is still
        // SIGINT, which the SignalInbox turns into an orderly stop.
        raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        rawInput_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    writeAll(STDOUT_FILENO, kEnterScreen);
}

TerminalSession::~TerminalSession() {
    writeAll(STDOUT_FILENO, kLeaveScreen);
    if (rawInput_) {
        // TCSAFLUSH also drops keys typed after we stopped reading, so they
        // do not land in the shell's next command line.
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
    }
}

WriteOutcome
TerminalSession::draw(const std::string& frame, int interruptFd) {
    std::string out = "\x1b[H";
    out.reserve(frame.size() + 256);
    for (char c : frame) {
        if (c == '\n') {
            out += "\x1b[K\r\n";
        } else {
            out += c;
        }
    }
    out += "\x1b[K\x1b[J";
    return writeStdoutOrThrow(out, interruptFd);
}

std::string
TerminalSession::readAvailable() {
    std::string bytes;
    if (!rawInput_) {
        return bytes;
    }
    char buffer[256];
    for (;;) {
        // VMIN=0/VTIME=0: read returns at once with what is there.
        ssize_t n = ::read(STDIN_FILENO, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        bytes.append(buffer, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < sizeof(buffer)) {
            break;
        }
    }
    return bytes;
}

SignalInbox::SignalInbox(bool withResize) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (withResize) {
        sigaddset(&set, SIGWINCH);
    }
    sigaddset(&set, SIGHUP); // a closed terminal window: stop and detach, not die attached
    if (::sigprocmask(SIG_BLOCK, &set, &previous_) != 0) {
        throw Error(ExitCode::Failure, describeErrno("blocking SIGINT/SIGTERM", errno));
    }
    fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_) {
        int err = errno;
        ::sigprocmask(SIG_SETMASK, &previous_, nullptr);
        throw Error(ExitCode::Failure, describeErrno("signalfd", err));
    }
}

SignalInbox::~SignalInbox() {
    // A Ctrl-C that arrived during the final detach is consumed here rather
    // than killing us as the mask is restored: the stop it asks for is done.
    drain();
    fd_.reset();
    ::sigprocmask(SIG_SETMASK, &previous_, nullptr);
}

std::vector<int>
SignalInbox::drain() {
    std::vector<int> signals;
    signalfd_siginfo info{};
    while (::read(fd_.get(), &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
        signals.push_back(static_cast<int>(info.ssi_signo));
    }
    return signals;
}

} // namespace memtap::cli
