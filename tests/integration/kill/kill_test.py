"""SIGKILL of memtap at any moment of an attach leaves the target running,
its state intact, and attachable again (issue 7, item 1).

Usage: kill_test.py MEMTAP PYTHON TARGETS_DIR

Two kinds of kills, against an idle single-threaded target (main thread
spinning in pure Python: interrupted in user mode) and a busy multi-threaded
one (threads allocating, one blocked in a syscall):
  - at each named point of the borrow, through MEMTAP_TEST_KILL_AT (memtap
    SIGKILLs itself there), so every moment the return stub must survive is
    exercised on every run;
  - at random moments: 0-60 ms after start, and 0-1.5 ms after the target
    shows a tracer (so the kill lands while a thread is borrowed).
Then kills of `memtap detach` at random moments. After each kill the
target must be alive; a later attach + detach must work;
after it the allocators, the program's own state and its thread count are as
before, and no scratch mapping is left. Assertions read the target's state
from inside it (parked_target.py's "check" line).
"""
import os
import random
import signal
import subprocess
import sys
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
POINTS = ["mmap", "scratch", "call:__errno_location", "marker:__errno_location", "call:dlopen",
          "marker:dlopen", "call:memtap_agent_start", "marker:memtap_agent_start", "putback"]
RANDOM_KILLS = int(os.environ.get("MEMTAP_KILL_TEST_RANDOM", "12"))
FAILURES = []
STATS = {"kills": 0, "mid_borrow": 0, "lost": 0}


def facts(line):
    return dict(item.split("=", 1) for item in line.split()[1:])


class Target:
    def __init__(self, mode):
        self.mode = mode
        self.proc = subprocess.Popen([PYTHON, os.path.join(TARGETS, "parked_target.py"), mode],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("ready"), line
        self.ready = facts(line)
        self.pid = self.proc.pid

    def check(self):
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("check"):
                return facts(line)
        raise AssertionError("no check line")

    def traced(self):
        try:
            for tid in os.listdir("/proc/%d/task" % self.pid):
                with open("/proc/%d/task/%s/status" % (self.pid, tid)) as f:
                    for line in f:
                        if line.startswith("TracerPid:") and line.split()[1] != "0":
                            return True
        except OSError:
            pass
        return False

    def scratch_mappings(self):
        """memtap's scratch: anonymous mappings at its hint addresses, or an
        anonymous read+execute one (code page) followed by a read+write one."""
        hint_lo, hint_hi = 0x6d656d740000, 0x6d656d740000 + 8 * 0x100000
        entries = []
        with open("/proc/%d/maps" % self.pid) as f:
            for line in f:
                fields = line.split()
                start, end = (int(x, 16) for x in fields[0].split("-"))
                entries.append((start, end, fields[1], len(fields) == 5 or fields[5] == "", line.strip()))
        found = []
        for i, (start, end, perms, anonymous, line) in enumerate(entries):
            if not anonymous:
                continue
            if hint_lo <= start < hint_hi:
                found.append(line)
            elif perms == "r-xp" and i + 1 < len(entries) and entries[i + 1][0] == end \
                    and entries[i + 1][2] == "rw-p" and entries[i + 1][3]:
                found.append(line)
        return found

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def memtap(*args, env=None):
    return subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=60, env=env)


def verify(target, label):
    """The target survived the kill: attach again, detach, compare its state."""
    time.sleep(0.05)
    if target.proc.poll() is not None:
        STATS["lost"] += 1
        FAILURES.append("%s: target died (exit %s)" % (label, target.proc.returncode))
        return
    status = memtap("status", target.pid)
    if "attached:         yes" not in status.stdout:
        attach = memtap("attach", target.pid)
        if attach.returncode != 0:
            FAILURES.append("%s: re-attach failed: %s" % (label, attach.stderr.strip()))
    detach = memtap("detach", target.pid)
    if detach.returncode != 0:
        FAILURES.append("%s: detach failed: %s" % (label, detach.stderr.strip()))
    # The agent replies to detach before its thread closes the listening
    # socket and exits: give those a bounded moment before comparing.
    deadline = time.monotonic() + 2
    after = target.check()
    while any(after[k] != target.ready[k] for k in ("threads", "fds")) and time.monotonic() < deadline:
        time.sleep(0.05)
        after = target.check()
    for key in ("alloc", "state", "threads", "fds"):
        if after[key] != target.ready[key]:
            FAILURES.append("%s: %s changed: %s -> %s" % (label, key, target.ready[key], after[key]))
    if int(after["counter"]) <= int(target.ready["counter"]) and target.mode != "allocating":
        FAILURES.append("%s: the target's main loop stopped" % label)
    left = target.scratch_mappings()
    if left:
        FAILURES.append("%s: scratch left after detach: %s" % (label, left))


def kill_at_point(mode, point):
    target = Target(mode)
    try:
        env = dict(os.environ, MEMTAP_TEST_KILL_AT=point)
        result = memtap("attach", "--exact", target.pid, env=env)
        STATS["kills"] += 1
        if result.returncode != -signal.SIGKILL:
            FAILURES.append("%s/%s: memtap did not reach the point (exit %d: %s)"
                            % (mode, point, result.returncode, result.stderr.strip()))
        else:
            STATS["mid_borrow"] += 1
        verify(target, "%s/%s" % (mode, point))
    finally:
        target.stop()


def kill_at_random(mode, in_borrow):
    target = Target(mode)
    try:
        proc = subprocess.Popen([MEMTAP, "attach", "--exact", str(target.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        borrowed = False
        if in_borrow:
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and proc.poll() is None and not target.traced():
                pass
            borrowed = target.traced()
            time.sleep(random.uniform(0, 0.0015))
        else:
            time.sleep(random.uniform(0, 0.06))
            borrowed = target.traced()
        landed = proc.poll() is None
        proc.kill()
        proc.wait()
        STATS["kills"] += 1
        if landed and borrowed:
            STATS["mid_borrow"] += 1
        verify(target, "%s/random" % mode)
    finally:
        target.stop()


def kill_during_detach(mode):
    """detach is a request on the socket: killed at any moment, the agent has
    either detached or not, and a later detach finishes the job."""
    target = Target(mode)
    try:
        attach = memtap("attach", "--exact", target.pid)
        if attach.returncode != 0:
            FAILURES.append("%s/detach: attach failed: %s" % (mode, attach.stderr.strip()))
            return
        proc = subprocess.Popen([MEMTAP, "detach", str(target.pid)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0, 0.004))
        proc.kill()
        proc.wait()
        STATS["kills"] += 1
        verify(target, "%s/detach" % mode)
    finally:
        target.stop()


def main():
    probe = memtap("attach", "--help")
    if probe.returncode != 0:
        print("memtap does not run: %s" % probe.stderr)
        return 1
    for mode in ("spin", "allocating"):
        for point in POINTS:
            kill_at_point(mode, point)
        for i in range(RANDOM_KILLS):
            kill_at_random(mode, in_borrow=(i % 2 == 0))
        for i in range(max(2, RANDOM_KILLS // 2)):
            kill_during_detach(mode)
    print("kills: %(kills)d, landed while a thread was borrowed: %(mid_borrow)d, targets lost: %(lost)d"
          % STATS)
    for failure in FAILURES:
        print("FAIL:", failure)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
