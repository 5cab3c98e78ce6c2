"""A target in a rootless container: a user namespace mapped from an
unprivileged uid (`unshare --user --map-root-user` run by nobody), attached
by root. The agent sees host root as the overflow uid (SO_PEERCRED is
translated into its namespace); attach must complete, status, snapshot and
detach from root must reach the agent, and the target's state must be intact.

Before the fix, attach injected the agent and then said "permission denied"
(exit 1), and neither status nor detach could reach it.

Usage (as root): rootless_userns_test.py MEMTAP PYTHON TARGETS_DIR
PYTHON must be executable by nobody (Debian's /usr/bin/python3, not a pyenv
build under /root).
"""
import os
import shutil
import signal
import subprocess
import sys
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
NOBODY = 65534
ROOTLESS = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
            "unshare", "--user", "--map-root-user"]
FAILURES = []


def memtap(*args, timeout=60):
    return subprocess.run([MEMTAP] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)


def expect(p, code, what):
    if p.returncode != code:
        FAILURES.append("%s: exit %d (want %d): %s" % (what, p.returncode, code, p.stderr.strip()))
    return p.returncode == code


def facts(line):
    return dict(word.split("=", 1) for word in line.split()[1:] if "=" in word)


def check_target(target, pid, nonce):
    """The target's own view of itself (parked_target.py answers SIGUSR1)."""
    path = "/tmp/memtap-check-%d" % pid
    with open(path, "w") as f:
        f.write(nonce)
    os.chmod(path, 0o644)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.kill(pid, signal.SIGUSR1)
            line = target.stdout.readline()
            if line.startswith("check nonce=%s " % nonce):
                return facts(line)
        raise AssertionError("target did not answer the check")
    finally:
        os.unlink(path)


if os.geteuid() != 0:
    print("SKIP: needs root (root attaches a target owned by nobody)")
    sys.exit(77)
if shutil.which("setpriv") is None or shutil.which("unshare") is None:
    print("SKIP: no setpriv(1) or unshare(1)")
    sys.exit(77)
probe = subprocess.run(ROOTLESS + [PYTHON, "-c", "pass"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
if probe.returncode != 0:
    print("SKIP: unprivileged user namespaces unavailable (or %s not executable by nobody): %s"
          % (PYTHON, probe.stderr.decode().strip()))
    sys.exit(77)

# The source goes in with -c: nobody may not be able to read the checkout.
with open(os.path.join(TARGETS, "parked_target.py")) as f:
    source = f.read()
target = subprocess.Popen(ROOTLESS + [PYTHON, "-u", "-c", source, "sleep"], stdout=subprocess.PIPE,
                          universal_newlines=True)
try:
    ready = target.stdout.readline()
    assert ready.startswith("ready"), "target did not start: %r" % ready
    pid = target.pid  # setpriv and unshare exec: same PID
    before = facts(ready)
    with open("/proc/%d/uid_map" % pid) as f:
        print("target %d, uid_map: %s" % (pid, " ".join(f.read().split())))
    socket_path = "/proc/%d/root/tmp/memtap-%d.sock" % (pid, pid)

    if expect(memtap("attach", pid), 0, "attach to a rootless-namespace target"):
        st = memtap("status", pid)
        expect(st, 0, "status from root")
        if st.returncode == 0 and "attached" not in st.stdout:
            FAILURES.append("status does not say attached: %r" % st.stdout)
        expect(memtap("snapshot", pid, "rootless"), 0, "snapshot from root")
        expect(memtap("detach", pid), 0, "detach from root")
        if os.path.exists(socket_path):
            FAILURES.append("socket left after detach")
    else:
        # Whatever attach did, try to leave the target as it was.
        memtap("detach", pid)

    after = check_target(target, pid, "after")
    if after.get("alloc") != before.get("alloc"):
        FAILURES.append("allocators not restored: %s -> %s" % (before.get("alloc"), after.get("alloc")))
    if after.get("state") != before.get("state"):
        FAILURES.append("target state changed: %s -> %s" % (before.get("state"), after.get("state")))
    if after.get("threads") != before.get("threads"):
        FAILURES.append("threads %s -> %s" % (before.get("threads"), after.get("threads")))
    if int(after.get("counter", 0)) <= int(before.get("counter", 0)):
        FAILURES.append("target stopped counting: %s -> %s" % (before.get("counter"), after.get("counter")))
    if target.poll() is not None:
        FAILURES.append("target died: %r" % target.returncode)
finally:
    target.kill()
    target.wait()

if FAILURES:
    print("FAILED:\n" + "\n".join(FAILURES))
    sys.exit(1)
print("rootless user namespace: attach, status, snapshot and detach from root; target intact")
