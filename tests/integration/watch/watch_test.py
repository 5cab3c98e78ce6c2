"""Integration tests of `memtap watch` against a real target.

Usage: watch_test.py plain|screen|nocolor|vanish|preattached|signals|workers

Environment (set by ctest): MEMTAP_BIN (the memtap binary), MEMTAP_TEST_PYTHON
(the interpreter that runs the target), MEMTAP_TEST_TARGETS (tests/targets).
Exits 0 on success, 1 on failure, 77 when the test cannot run here (no tmux,
ptrace denied). Every process started is killed and reaped on the way out;
tmux runs on a private socket and its server is killed at the end.
"""
import os
import signal
import shutil
import subprocess
import sys
import time

MEMTAP = os.environ["MEMTAP_BIN"]
PYTHON = os.environ["MEMTAP_TEST_PYTHON"]
TARGET = os.path.join(os.path.abspath(os.environ["MEMTAP_TEST_TARGETS"]), "watch_target.py")
GROWTH_SOURCE = "HELD.append(bytearray(64 * 1024))  # GROWTH-LINE"
SKIP = 77
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
        tmux.wait_for("by lineno")

        tmux.keys("s")
        screen = tmux.wait_for("snapshot s")
        name = screen.split("snapshot ", 1)[1].split()[0]
        check(memtap("diff", target.pid, name, "now").returncode == 0,
              "the saved snapshot %r does not load" % name)

        tmux.keys("Down")
        tmux.wait_for(">  1")
        tmux.keys("Enter")
        screen = tmux.wait_for("traceback of #1")
        check(" in grow" in screen and " in <module>" in screen, "traceback incomplete", screen)
        tmux.keys("Escape")
        tmux.wait_for("GROWTH ")

        # SIGWINCH: the table is laid out again for the new width.
        tmux.run("resize-window", "-x", "70", "-y", "20")
        screen = tmux.wait_for("ect Enter trace")  # the footer's short form
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
        tmux.keys("Down")
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
        titles = [line for line in out.splitlines() if "TOTAL" in line][-1]
        check(all(str(w) in titles for w in workers), "no column per worker", out)
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
    if sys.argv[1] == "workers":
        try:
            test_workers()
        except Skip as e:
            print("SKIP: %s" % e)
            return SKIP
        except AssertionError as e:
            print("FAIL: %s" % e)
            return 1
        print("ok")
        return 0
    test = {"plain": test_plain, "screen": test_screen, "nocolor": test_nocolor, "vanish": test_vanish,
            "preattached": test_preattached, "signals": test_signals}[sys.argv[1]]
    if test not in (test_plain, test_signals) and shutil.which("tmux") is None:
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
