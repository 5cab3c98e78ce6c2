// Everything `memtap watch` does to a terminal, and how it is undone: raw
// keyboard input, the alternate screen, the hidden cursor, the window size,
// key decoding, and the signals that end the loop (read as data, never acted
// on inside a handler, so stopping and detaching happen once, on the loop's
// own thread).
#pragma once

#include <signal.h>
#include <termios.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.h"
#include "cli/std_output.h"

namespace memtap::cli {

struct TerminalSize {
    int columns = 80;
    int rows = 24;
};

// TIOCGWINSZ on fd; nullopt when fd is not a terminal or reports 0x0.
std::optional<TerminalSize> terminalSizeOf(int fd);

// Whether fd is a terminal that can show the screen: a tty whose TERM is set,
// not empty and not "dumb". Those are what Emacs' shell buffers, some CI
// consoles and `env -i` give, and they do not understand the alternate
// screen or cursor movement, so watch writes its plain reports there.
bool screenCapable(int fd);

// Colors only on a screen-capable terminal, and never when NO_COLOR is set to
// any value (no-color.org).
bool colorWanted(int fd);

enum class KeyKind { Char, Up, Down, Enter, Escape };

struct Key {
    KeyKind kind = KeyKind::Char;
    char ch = 0; // for KeyKind::Char
};

// Decodes bytes read from a terminal in non-canonical mode. Arrows come as
// CSI ("\x1b[A") or SS3 ("\x1bOA") sequences; an ESC not followed by '[' or
// 'O' in the same read is the Escape key itself. Unknown sequences are
// dropped whole, so their tail never turns into letter commands.
std::vector<Key> decodeKeys(std::string_view bytes);

// The interactive screen. While alive: stdin (if a terminal) in
// non-canonical, no-echo mode, and stdout on the alternate screen with the
// cursor hidden. The destructor restores all of it, on every path.
class TerminalSession {
public:
    TerminalSession();
    ~TerminalSession();
    TerminalSession(const TerminalSession&) = delete;
    TerminalSession& operator=(const TerminalSession&) = delete;

    bool readsKeys() const { return rawInput_; }
    // Draws a frame from the top left; each line is erased to its end and
    // the rest of the screen below is cleared, so nothing old shows through.
    // Written as writeStdoutOrThrow(bytes, interruptFd) writes: a terminal
    // that does not take output (Ctrl-S) cannot hold up interruptFd.
    [[nodiscard]] WriteOutcome draw(const std::string& frame, int interruptFd);
    // Available bytes from stdin, without blocking (empty if none).
    std::string readAvailable();

private:
    bool rawInput_ = false;
    termios saved_{};
};

// SIGINT, SIGTERM, SIGHUP and (with a screen to lay out again) SIGWINCH,
// blocked for the whole process and delivered through a signalfd the loop
// polls; without a screen a resize is nothing to wake up for. Because they stay blocked, a second
// Ctrl-C while detaching only queues another record instead of killing us
// with the target half-detached. The destructor drains what is pending and
// restores the previous signal mask.
class SignalInbox {
public:
    explicit SignalInbox(bool withResize);
    ~SignalInbox();
    SignalInbox(const SignalInbox&) = delete;
    SignalInbox& operator=(const SignalInbox&) = delete;

    int fd() const { return fd_.get(); }
    // Signal numbers received since the last call (non-blocking).
    std::vector<int> drain();

private:
    sigset_t previous_{};
    UniqueFd fd_;
};

} // namespace memtap::cli
