"""Issue 8 item 2: RSS explained, against ground truth taken inside the target.

  - fragmentation (tests/targets/fragmented_target.py: 1,000,000 small dicts,
    1 in 500 kept): status's pymalloc figures agree with the target's own
    sys._debugmallocstats() (arena count within a few, bytes within a few %),
    and the diagnosis names fragmentation;
  - glibc slack (glibc_slack_target.py: ~650-byte strings, 1 in 500 kept):
    the diagnosis names glibc's free heap, and `memtap trim` lowers RSS by
    most of the free memory status counted as resident.

Usage: rss_test.py MEMTAP PYTHON TARGETS_DIR. Exit 77 if ptrace is denied.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
TARGETS = os.path.abspath(TARGETS)
FAILURES = []
MiB = 1 << 20


def check(condition, message, *details):
    if not condition:
        FAILURES.append(message + "".join("\n--- " + str(d) for d in details))
    return condition


def memtap(*args):
    return subprocess.run([MEMTAP] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


def ask(proc, command):
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"


def start(script, *args):
    proc = subprocess.Popen([PYTHON, os.path.join(TARGETS, script)] + [str(a) for a in args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc):
    proc.kill()
    proc.wait()


def rss_bytes(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def debug_malloc_stats(text):
    """The figures of sys._debugmallocstats() that memtap reports."""
    def number(pattern):
        m = re.search(pattern + r"\s*=\s*([0-9,]+)", text)
        assert m, "no %r in _debugmallocstats output" % pattern
        return int(m.group(1).replace(",", ""))
    return {
        "arenas": number(r"# arenas allocated current"),
        "allocated_bytes": number(r"# bytes in allocated blocks"),
        "available_bytes": number(r"# bytes in available blocks"),
        "unused_pool_bytes": number(r"\d+ unused pools \* \d+ bytes"),
    }


def close(a, b, fraction, floor):
    return abs(a - b) <= max(fraction * max(a, b), floor)


def attach_or_skip(pid):
    a = memtap("attach", pid)
    if a.returncode == 5:
        print("SKIP: ptrace is not allowed here: " + a.stderr.strip())
        sys.exit(77)
    check(a.returncode == 0, "attach failed", a.stderr)


def fragmentation():
    proc = start("fragmented_target.py", 1000000, 500)
    try:
        pid = proc.pid
        # Ground truth first: with memtap's hooks on the object domain,
        # _PyObject_DebugMallocStats finds pymalloc is not the allocator and
        # prints nothing (Objects/obmalloc.c, _PyMem_PymallocEnabled).
        stats_path = tempfile.mktemp(prefix="memtap-rss-stats-")
        ask(proc, "stats " + stats_path)
        with open(stats_path) as f:
            truth_text = f.read()
        os.unlink(stats_path)
        truth = debug_malloc_stats(truth_text)
        print("sys._debugmallocstats(): %r" % truth)
        attach_or_skip(pid)
        started = time.monotonic()
        s = memtap("status", pid, "--json", "--timeout", "5")
        took = time.monotonic() - started
        check(s.returncode == 0, "status failed", s.stderr)
        status = json.loads(s.stdout)
        py = status.get("pymalloc", {})
        print("pymalloc read in %.0f ms: %r" % (took * 1000, py))
        if check(py.get("state") == "read", "pymalloc not read from a ticking target", s.stdout):
            check(abs(py["arenas"] - truth["arenas"]) <= 3, "arena count differs", py, truth)
            check(close(py["allocated_bytes"], truth["allocated_bytes"], 0.05, 256 << 10),
                  "allocated bytes differ", py, truth)
            check(close(py["available_bytes"], truth["available_bytes"], 0.03, 1 * MiB),
                  "available bytes differ", py, truth)
            check(close(py["unused_pool_bytes"], truth["unused_pool_bytes"], 0.03, 1 * MiB),
                  "unused pool bytes differ", py, truth)
            check(py["arena_bytes"] >= py["arenas"] * (256 << 10), "arena bytes below 256 KiB per arena",
                  py)
        diagnoses = status.get("diagnoses", [])
        check(any("fragmentation, not a leak" in d for d in diagnoses), "no fragmentation diagnosis",
              s.stdout)
        check(not any("glibc" in d for d in diagnoses), "glibc named on a pymalloc case", diagnoses)
        text = memtap("status", pid)
        check(re.search(r"^diagnosis: .*pymalloc arenas held by few live objects", text.stdout, re.M),
              "status text has no diagnosis line", text.stdout)
        check(re.search(r"^pymalloc: +\d+ arenas? = ", text.stdout, re.M), "no pymalloc line",
              text.stdout)
        check(re.search(r"^rss: .* anonymous \+ .* file-backed", text.stdout, re.M), "no rss breakdown",
              text.stdout)
        print(text.stdout)
        d = memtap("diff", pid, "now", "now", "--top", "1")
        check(re.search(r"^memory: anon .*; pymalloc .* in \d+ arenas", d.stdout, re.M) and
              re.search(r"^diagnosis: .*fragmentation, not a leak", d.stdout, re.M),
              "diff's header has no short breakdown and diagnosis", d.stdout, d.stderr)
        dj = json.loads(memtap("diff", pid, "now", "now", "--json").stdout)
        check(dj.get("memory", {}).get("pymalloc", {}).get("state") == "read" and
              any("fragmentation" in x for x in dj["memory"].get("diagnoses", [])),
              "diff JSON has no memory breakdown", dj.get("memory"))
        w = memtap("watch", pid, "--count", 2, "--interval", 0.3, "--top", 1)
        check(w.returncode == 0 and re.search(r"pymalloc .* in \d+ arenas \(.* free\)", w.stdout),
              "watch's header has no pymalloc figures", w.stdout, w.stderr)
        check(memtap("detach", pid).returncode == 0, "detach failed")
    finally:
        stop(proc)


def glibc_slack():
    proc = start("glibc_slack_target.py", 200000, 500)
    try:
        pid = proc.pid
        attach_or_skip(pid)
        s = memtap("status", pid, "--json", "--timeout", "5")
        check(s.returncode == 0, "status failed", s.stderr)
        status = json.loads(s.stdout)
        resident_free = status.get("malloc_resident_free_bytes", 0)
        print("glibc: %d MiB free, %d MiB counted resident, rss %d MiB" % (
            status.get("malloc_free_bytes", 0) >> 20, resident_free >> 20, status["rss_bytes"] >> 20))
        check(resident_free >= 60 * MiB, "glibc's resident free memory is not seen", s.stdout)
        diagnoses = status.get("diagnoses", [])
        check(any("free inside glibc's heap: `memtap trim %d`" % pid in d for d in diagnoses),
              "no glibc diagnosis", s.stdout)
        check(not any("fragmentation" in d for d in diagnoses), "pymalloc named on a glibc case", diagnoses)
        before = rss_bytes(pid)
        t = memtap("trim", pid)
        after = rss_bytes(pid)
        print(t.stdout.strip())
        print("trim: rss %.1f -> %.1f MiB, %.0f%% of the resident free memory returned" % (
            before / MiB, after / MiB, 100.0 * (before - after) / max(resident_free, 1)))
        check(t.returncode == 0, "trim failed", t.stderr)
        check(re.search(r"^process %d: rss .* -> .*" % pid, t.stdout, re.M), "trim output", t.stdout)
        check(before - after >= 0.7 * resident_free, "trim returned less than 70%% of the free memory",
              before, after, resident_free)
        s2 = json.loads(memtap("status", pid, "--json").stdout)
        check(not any("glibc" in d for d in s2.get("diagnoses", [])), "glibc still named after trim", s2)
        check(memtap("detach", pid).returncode == 0, "detach failed")
        t2 = memtap("trim", pid)
        check(t2.returncode == 7, "trim without an agent must exit 7", t2.returncode, t2.stderr)
    finally:
        stop(proc)


def main():
    fragmentation()
    glibc_slack()
    if FAILURES:
        print("FAILED:\n" + "\n\n".join(FAILURES))
        return 1
    print("RSS explained: pymalloc figures match _debugmallocstats, glibc slack trimmed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
