"""A target in its own mount namespace with a private /tmp (as systemd's
PrivateTmp= or a container gives it): the agent's socket lives in the
target's /tmp, memtap reaches it through /proc/PID/root, and detach removes
it. Also: a target that exits while memtap attaches gets exit 0 or 3, never
a hang or a crash.

Usage: namespace_test.py MEMTAP PYTHON TARGETS_DIR
"""
import os
import shutil
import subprocess
import sys
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
FAILURES = []


def memtap(*args, timeout=60):
    return subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def expect(p, code, what):
    if p.returncode != code:
        FAILURES.append("%s: exit %d (want %d): %s" % (what, p.returncode, code, p.stderr.strip()))


if not shutil.which("unshare"):
    print("SKIP: no unshare(1)")
    sys.exit(77)
probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs none /tmp"],
                       capture_output=True)
if probe.returncode != 0:
    print("SKIP: cannot make a mount namespace here: %s" % probe.stderr.decode().strip())
    sys.exit(77)

# The source goes in with -c: the checkout itself may live under /tmp, which
# the new tmpfs hides from the target.
with open(os.path.join(TARGETS, "parked_target.py")) as f:
    source = f.read()
target = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           'mount -t tmpfs none /tmp && exec "$0" -u -c "$1" sleep', PYTHON, source],
                          stdout=subprocess.PIPE, text=True)
try:
    assert target.stdout.readline().startswith("ready"), "target did not start"
    pid = target.pid  # sh exec'd into python: same PID
    socket_name = "memtap-%d.sock" % pid
    expect(memtap("attach", pid), 0, "attach in a private /tmp")
    private = os.listdir("/proc/%d/root/tmp" % pid)
    if socket_name not in private:
        FAILURES.append("socket not in the target's own /tmp: %r" % private)
    if os.path.exists("/tmp/" + socket_name):
        FAILURES.append("socket leaked into memtap's /tmp")
    expect(memtap("status", pid), 0, "status through /proc/PID/root")
    expect(memtap("snapshot", pid, "ns"), 0, "snapshot")
    expect(memtap("diff", pid, "ns", "now"), 0, "diff")
    expect(memtap("detach", pid), 0, "detach")
    if socket_name in os.listdir("/proc/%d/root/tmp" % pid):
        FAILURES.append("socket left in the target's /tmp after detach")
finally:
    target.kill()
    target.wait()

# Targets that exit during the attach: exit 0 (we won) or 3 (it was gone), quickly.
for delay in ("0", "0.005", "0.01", "0.02", "0.04"):
    short = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(%s)" % delay])
    started = time.monotonic()
    p = memtap("attach", short.pid, "--timeout", "5", timeout=30)
    took = time.monotonic() - started
    if p.returncode not in (0, 3, 4) or took > 10:
        FAILURES.append("exiting target (sleep %s): exit %d after %.1f s: %s" % (delay, p.returncode, took,
                                                                                  p.stderr.strip()))
    print("target exiting after %ss: memtap exit %d in %.0f ms" % (delay, p.returncode, took * 1000))
    short.wait()

if FAILURES:
    print("FAILED:\n" + "\n".join(FAILURES))
    sys.exit(1)
print("private /tmp and exiting targets handled")
