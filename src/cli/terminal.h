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

namespace memtap::cli {

struct TerminalSize {
    int columns = 80;
    int rows = 24;
};

// TIOCGWINSZ on fd; nullopt when fd is not a terminal or reports 0x0.
std::optional<TerminalSize> terminalSizeOf(int fd);

// Colors only on a terminal, and never when NO_COLOR is set to any value
// (no-color.org), nor for TERM=dumb.
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
    void draw(const std::string& frame);
    // Available bytes from stdin, without blocking (empty if none).
    std::string readAvailable();

private:
    bool rawInput_ = false;
    termios saved_{};
};

// SIGINT, SIGTERM, SIGHUP and SIGWINCH, blocked for the whole process and delivered
// through a signalfd the loop polls. Because they stay blocked, a second
// Ctrl-C while detaching only queues another record instead of killing us
// with the target half-detached. The destructor drains what is pending and
// restores the previous signal mask.
class SignalInbox {
public:
    SignalInbox();
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
