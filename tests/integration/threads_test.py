"""Issue 8 item 5: who allocated, per thread, and the application line that
caused an allocation made inside the standard library
(tests/targets/threads_target.py).

Four OS threads named mt-worker-0..3 allocate 1x, 2x, 3x and 4x MB at one
line. Against the target's own count of each thread's bytes:
  diff --by thread   each thread's row (by native id) holds its bytes:
                     exact within 3%; sampled (--sample-bytes 64 KiB) within
                     25% for 16 MiB and more (the estimate's relative
                     standard deviation is sqrt(interval / bytes) <= 6.3%:
                     25% is 4 of them); the row is named "thread TID
                     (mt-worker-I)" in text, and JSON carries tid and
                     thread_name
  watch --thread TID (plain reports) shows the growth of the allocation line
                     of that thread only, not the sum over threads (exact)
  diff --by user     the big string json.dumps builds inside json/encoder.py
                     is charged to the target's line that called json.dumps
                     (at least 90% of its size), which --by lineno does not
                     show at all

Usage: threads_test.py MEMTAP PYTHON TARGETS_DIR
"""
import json
import os
import select
import subprocess
import sys

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
SCRIPT = os.path.join(TARGETS, "threads_target.py")
with open(SCRIPT) as f:
    SOURCE = f.read().splitlines()
ALLOC_LINE = [n for n, line in enumerate(SOURCE, 1) if "# THREAD-ALLOC" in line][0]
USER_LINE = [n for n, line in enumerate(SOURCE, 1) if "# USER-LINE" in line][0]
FAILURES = []
MIB = 1024 * 1024


def memtap(*args):
    p = subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    if p.returncode == 5:
        print("skipping: memtap may not ptrace here: %s" % p.stderr.strip())
        sys.exit(77)
    if p.returncode != 0:
        raise AssertionError("memtap %s: exit %d: %s" % (" ".join(map(str, args)), p.returncode, p.stderr))
    return p.stdout


target = subprocess.Popen([PYTHON, "-u", SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def read_line(timeout):
    ready, _, _ = select.select([target.stdout], [], [], timeout)
    if not ready:
        raise AssertionError("target said nothing within %d s" % timeout)
    return target.stdout.readline().split()


def order(command, answer):
    target.stdin.write(command + "\n")
    target.stdin.flush()
    words = read_line(120)
    assert words[0] == answer, words
    return words[1:]


def is_script(path):
    return os.path.realpath(path) == os.path.realpath(SCRIPT)


def check_threads(mode, per_thread_mb, tolerance, tids):
    pid = target.pid
    memtap("snapshot", pid, mode + "-t1")
    truth = dict((int(t), int(b)) for t, b in (w.split(":") for w in order("alloc %d" % per_thread_mb, "alloc-done")))
    memtap("snapshot", pid, mode + "-t2")
    stats = json.loads(memtap("diff", pid, mode + "-t1", mode + "-t2", "--by", "thread", "--json", "--top", "1000"))
    rows = dict((s["tid"], s) for s in stats["stats"])
    for i, tid in enumerate(tids):
        row = rows.get(tid)
        got = row["size_diff"] if row else 0
        print("%s: thread %d (worker %d): %d bytes, true %d (%+.1f%%)"
              % (mode, tid, i, got, truth[tid], 100.0 * (got - truth[tid]) / truth[tid]))
        if abs(got - truth[tid]) > tolerance * truth[tid]:
            FAILURES.append("%s: thread %d shows %d, allocated %d" % (mode, tid, got, truth[tid]))
        if not row or row["thread_name"] != "mt-worker-%d" % i or row["thread_state"] != "running":
            FAILURES.append("%s: thread %d's JSON row: %r" % (mode, tid, row))
    # Largest growth first: worker 3 allocated the most.
    if stats["stats"][0]["tid"] != tids[3]:
        FAILURES.append("%s: first row is %r, not worker 3" % (mode, stats["stats"][0]))
    text = memtap("diff", pid, mode + "-t1", mode + "-t2", "--by", "thread")
    for i, tid in enumerate(tids):
        if ("\nthread %d (mt-worker-%d): size=" % (tid, i)) not in text:
            FAILURES.append("%s: diff --by thread text has no row for thread %d (mt-worker-%d):\n%s"
                            % (mode, tid, i, text))
    # The default grouping sums over threads, as before.
    lineno = json.loads(memtap("diff", pid, mode + "-t1", mode + "-t2", "--json", "--top", "1000"))["stats"]
    at_line = sum(s["size_diff"] for s in lineno if is_script(s["file"]) and s["line"] == ALLOC_LINE)
    total = sum(truth.values())
    if abs(at_line - total) > tolerance * total:
        FAILURES.append("%s: by lineno the line holds %d, the threads together %d" % (mode, at_line, total))
    return truth


def size_of(text):
    """formatSize's "+4006 KiB" back to bytes (rounded as it was printed)."""
    number, unit = text.split()
    return float(number) * {"B": 1, "KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB}[unit]


def check_watch_filter(tids, per_thread_mb):
    """watch --thread: rows count one thread's allocations only."""
    pid = target.pid
    tid = tids[1]
    watch = subprocess.Popen([MEMTAP, "watch", str(pid), "--thread", str(tid), "--count", "3",
                              "--interval", "1", "--top", "3"], stdout=subprocess.PIPE, text=True)
    try:
        # The first report (after one interval) comes before the growth.
        first = watch.stdout.readline()
        assert first.startswith("memtap watch:"), first
        truth = dict((int(t), int(b))
                     for t, b in (w.split(":") for w in order("alloc %d" % per_thread_mb, "alloc-done")))
        out, _ = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    last = out.strip().split("\n\n")[-1]
    print("watch --thread %d, last report:\n%s" % (tid, last))
    if watch.returncode != 0:
        FAILURES.append("watch --thread exited %d" % watch.returncode)
    if "thread %d (mt-worker-1) only" % tid not in last:
        FAILURES.append("watch --thread: the header does not name the thread:\n%s" % last)
    growth = None
    for line in last.splitlines():
        if (":%d: growth " % ALLOC_LINE) in line and line.startswith("#"):
            growth = line.split(": growth ")[1].split(",")[0]
    want = truth[tid]
    if growth is None or abs(size_of(growth) - want) > 0.05 * want:
        FAILURES.append("watch --thread: the line's growth is %r, thread %d allocated %d bytes (all "
                        "threads %d)" % (growth, tid, want, sum(truth.values())))


def check_user(mode, megabytes, tolerance):
    pid = target.pid
    memtap("snapshot", pid, mode + "-u1")
    size = int(order("report %d" % megabytes, "report-done")[0])
    memtap("snapshot", pid, mode + "-u2")
    by_user = json.loads(memtap("diff", pid, mode + "-u1", mode + "-u2", "--by", "user", "--json",
                                "--top", "1000"))["stats"]
    at_user = sum(s["size_diff"] for s in by_user if is_script(s["file"]) and s["line"] == USER_LINE)
    by_line = json.loads(memtap("diff", pid, mode + "-u1", mode + "-u2", "--json", "--top", "1000"))["stats"]
    at_line = sum(s["size_diff"] for s in by_line if is_script(s["file"]) and s["line"] == USER_LINE)
    encoder = [s for s in by_line if s["file"].endswith("json/encoder.py") and s["size_diff"] > size / 2]
    print("%s: json.dumps result %d bytes; by user at the app line %d (%.1f%%), by lineno %d there, "
          "%s" % (mode, size, at_user, 100.0 * at_user / size, at_line,
                  ["%s:%d %d" % (s["file"], s["line"], s["size_diff"]) for s in encoder]))
    if not (1 - tolerance) * size <= at_user <= (1 + tolerance) * size + 2 * MIB:
        FAILURES.append("%s: --by user puts %d at the json.dumps line, the string is %d" % (mode, at_user, size))
    if at_line > 0.1 * size or not encoder:
        FAILURES.append("%s: --by lineno should show the string in json/encoder.py, not at the app line "
                        "(%d there)" % (mode, at_line))
    if any(s["user_frame"] is not True for s in by_user if is_script(s["file"])):
        FAILURES.append("%s: app rows marked as having no user frame" % mode)
    text = memtap("diff", pid, mode + "-u1", mode + "-u2", "--by", "user")
    if ("%s:%d: size=" % (SCRIPT, USER_LINE)) not in text or "json.dumps(rows)" not in text:
        FAILURES.append("%s: diff --by user text lacks the app line and its source:\n%s" % (mode, text))


try:
    words = read_line(30)
    assert words[0] == "ready", words
    tids = [int(t) for t in words[1:]]
    memtap("attach", target.pid, "--exact")
    check_threads("exact", 4, 0.03, tids)
    check_watch_filter(tids, 2)
    check_user("exact", 8, 0.10)
    memtap("detach", target.pid)
    memtap("attach", target.pid, "--sample-bytes", 65536)
    check_threads("sampled", 16, 0.25, tids)
    check_user("sampled", 16, 0.25)
    memtap("detach", target.pid)
finally:
    target.kill()
    target.wait()

if FAILURES:
    print("FAILED:\n" + "\n".join(FAILURES))
    sys.exit(1)
print("per-thread and by-user attribution within bounds")
