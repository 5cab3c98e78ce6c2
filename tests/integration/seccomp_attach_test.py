"""memtap attach against targets under a seccomp filter (issue 7, item 3):
never a syscall the filter kills for; memfd_create forbidden -> the agent
arrives as a file; a filter that kills a syscall memtap needs -> a clear
refusal with the target untouched. Real memtap, real filters (the launcher
installs them with seccomp(2) before exec'ing Python).

Usage: seccomp_attach_test.py MEMTAP LAUNCHER PYTHON TARGETS_DIR
"""
import os
import signal
import subprocess
import sys
import time

MEMTAP, LAUNCHER, PYTHON, TARGETS = sys.argv[1:5]
FAILURES = []


def expect(cond, what):
    print("%-72s %s" % (what[:72], "OK" if cond else "FAIL"))
    if not cond:
        FAILURES.append(what)


def memtap(*args):
    return subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True, timeout=60)


def start(modes):
    p = subprocess.Popen([LAUNCHER, modes, "--", PYTHON, os.path.join(TARGETS, "parked_target.py"), "sleep"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("ready"), line
    return p, dict(x.split("=", 1) for x in line.split()[1:])


def check(p):
    os.kill(p.pid, signal.SIGUSR1)
    while True:
        line = p.stdout.readline()
        if not line:
            return None
        if line.startswith("check"):
            return dict(x.split("=", 1) for x in line.split()[1:])


def maps(pid):
    with open("/proc/%d/maps" % pid) as f:
        return f.read()


def attaches_by_file(modes):
    target, ready = start(modes)
    try:
        a = memtap("attach", "--exact", target.pid)
        expect(a.returncode == 0, "%s: attach succeeds (%s)" % (modes, a.stderr.strip()))
        expect(target.poll() is None, "%s: target alive after attach" % modes)
        m = maps(target.pid)
        expect("memfd:memtap-agent" not in m, "%s: no memfd was used" % modes)
        expect("memtap-agent-" in m and "(deleted)" in m, "%s: agent loaded from a file, unlinked" % modes)
        shm = [f for d in ("/proc/%d/root/dev/shm" % target.pid, "/proc/%d/root/tmp" % target.pid)
               for f in os.listdir(d) if f.startswith("memtap-agent-") and f.endswith(".so")]
        expect(not shm, "%s: no agent file left behind: %s" % (modes, shm))
        s = memtap("snapshot", target.pid)
        expect(s.returncode == 0, "%s: snapshot works" % modes)
        d = memtap("detach", target.pid)
        expect(d.returncode == 0, "%s: detach" % modes)
        after = check(target)
        expect(after is not None and after["alloc"] == ready["alloc"] and after["state"] == ready["state"]
               and after["fds"] == ready["fds"], "%s: allocators, state and fds as before" % modes)
        again = memtap("attach", target.pid)
        expect(again.returncode == 0, "%s: re-attach reuses the dormant agent" % modes)
        memtap("detach", target.pid)
    finally:
        target.kill()
        target.wait()


def refused(modes, syscall):
    target, ready = start(modes)
    try:
        before = maps(target.pid)
        started = time.monotonic()
        a = memtap("attach", target.pid)
        took = time.monotonic() - started
        lines = [l for l in a.stderr.splitlines() if l.strip()]
        expect(a.returncode == 4, "%s: refused with exit 4 (got %d)" % (modes, a.returncode))
        expect(len(lines) == 1 and lines[0].startswith("memtap: error:") and syscall in lines[0]
               and "seccomp" in lines[0], "%s: one clear line naming %s: %r" % (modes, syscall, a.stderr))
        expect(took < 5, "%s: quickly (%.2fs)" % (modes, took))
        expect(target.poll() is None, "%s: target alive" % modes)
        expect(maps(target.pid) == before, "%s: no mapping added or removed" % modes)
        # (No "check" here: the target's own check line calls getpid, which
        # this filter kills for; its maps and liveness are the evidence.)
    finally:
        target.kill()
        target.wait()


attaches_by_file("kill-memfd")
attaches_by_file("errno-memfd")
refused("kill-getpid", "getpid")
print("%d failures" % len(FAILURES))
sys.exit(1 if FAILURES else 0)
