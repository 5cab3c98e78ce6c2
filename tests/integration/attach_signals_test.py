"""Signals and stops during attach tell the truth; concurrent attaches agree
(issue 7, items 8 and 9). Runs the real memtap binary on a real target.

Usage: attach_signals_test.py MEMTAP PYTHON TARGETS_DIR
"""
import os
import signal
import subprocess
import sys
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
FAILURES = []


def memtap(*args, timeout=60):
    return subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


def start_target(mode="sleep"):
    p = subprocess.Popen([PYTHON, os.path.join(TARGETS, "parked_target.py"), mode],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("ready"), line
    return p, dict(x.split("=", 1) for x in line.split()[1:])


def check(p):
    os.kill(p.pid, signal.SIGUSR1)
    while True:
        line = p.stdout.readline()
        if line.startswith("check"):
            return dict(x.split("=", 1) for x in line.split()[1:])


def attached(pid):
    return "attached:         yes" in memtap("status", pid).stdout


def expect(cond, what):
    print("%-70s %s" % (what[:70], "OK" if cond else "FAIL"))
    if not cond:
        FAILURES.append(what)


def signal_during_attach(sig):
    """Whenever the signal lands, the exit code is 128+N and stderr says
    whether the agent is in; what it says is what status then finds."""
    name = signal.Signals(sig).name
    for delay in (0.0, 0.002, 0.005, 0.010, 0.015, 0.020, 0.030):
        target, ready = start_target()
        try:
            proc = subprocess.Popen([MEMTAP, "attach", str(target.pid)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            time.sleep(0.012 + delay)  # memtap's own start-up, then the attach itself
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=30)
            is_attached = attached(target.pid)
            if not is_attached and "memtap is attached" in err:
                # "its agent is starting or running": an agent thread still
                # setting up binds its socket within moments (more on a
                # loaded machine); memtap said so, status catches up.
                deadline = time.time() + 5
                while not is_attached and time.time() < deadline:
                    time.sleep(0.05)
                    is_attached = attached(target.pid)
            if proc.returncode == 0:
                expect(is_attached, "%s after %.3fs: exit 0 means attached" % (name, delay))
            elif proc.returncode == -sig:
                # Killed by the signal's default action: only allowed while
                # memtap was still starting up, before anything changed.
                expect(not is_attached, "%s after %.3fs: died of it only before changing anything"
                       % (name, delay))
            else:
                expect(proc.returncode == 128 + sig,
                       "%s after %.3fs: exit %d is 128+%d" % (name, delay, proc.returncode, sig))
                said_attached = "memtap is attached" in err
                said_untouched = "left as it was" in err
                expect(said_attached or said_untouched,
                       "%s after %.3fs: stderr says the state: %r" % (name, delay, err.strip()))
                expect(said_attached == is_attached,
                       "%s after %.3fs: what it said (attached=%s) is true" % (name, delay, said_attached))
            if is_attached:
                expect(memtap("detach", target.pid).returncode == 0, "%s: detach afterwards" % name)
            after = check(target)
            expect(after["alloc"] == ready["alloc"] and after["state"] == ready["state"],
                   "%s after %.3fs: allocators and state as before" % (name, delay))
        finally:
            target.kill()
            target.wait()


def stopped_during_attach():
    target, ready = start_target()
    try:
        proc = subprocess.Popen([MEMTAP, "attach", "--timeout", "2", str(target.pid)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.004)
        os.kill(target.pid, signal.SIGSTOP)
        out, err = proc.communicate(timeout=30)
        os.kill(target.pid, signal.SIGCONT)
        time.sleep(0.3)
        is_attached = attached(target.pid)
        if proc.returncode == 0:
            expect(is_attached, "SIGSTOP: exit 0 means attached")
        else:
            said_loaded = "agent is loaded" in err
            said_nothing = "changed nothing" in err or "memtap left it stopped" in err
            expect(said_loaded or said_nothing, "SIGSTOP: stderr says the state: %r" % err.strip())
            expect(said_loaded == is_attached, "SIGSTOP: what it said (loaded=%s) is true" % said_loaded)
        if is_attached:
            memtap("detach", target.pid)
        after = check(target)
        expect(after["alloc"] == ready["alloc"], "SIGSTOP: allocators as before after detach")
    finally:
        target.kill()
        target.wait()


def concurrent_attaches():
    """Three attaches at once: one attaches, the others say it is attached,
    and the mode reported is the mode that runs."""
    target, ready = start_target()
    try:
        procs = [subprocess.Popen([MEMTAP, "attach", "--exact", str(target.pid)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
        codes = [r[2] for r in results]
        expect(codes == [0, 0, 0], "concurrent: every attach exits 0 (%s, %s)" % (codes, [r[1] for r in results]))
        attached_lines = [r[0] for r in results if r[0].startswith("attached to")]
        expect(len(attached_lines) == 1, "concurrent: exactly one did the attach")
        expect(not any("already being traced" in r[1] for r in results), "concurrent: no 'already traced'")
        expect("mode:             exact" in memtap("status", target.pid).stdout, "concurrent: exact mode runs")
        expect(memtap("detach", target.pid).returncode == 0, "concurrent: detach")
        after = check(target)
        expect(after["alloc"] == ready["alloc"], "concurrent: allocators as before")
    finally:
        target.kill()
        target.wait()


def stale_sockets():
    """An agent socket left by a process that is gone is removed on attach;
    one whose process lives is left alone, listener or not."""
    import socket
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    paths = ["/tmp/memtap-%d.sock" % dead.pid, "/tmp/memtap-%d.sock" % alive.pid]
    for path in paths:
        if os.path.exists(path):
            os.unlink(path)
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()  # the file stays, nobody listens
    target, ready = start_target()
    try:
        a = memtap("attach", target.pid)
        expect(a.returncode == 0, "stale sockets: attach")
        expect(not os.path.exists(paths[0]), "stale sockets: a dead process's socket is removed")
        expect(os.path.exists(paths[1]), "stale sockets: a live process's socket is kept")
        memtap("detach", target.pid)
    finally:
        target.kill()
        target.wait()
        alive.kill()
        alive.wait()
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)


stale_sockets()
signal_during_attach(signal.SIGINT)
signal_during_attach(signal.SIGTERM)
stopped_during_attach()
concurrent_attaches()
print("%d failures" % len(FAILURES))
sys.exit(1 if FAILURES else 0)
