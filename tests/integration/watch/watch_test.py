"""Integration tests of `memtap watch` against a real target.

Usage: watch_test.py plain|screen|nocolor|vanish|preattached|signals|workers|
                     stdout-closed|stdout-full|dumb-term|head|stalled-reader|large-output

Environment (set by ctest): MEMTAP_BIN (the memtap binary), MEMTAP_TEST_PYTHON
(the interpreter that runs the target), MEMTAP_TEST_TARGETS (tests/targets).
Exits 0 on success, 1 on failure, 77 when the test cannot run here (no tmux,
ptrace denied). Every process started is killed and reaped on the way out;
tmux runs on a private socket and its server is killed at the end.
"""
import fcntl
import os
import signal
import shutil
import subprocess
import sys
import termios
import time

MEMTAP = os.environ["MEMTAP_BIN"]
PYTHON = os.environ["MEMTAP_TEST_PYTHON"]
TARGET = os.path.join(os.path.abspath(os.environ["MEMTAP_TEST_TARGETS"]), "watch_target.py")
GROWTH_SOURCE = "HELD.append(bytearray(64 * 1024))  # GROWTH-LINE"
SKIP = 77
FAILURE = 1  # base/error.h ExitCode::Failure
PERMISSION_DENIED = 5  # base/error.h ExitCode::PermissionDenied


class Skip(Exception):
    pass


def growth_site():
    with open(TARGET) as f:
        for number, line in enumerate(f, 1):
            if "# GROWTH-LINE" in line:
                return "%s:%d" % (TARGET, number)
    raise AssertionError("no GROWTH-LINE in " + TARGET)


def check(condition, message, *details):
    if not condition:
        raise AssertionError(message + "".join("\n--- " + str(d) for d in details))


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def memtap(*args, timeout=60):
    return subprocess.run([MEMTAP] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)


def attached(pid):
    out = memtap("status", pid).stdout
    check("attached:" in out, "memtap status gave no 'attached:' line", out)
    return "attached:         yes" in out


class Target:
    """watch_target.py, started and read up to its "ready" line."""

    def __init__(self):
        self.proc = subprocess.Popen([PYTHON, TARGET], stdout=subprocess.PIPE,
                                     universal_newlines=True)
        line = self.proc.stdout.readline()  # the target writes it within a second
        check(line.strip() == "ready", "target did not say ready: %r" % line)
        self.pid = self.proc.pid

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class Tmux:
    """A tmux server of our own, 120x40, running one shell command."""

    def __init__(self, command):
        self.socket = "memtap-test-%d" % os.getpid()
        self.run("new-session", "-d", "-x", "120", "-y", "40", command)
        self.socket_path = self.display("#{socket_path}")

    def run(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null"] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=10)

    def screen(self, escapes=False):
        return self.run("capture-pane", "-p", *(["-e"] if escapes else [])).stdout

    def wait_for(self, text, timeout=20):
        """The screen, once it shows text."""
        def shown():
            screen = self.screen()
            return screen if text in screen else None
        return wait_until(shown, timeout, repr(text) + " on screen")

    def keys(self, *keys):
        self.run("send-keys", *keys)

    def display(self, fmt):
        return self.run("display-message", "-p", fmt).stdout.strip()

    def close(self):
        self.run("kill-server")
        # kill-server leaves the socket file behind.
        if self.socket_path and os.path.exists(self.socket_path):
            os.unlink(self.socket_path)


def shell_command(*watch_args, env=""):
    # After watch ends the shell reports its exit status and the terminal
    # modes, and stays, so the restored terminal can be inspected.
    words = " ".join([MEMTAP, "watch"] + [str(a) for a in watch_args])
    return "sh -c '%s %s 2>/dev/null; echo WATCH-EXIT=$?; stty -a; sleep 120'" % (env, words)


def check_restored(tmux, exit_code):
    screen = tmux.wait_for("min = ")  # stty's output, after watch has ended
    check("WATCH-EXIT=%d" % exit_code in screen, "watch did not exit %d" % exit_code, screen)
    check(" icanon " in screen and " echo " in screen and "min = 1;" in screen,
          "terminal modes not restored", screen)
    check(tmux.display("#{alternate_on} #{cursor_flag}") == "0 1",
          "alternate screen or hidden cursor left behind")


def require_ptrace(pid):
    result = memtap("attach", pid)
    if result.returncode == PERMISSION_DENIED:
        raise Skip("ptrace is not allowed here: " + result.stderr.strip())
    check(result.returncode == 0, "memtap attach failed", result.stderr)
    return result


def test_plain(target):
    result = memtap("watch", target.pid, "--count", 3, "--interval", 0.5)
    if result.returncode == PERMISSION_DENIED:
        raise Skip("ptrace is not allowed here: " + result.stderr.strip())
    check(result.returncode == 0, "watch exited %d" % result.returncode, result.stderr)
    out = result.stdout
    check("\x1b" not in out, "escape codes in plain output", repr(out))
    reports = [r for r in out.split("\n\n") if r.strip()]
    check(len(reports) == 3 and out.count("memtap watch: pid %d" % target.pid) == 3,
          "expected 3 reports, got %d" % len(reports), out)
    check(growth_site() in reports[-1] and GROWTH_SOURCE in reports[-1],
          "the growing line is not in the last report", out)
    check("attaching to %d" % target.pid in result.stderr, "no progress on stderr", result.stderr)
    check(not attached(target.pid), "agent still attached after watch ended")


def test_screen(target):
    tmux = Tmux(shell_command(target.pid, "--interval", 0.5))
    try:
        screen = tmux.wait_for(GROWTH_SOURCE[:20])
        check("memtap  pid %d" % target.pid in screen and "by lineno" in screen,
              "header missing", screen)
        # The screen shortens long paths from the left ("…/targets/watch_target.py:18"),
        # and how much depends on where the checkout lives: match the file name.
        check(os.path.basename(growth_site()) in screen, "growing site missing", screen)
        check(tmux.display("#{alternate_on}") == "1", "not on the alternate screen")
        check("\x1b[1m" in tmux.screen(escapes=True), "no colors on a terminal")

        tmux.keys("t")
        tmux.wait_for("by filename")
        tmux.keys("t")
        tmux.wait_for("by traceback")
        tmux.keys("t")
        # By thread: the growing thread's row; f on it filters to its lines.
        screen = tmux.wait_for("by thread")
        tmux.wait_for(" thread %d" % target.pid)
        tmux.wait_for(">  1")  # row 1 is selected from the start
        tmux.keys("f")
        screen = tmux.wait_for("(f: all threads)")
        check("by lineno, thread %d" % target.pid in screen, "f did not filter to the thread", screen)
        tmux.keys("f")
        tmux.wait_for("all threads again")
        # The filter left it grouped by lineno: filename, traceback, thread, user.
        for _ in range(4):
            tmux.keys("t")
        tmux.wait_for("by user")
        tmux.keys("t")
        tmux.wait_for("by lineno")

        tmux.keys("s")
        screen = tmux.wait_for("snapshot s")
        name = screen.split("snapshot ", 1)[1].split()[0]
        check(memtap("diff", target.pid, name, "now").returncode == 0,
              "the saved snapshot %r does not load" % name)

        # Sort keys and the trend's two forms are named where they act.
        # growth, last interval, count, peak (the agent keeps one), growth.
        for order in ("last interval", "count", "peak", "growth"):
            tmux.keys("o")
            tmux.wait_for("sorted by %s" % order)
        tmux.keys("g")
        tmux.wait_for("DELTAS ")
        tmux.keys("g")
        tmux.wait_for("TREND ")

        tmux.wait_for(">  1")
        tmux.keys("Enter")
        screen = tmux.wait_for("traceback of #1")
        check(" in grow" in screen and " in <module>" in screen, "traceback incomplete", screen)
        tmux.keys("Escape")
        tmux.wait_for("GROWTH ")

        # r: what holds the selected line's objects (the growing bytearrays,
        # sampled by their 64 KiB buffers), in place of the table.
        tmux.wait_for(">  1")
        tmux.keys("r")
        screen = tmux.wait_for("held by __main__.HELD")
        check("live objects allocated at" in screen and "GROWTH " not in screen,
              "refs panel not shown in place of the table", screen)
        check("#1 " in screen and "bytearray" in screen, "refs chain incomplete", screen)
        tmux.keys("Escape")
        tmux.wait_for("GROWTH ")
        # A row without a line: the status line says what r needs.
        tmux.keys("t")
        tmux.wait_for("by filename")
        tmux.keys("r")
        tmux.wait_for("group by line (t)")
        for _ in range(4):
            tmux.keys("t")
        tmux.wait_for("by lineno")

        # SIGWINCH: the table is laid out again for the new width.
        tmux.run("resize-window", "-x", "70", "-y", "20")
        screen = tmux.wait_for("↑↓ Enter trace")  # the footer's short form
        check(max(len(line) for line in screen.splitlines()) <= 70, "wider than 70", screen)

        tmux.keys("q")
        check_restored(tmux, 0)
        check(not attached(target.pid), "agent still attached after q")
    finally:
        tmux.close()


def test_nocolor(target):
    tmux = Tmux(shell_command(target.pid, "--interval", 0.5, env="NO_COLOR="))
    try:
        tmux.wait_for(GROWTH_SOURCE[:20])
        tmux.wait_for(">  1")
        screen = tmux.screen(escapes=True)
        check("\x1b[" not in screen, "attributes on screen with NO_COLOR set (empty)", repr(screen))
        tmux.keys("q")
        check_restored(tmux, 0)
    finally:
        tmux.close()


def test_vanish(target):
    # The target exits under watch: the error reaches the user, the
    # terminal is restored all the same.
    tmux = Tmux(shell_command(target.pid, "--interval", 0.3))
    try:
        tmux.wait_for(GROWTH_SOURCE[:20])
        target.close()
        check_restored(tmux, 3)  # ExitCode::NoSuchProcess
    finally:
        tmux.close()


def test_killed(target):
    # Issue 8 item 4: the target killed -9 under watch. The test is its
    # parent and does not reap it yet, so memtap can read how it died; the
    # last report stays on the normal screen and watch exits 3.
    words = " ".join([MEMTAP, "watch", str(target.pid), "--interval", "0.3"])
    tmux = Tmux("sh -c '%s 2>&1; echo WATCH-EXIT=$?; sleep 120'" % words)
    try:
        tmux.wait_for(GROWTH_SOURCE[:20])
        target.proc.send_signal(signal.SIGKILL)
        screen = tmux.wait_for("WATCH-EXIT=")
        check("WATCH-EXIT=3" in screen, "watch did not exit 3", screen)
        check("process %d died while watched: killed by signal 9 (SIGKILL)" % target.pid in screen,
              "no death message naming the signal", screen)
        check("another `memtap detach`" not in screen, "wrong cause named", screen)
        check(GROWTH_SOURCE[:20] in screen, "the last report is not on the normal screen", screen)
        check("rss 0 B" not in screen, "the last report lost the RSS it had", screen)
        check("detaching from" not in screen, "watch tried to detach from a dead process", screen)
        check(tmux.display("#{alternate_on}") == "0", "alternate screen left on")
    finally:
        tmux.close()


def test_preattached(target):
    require_ptrace(target.pid)
    try:
        tmux = Tmux(shell_command(target.pid, "--interval", 0.5))
        try:
            tmux.wait_for(GROWTH_SOURCE[:20])
            tmux.keys("q")
            check_restored(tmux, 0)
        finally:
            tmux.close()
        check(attached(target.pid), "watch detached an agent it did not attach")
        # Plain mode and --count too.
        result = memtap("watch", target.pid, "--count", 1, "--interval", 0.3)
        check(result.returncode == 0, "plain watch failed", result.stderr)
        check(attached(target.pid), "plain watch detached an agent it did not attach")
    finally:
        memtap("detach", target.pid)


def test_signals(target):
    # SIGTERM, then two quick SIGINTs (a second Ctrl-C): each must end in one
    # complete detach and exit 0.
    for signals in ([signal.SIGTERM], [signal.SIGINT, signal.SIGINT]):
        watch = subprocess.Popen([MEMTAP, "watch", str(target.pid), "--interval", "0.3"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 universal_newlines=True)
        try:
            line = watch.stdout.readline()  # the first report: attached and running
            if watch.poll() == PERMISSION_DENIED:
                raise Skip("ptrace is not allowed here")
            check(line.startswith("memtap watch:"), "no report: %r" % line)
            for sig in signals:
                watch.send_signal(sig)
                time.sleep(0.01)
            out, err = watch.communicate(timeout=30)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.communicate()
        check(watch.returncode == 0, "watch exited %d on %s" % (watch.returncode, signals), err)
        check("detaching from %d" % target.pid in err, "no detach on %s" % signals, err)
        check(not attached(target.pid), "agent left attached after %s" % signals)
        check(target.proc.poll() is None, "target died")


def check_intact(target):
    """The target runs on, untraced and not stopped, with no agent of ours left."""
    check(target.proc.poll() is None, "target died")
    with open("/proc/%d/status" % target.pid) as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    check(status["TracerPid"].strip() == "0", "target still traced", status["TracerPid"])
    check(status["State"].split()[0] not in ("t", "T"), "target left stopped", status["State"])
    check(not attached(target.pid), "agent left attached")


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("memtap: error:")]


def test_stdout_closed(target):
    # Closed, fd 1 would be the next fd memtap opens (the signalfd): the
    # reports went there and watch exited 0. Refused before anything is
    # touched, for every command.
    for args in (["watch", target.pid, "--count", 2, "--interval", 0.3], ["status", target.pid]):
        result = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", MEMTAP] + [str(a) for a in args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=60)
        check(result.returncode == FAILURE, "%s with stdout closed exited %d" % (args[0], result.returncode),
              result.stderr)
        lines = error_lines(result.stderr)
        check(len(lines) == 1 and "stdout is closed" in lines[0], "no one-line error", result.stderr)
        check("attaching" not in result.stderr, "watch attached with nowhere to report", result.stderr)
    check_intact(target)


def test_stdout_full(target):
    # Every write fails with ENOSPC: watch stops at the first report, says
    # why, detaches and exits non-zero.
    with open("/dev/full", "w") as full:
        started = time.monotonic()
        result = subprocess.run([MEMTAP, "watch", str(target.pid), "--interval", "0.3"],
                                stdout=full, stderr=subprocess.PIPE, universal_newlines=True,
                                timeout=60)
    if result.returncode == PERMISSION_DENIED:
        raise Skip("ptrace is not allowed here: " + result.stderr.strip())
    check(result.returncode == FAILURE, "watch on /dev/full exited %d" % result.returncode, result.stderr)
    lines = error_lines(result.stderr)
    check(len(lines) == 1 and "stdout" in lines[0] and "No space left on device" in lines[0],
          "no one-line error naming ENOSPC", result.stderr)
    check(time.monotonic() - started < 20, "watch did not stop at the first failed report")
    check("detaching from %d" % target.pid in result.stderr, "no detach", result.stderr)
    # Open read-only, fd 1 cannot be written at all (EBADF): refused up front.
    result = subprocess.run(["sh", "-c", 'exec "$@" 1</dev/null', "sh", MEMTAP, "watch", str(target.pid),
                             "--count", "1"], stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    lines = error_lines(result.stderr)
    check(result.returncode == FAILURE and len(lines) == 1 and "stdout" in lines[0],
          "read-only stdout not refused (exit %d)" % result.returncode, result.stderr)
    check("attaching" not in result.stderr, "watch attached with a read-only stdout", result.stderr)
    check_intact(target)


def test_dumb_term(target):
    # On a terminal that cannot do the screen (TERM=dumb, or no TERM at
    # all), watch writes its plain reports: `script` records every byte
    # memtap wrote to its terminal, and not one is an escape.
    if shutil.which("script") is None:
        raise Skip("script (util-linux) is not installed")
    for term, setting in (("dumb", "TERM=dumb"), ("unset", "-u TERM")):
        log = "/tmp/memtap-watch-term-%d-%s.log" % (os.getpid(), term)
        # Only memtap's stdout reaches the log: its notes on stderr are not the point.
        inner = "env %s %s watch %d --count 2 --interval 0.3 2>/dev/null" % (setting, MEMTAP, target.pid)
        tmux = Tmux("sh -c 'script -qec \"%s\" %s; echo WATCH-EXIT=$?; sleep 120'" % (inner, log))
        try:
            screen = tmux.wait_for("WATCH-EXIT=", timeout=40)
            check("WATCH-EXIT=0" in screen, "watch with TERM %s failed" % term, screen)
            with open(log, "rb") as f:
                written = f.read()
            check(b"\x1b[?1049h" not in written and b"\x1b" not in written,
                  "escape codes written with TERM %s" % term, repr(written[:600]))
            check(written.count(b"memtap watch: pid %d" % target.pid) == 2,
                  "not two plain reports with TERM %s" % term, repr(written[:600]))
            check("\x1b[" not in tmux.screen(escapes=True), "attributes on screen with TERM %s" % term)
        finally:
            tmux.close()
            if os.path.exists(log):
                os.unlink(log)
    check_intact(target)


def test_head(target):
    # `| head -n 3`: head has its lines and exits; watch notices the reader
    # has gone at once (not at the next report, an interval later), detaches
    # and exits 0 without an error. The interval is long so that waiting for
    # the next report would show.
    interval = 8
    watch = subprocess.Popen([MEMTAP, "watch", str(target.pid), "--interval", str(interval)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    head = subprocess.Popen(["head", "-n", "3"], stdin=watch.stdout, stdout=subprocess.PIPE,
                            universal_newlines=True)
    watch.stdout.close()  # head holds the only read end
    try:
        out = head.communicate(timeout=interval + 30)[0]
        head_done = time.monotonic()
        err = watch.communicate(timeout=interval + 30)[1]
        watch_done = time.monotonic()
    finally:
        for proc in (watch, head):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    if watch.returncode == PERMISSION_DENIED:
        raise Skip("ptrace is not allowed here")
    check(out.startswith("memtap watch: pid %d" % target.pid) and out.count("\n") == 3,
          "head did not get the first report", out)
    check(watch.returncode == 0, "watch exited %d after head" % watch.returncode, err)
    check(not error_lines(err), "an error for a reader that has gone", err)
    check(watch_done - head_done < interval / 2,
          "watch took %.1f s to stop after head exited" % (watch_done - head_done), err)
    check_intact(target)


def test_stalled_reader(target):
    # A reader that stops reading (a paused pager, a stuck log shipper)
    # fills the pipe. SIGTERM is blocked for watch's signalfd, so a write()
    # blocked on the full pipe never heard it and the agent stayed attached:
    # it must still stop watch, which detaches and exits 0.
    read_end, write_end = os.pipe()
    watch = subprocess.Popen([MEMTAP, "watch", str(target.pid), "--interval", "0.02", "--top", "100"],
                             stdout=write_end, stderr=subprocess.PIPE, universal_newlines=True)
    os.close(write_end)
    try:
        # Full: it holds most of its 64 KiB (pipe(7); each write takes a page
        # slot of its own, so it never holds all of it) and grows no more,
        # although watch writes a report every few tens of ms.
        sizes = []
        def pipe_full():
            if watch.poll() is not None:
                return True
            waiting = fcntl.ioctl(read_end, termios.FIONREAD, b"\0\0\0\0")
            sizes.append(int.from_bytes(waiting, sys.byteorder))
            return len(sizes) > 10 and sizes[-1] >= 32 * 1024 and sizes[-1] == sizes[-11]
        wait_until(pipe_full, 60, "watch to fill the pipe")
        if watch.poll() == PERMISSION_DENIED:
            raise Skip("ptrace is not allowed here")
        check(watch.poll() is None, "watch ended before filling the pipe (exit %s)" % watch.poll())
        watch.send_signal(signal.SIGTERM)
        try:
            err = watch.communicate(timeout=15)[1]
        except subprocess.TimeoutExpired:
            raise AssertionError("watch did not stop on SIGTERM while its reader stalled")
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
            memtap("detach", target.pid)  # what the killed watch could not do
        os.close(read_end)
    check(watch.returncode == 0, "watch exited %d" % watch.returncode, err)
    check("stopping on SIGTERM" in err and "detaching from %d" % target.pid in err,
          "no orderly stop on SIGTERM", err)
    check_intact(target)


# 1200 allocation sites, one a line, made when the test writes a line to the
# target's stdin: a diff of them is larger than stdio's buffer and than a
# pipe's 64 KiB, so `| head -n 1` leaves most of it unread.
MANY_SITES_TARGET = "\n".join(
    ["import sys, threading, time", "HELD = []",
     "threading.Thread(target=lambda: time.sleep(1e6), daemon=True).start()  # 3.6's GIL",
     "print('ready', flush=True)", "sys.stdin.readline()"]
    + ["HELD.append(bytearray(1000 + %d))" % i for i in range(1200)]
    + ["print('grown', flush=True)", "time.sleep(1e6)"])


def test_large_output():
    # Not watch: `memtap diff` prints with stdio, and a report larger than
    # its buffer fails inside fwrite, leaving nothing for the final fflush to
    # report: it exited 0 on /dev/full. Checked at exit for every command.
    target = subprocess.Popen([PYTHON, "-c", MANY_SITES_TARGET], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, universal_newlines=True)
    try:
        check(target.stdout.readline().strip() == "ready", "target did not say ready")
        result = memtap("attach", "--exact", target.pid)
        if result.returncode == PERMISSION_DENIED:
            raise Skip("ptrace is not allowed here: " + result.stderr.strip())
        check(result.returncode == 0, "attach failed", result.stderr)
        check(memtap("snapshot", target.pid, "before").returncode == 0, "snapshot before failed")
        target.stdin.write("go\n")
        target.stdin.flush()
        check(target.stdout.readline().strip() == "grown", "target did not grow")
        check(memtap("snapshot", target.pid, "after").returncode == 0, "snapshot after failed")
        diff = [MEMTAP, "diff", str(target.pid), "before", "after", "--top", "100000"]
        whole = subprocess.run(diff, stdout=subprocess.PIPE, timeout=60).stdout
        check(len(whole) > 64 * 1024, "the diff is only %d bytes" % len(whole))
        with open("/dev/full", "w") as full:
            result = subprocess.run(diff, stdout=full, stderr=subprocess.PIPE,
                                    universal_newlines=True, timeout=60)
        lines = error_lines(result.stderr)
        check(result.returncode == FAILURE and len(lines) == 1 and "stdout" in lines[0],
              "diff on /dev/full exited %d" % result.returncode, result.stderr)
        # A reader that leaves early is no failure: quiet, exit 0 (the failed
        # fwrite left no errno; poll() on stdout tells EPIPE apart).
        result = subprocess.run(["sh", "-c", '"$@" | head -n 1 >/dev/null', "sh"] + diff,
                                stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        check(result.returncode == 0 and not result.stderr, "diff | head was not quiet", result.stderr)
        check(memtap("detach", target.pid).returncode == 0, "detach failed")
        check(target.poll() is None, "target died")
    finally:
        if target.poll() is None:
            memtap("detach", target.pid)
            target.kill()
        target.wait()
        target.stdin.close()
        target.stdout.close()


def children_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(word) for word in f.read().split()]
    except OSError:
        return []


def test_workers():
    uwsgi = shutil.which("uwsgi")
    if uwsgi is None:
        raise Skip("uwsgi is not installed")
    app = os.path.join(os.path.dirname(os.path.abspath(__file__)), "uwsgi_app.py")
    log = "/tmp/memtap-watch-uwsgi-%d.log" % os.getpid()
    master = subprocess.Popen([uwsgi, "--plugin", "python3", "--http-socket", "127.0.0.1:0", "--master",
                               "--processes", "2", "--enable-threads", "--lazy-apps", "--die-on-term",
                               "--logto", log, "--wsgi-file", app],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        def ready():
            try:
                with open(log) as f:
                    return f.read().count("ready in") >= 2 and len(children_of(master.pid)) == 2
            except OSError:
                return False
        try:
            wait_until(ready, 20, "two uWSGI workers")
        except AssertionError:
            raise Skip("uwsgi with the python3 plugin did not start here")
        workers = children_of(master.pid)
        result = memtap("watch", master.pid, "--count", 1, "--interval", 0.3)
        check(result.returncode == 2 and "uWSGI master" in result.stderr,
              "a master without --all-workers is not explained", result.stderr)
        result = memtap("watch", master.pid, "--all-workers", "--count", 2, "--interval", 0.5)
        if result.returncode == PERMISSION_DENIED:
            raise Skip("ptrace is not allowed here")
        check(result.returncode == 0, "watch --all-workers exited %d" % result.returncode, result.stderr)
        out = result.stdout
        check("\x1b" not in out and out.count("uWSGI master %d, 2 workers" % master.pid) == 2,
              "expected 2 combined reports", out)
        last = out.split("\n\n")[-2]
        row = [line for line in last.splitlines() if line.startswith("#1 ")][0]
        check(all(" %d " % w in row.split("(workers:")[1] for w in workers),
              "no growth per worker on the top row", out)
        check("# WORKER-GROWTH" in out, "the workers' growing line is missing", out)
        for worker in workers:
            check(not attached(worker), "worker %d left attached" % worker)
    finally:
        try:
            os.killpg(master.pid, signal.SIGKILL)
        except OSError:
            pass
        master.wait()
        if os.path.exists(log):
            os.unlink(log)


def main():
    if sys.argv[1] in ("workers", "large-output"):
        try:
            {"workers": test_workers, "large-output": test_large_output}[sys.argv[1]]()
        except Skip as e:
            print("SKIP: %s" % e)
            return SKIP
        except AssertionError as e:
            print("FAIL: %s" % e)
            return 1
        print("ok")
        return 0
    test = {"plain": test_plain, "screen": test_screen, "nocolor": test_nocolor, "vanish": test_vanish,
            "preattached": test_preattached, "signals": test_signals, "killed": test_killed,
            "stdout-closed": test_stdout_closed, "stdout-full": test_stdout_full,
            "dumb-term": test_dumb_term, "head": test_head,
            "stalled-reader": test_stalled_reader}[sys.argv[1]]
    if test in (test_screen, test_nocolor, test_vanish, test_preattached, test_dumb_term,
                test_killed) and \
            shutil.which("tmux") is None:
        print("SKIP: tmux is not installed")
        return SKIP
    target = Target()
    try:
        test(target)
    except Skip as e:
        print("SKIP: %s" % e)
        return SKIP
    except AssertionError as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        target.close()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
