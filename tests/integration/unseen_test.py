"""Issue 8 item 3: memtap says what it does not see. Against a real target
that holds 200 MiB from before the attach:
  - attach and status name since when memory is traced and how much RSS
    predates it (text and JSON, RSS at attach >= the 200 MiB);
  - attach --exact (and watch --exact) on a sampled attachment refuses
    (exit 1) and the agent keeps its mode;
  - a site resting on one sample is marked in diff text and JSON;
  - a diff across a detach/re-attach warns (text and JSON);
  - after the target is gone, diff of its stored snapshots still works.

Usage: unseen_test.py MEMTAP PYTHON TARGETS_DIR. Exit 77 if ptrace is denied.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
TARGET = os.path.join(os.path.abspath(TARGETS), "unseen_target.py")
EARLY_MIB = 200
FAILURES = []


def check(condition, message, *details):
    if not condition:
        FAILURES.append(message + "".join("\n--- " + str(d) for d in details))
    return condition


def memtap(*args):
    return subprocess.run([MEMTAP] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


def big_line():
    with open(TARGET) as f:
        for number, line in enumerate(f, 1):
            if "# BIG-LINE" in line:
                return "%s:%d" % (TARGET, number)
    raise AssertionError("no BIG-LINE")


def ask(proc, command):
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"


def mib(text):
    """The MiB figure of '1391 MiB of RSS predates it'."""
    m = re.search(r"([0-9.]+) (B|KiB|MiB|GiB) of RSS predates it and is not traced", text)
    if not m:
        return None
    return float(m.group(1)) * {"B": 1 / 1048576, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[m.group(2)]


def main():
    # A private snapshot store, so other tests' stores are not touched.
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="memtap-unseen-")
    os.chmod(os.environ["XDG_RUNTIME_DIR"], 0o700)
    proc = subprocess.Popen([PYTHON, TARGET, str(EARLY_MIB)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        pid = proc.pid
        before_ms = time.time() * 1000
        a = memtap("attach", pid)
        if a.returncode == 5:
            print("SKIP: ptrace is not allowed here: " + a.stderr.strip())
            return 77
        after_ms = time.time() * 1000
        check(a.returncode == 0, "attach failed", a.stderr)
        check("traced since " in a.stdout, "attach does not say since when it traces", a.stdout)
        figure = mib(a.stdout)
        check(figure is not None and figure >= EARLY_MIB, "attach: predating RSS < %d MiB" % EARLY_MIB,
              a.stdout)

        s = memtap("status", pid)
        check(re.search(r"not seen: +traced since \d\d:\d\d:\d\d \(\d+ s ago\)", s.stdout) is not None,
              "status text lacks the traced-since line", s.stdout)
        check((mib(s.stdout) or 0) >= EARLY_MIB, "status: predating RSS too small", s.stdout)
        j = json.loads(memtap("status", pid, "--json").stdout)
        check(j.get("rss_at_attach_bytes", 0) >= EARLY_MIB << 20, "status JSON rss_at_attach_bytes", j)
        check(before_ms - 1000 <= j.get("attached_at_unix_ms", 0) <= after_ms + 1000,
              "status JSON attached_at_unix_ms outside the attach", j, before_ms, after_ms)

        # A second attach asking for another mode refuses, loudly.
        r = memtap("attach", pid, "--exact")
        check(r.returncode == 1, "attach --exact on a sampled agent: exit %d, expected 1" % r.returncode,
              r.stdout, r.stderr)
        check("memtap is already attached to process %d in sampled mode" % pid in r.stderr and
              "detach first to change the mode" in r.stderr, "no clear refusal", r.stderr)
        r = memtap("attach", pid, "--sample-bytes", "64K")
        check(r.returncode == 1 and "detach first" in r.stderr, "a different --sample-bytes not refused",
              r.stderr)
        r = memtap("attach", pid, "--sample-bytes", "512K")
        check(r.returncode == 0 and "already attached to process %d (CPython " % pid in r.stdout and
              "sampled mode)" in r.stdout, "the same --sample-bytes should be accepted, naming the mode",
              r.stdout, r.stderr)
        w = memtap("watch", pid, "--exact", "--count", "1")
        check(w.returncode == 1 and "detach first to change the mode" in w.stderr,
              "watch --exact on a sampled agent: exit %d" % w.returncode, w.stderr)
        check(json.loads(memtap("status", pid, "--json").stdout).get("mode") == "sampled",
              "the agent changed its mode")

        # One 4 MiB allocation: one sample.
        check(memtap("snapshot", pid, "s1").returncode == 0, "snapshot s1")
        ask(proc, "big")
        check(memtap("snapshot", pid, "s2").returncode == 0, "snapshot s2")
        d = memtap("diff", pid, "s1", "s2")
        site = [l for l in d.stdout.splitlines() if l.startswith(big_line() + ":")]
        check(len(site) == 1 and "(1 sample: rough; use --exact or a smaller --sample-bytes)" in site[0],
              "the one-sample site is not marked", d.stdout, d.stderr)
        check("traced since" in d.stdout, "diff does not say since when it traces", d.stdout)
        dj = json.loads(memtap("diff", pid, "s1", "s2", "--json").stdout)
        stat = [x for x in dj["stats"] if "%s:%d" % (x["file"], x["line"]) == big_line()]
        check(len(stat) == 1 and stat[0].get("samples") == 1 and stat[0].get("rough") is True,
              "diff JSON samples/rough", dj)
        check("warning" not in dj, "a warning within one session", dj)
        check(dj.get("rss_at_attach_bytes", 0) >= EARLY_MIB << 20, "diff JSON rss_at_attach_bytes", dj)

        # Detach and attach again: a new session.
        check(memtap("detach", pid).returncode == 0, "detach")
        time.sleep(0.01)  # the session's clock is in ms
        check(memtap("attach", pid).returncode == 0, "re-attach")
        check(memtap("snapshot", pid, "s3").returncode == 0, "snapshot s3")
        d = memtap("diff", pid, "s1", "s3")
        check("warning: OLD and NEW come from different attach sessions" in d.stdout,
              "no warning across sessions", d.stdout)
        dj = json.loads(memtap("diff", pid, "s1", "s3", "--json").stdout)
        check("different attach sessions" in dj.get("warning", ""), "no JSON warning across sessions", dj)
        check(memtap("detach", pid).returncode == 0, "detach 2")

        # The process goes; its snapshots stay readable.
        proc.kill()
        proc.wait()
        d = memtap("diff", pid, "s1", "s2")
        check(d.returncode == 0, "diff after the target is gone: exit %d" % d.returncode, d.stderr)
        check(("process %d is gone; using the snapshots stored for it" % pid) in d.stderr,
              "diff of a gone process does not say so", d.stderr)
        check(any(l.startswith(big_line() + ":") for l in d.stdout.splitlines()),
              "diff of a gone process lost the site", d.stdout)
        n = memtap("diff", pid, "s1", "now")
        check(n.returncode == 3 and n.stderr.count("\n") == 1 and "is gone" in n.stderr,
              "diff of a gone process with 'now': exit %d" % n.returncode, n.stderr)
        n = memtap("diff", 4194000, "s1", "s2")
        check(n.returncode == 3, "diff of a PID never stored: exit %d" % n.returncode, n.stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for failure in FAILURES:
        print("FAIL: " + failure)
    if not FAILURES:
        print("ok")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
