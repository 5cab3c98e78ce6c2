"""Issue 8 item 4: evidence that outlives the process. A target builds a
burst and frees it, then grows (tests/targets/journal_target.py); it is
killed -9 while memtap records it, and again while memtap watches it:

  record: `memtap record PID -o FILE --interval 0.5` exits 3 saying the
          target was killed by signal 9; the journal's last complete record
          is within about one interval of the kill; `memtap report FILE`,
          after the process is gone, says it died and how, and names the
          burst's line at the peak and the growing line, with at least 80%
          (and at most 125%) of the bytes the target says it built there.
  watch:  `memtap watch PID` (plain, piped) journals into the snapshot store
          by default; after the kill, `memtap report PID` of the gone PID
          reads that journal and shows the same.
  store:  a later `memtap snapshot` of another process keeps the gone
          processes' stores; `record -o` refuses a file that is not a journal
          of the process before attaching.

Exact mode, so the figures are the allocator's own. The store lives in a
private XDG_RUNTIME_DIR.

Usage: journal_test.py MEMTAP PYTHON TARGETS_DIR
"""
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
SCRIPT = os.path.join(TARGETS, "journal_target.py")
with open(SCRIPT) as f:
    LINES = f.read().splitlines()
BURST_LINE = [n for n, line in enumerate(LINES, 1) if "# JOURNAL-BURST" in line][0]
GROW_LINE = [n for n, line in enumerate(LINES, 1) if "# JOURNAL-GROW" in line][0]
INTERVAL = 0.5
NO_SUCH_PROCESS = 3  # base/error.h
PERMISSION_DENIED = 5
FAILURES = []
STORE = tempfile.mkdtemp(prefix="memtap-journal-test-")
os.chmod(STORE, 0o700)
ENV = dict(os.environ, XDG_RUNTIME_DIR=STORE)


def check(ok, what, *details):
    print("%-70s %s" % (what[:70], "OK" if ok else "FAIL"))
    if not ok:
        FAILURES.append(what + "".join("\n--- " + str(d) for d in details))
    return ok


def memtap(*args, timeout=60):
    return subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env=ENV)


class Target:
    def __init__(self):
        self.proc = subprocess.Popen([PYTHON, "-u", SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.pid = self.proc.pid
        line = self.read_line(30)
        assert line == "ready", "target did not say ready: %r" % line

    def read_line(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("target said nothing within %d s" % timeout)
        return self.proc.stdout.readline().strip()

    def run_case(self):
        """go: returns (burst bytes, grown bytes) as the target reports them."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        burst = self.read_line(60).split()
        grown = self.read_line(60).split()
        assert burst[0] == "burst-done" and grown[0] == "grown", (burst, grown)
        return int(burst[1]), int(grown[1])

    def kill(self):
        """kill -9, not reaped yet: memtap reads the wait status from /proc."""
        self.proc.send_signal(signal.SIGKILL)
        return time.time()

    def reap(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def site_bytes(stats, line):
    return sum(s["size_diff"] for s in stats
               if os.path.realpath(s["file"]) == os.path.realpath(SCRIPT) and s["line"] == line)


def check_report(how, args, burst, grown, kill_ms):
    """`memtap report ARGS` (text and JSON) after the process is gone."""
    text = memtap("report", *args)
    check(text.returncode == 0, "%s: memtap report exits 0" % how, text.stderr)
    check("the process died at" in text.stdout and "killed by signal 9 (SIGKILL)" in text.stdout,
          "%s: the report says the process was killed by signal 9" % how, text.stdout)
    check("%s:%d" % (SCRIPT, BURST_LINE) in text.stdout.split("breakdown at the highest peak")[-1],
          "%s: the peak breakdown names the burst line" % how, text.stdout)
    growth_section = text.stdout.split("growth from the first record to the last")[-1].split("breakdown at")[0]
    check("%s:%d" % (SCRIPT, GROW_LINE) in growth_section,
          "%s: the growth names the growing line" % how, text.stdout)
    result = memtap("report", *(list(args) + ["--json", "--top", "1000"]))
    if not check(result.returncode == 0, "%s: memtap report --json exits 0" % how, result.stderr):
        return
    report = json.loads(result.stdout)
    check(report["end"] and report["end"]["reason"] == "died", "%s: the journal's end record: died" % how,
          report["end"])
    at_peak = site_bytes(report["peak"]["stats"], BURST_LINE) if report["peak"] else 0
    check(0.8 * burst <= at_peak <= 1.25 * burst,
          "%s: burst at the peak %.1f MiB of a true %.1f MiB" % (how, at_peak / 2**20, burst / 2**20))
    growth = site_bytes(report["growth"]["stats"], GROW_LINE)
    check(0.8 * grown <= growth <= 1.25 * grown,
          "%s: growth %.1f MiB of a true %.1f MiB" % (how, growth / 2**20, grown / 2**20))
    last = report["timeline"][-1]["unix_ms"]
    gap = kill_ms - last
    # A record every interval; the last one complete before the kill.
    check(-50 <= gap <= INTERVAL * 1000 + 400,
          "%s: last record %d ms before the kill (interval %d ms)" % (how, gap, INTERVAL * 1000))


def case_record():
    target = Target()
    journal = os.path.join(STORE, "out.mtj")
    record = subprocess.Popen([MEMTAP, "record", str(target.pid), "-o", journal, "--interval", str(INTERVAL),
                               "--exact"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        path = record.stdout.readline().strip()
        if record.poll() == PERMISSION_DENIED:
            print("SKIP: ptrace is not allowed here: " + record.stderr.read())
            sys.exit(77)
        check(path == journal, "record prints the journal's path on stdout", path)
        time.sleep(INTERVAL)  # the first record, taken before the burst
        burst, grown = target.run_case()
        time.sleep(2 * INTERVAL + 0.2)  # records of the full growth
        kill_ms = target.kill() * 1000
        out, err = record.communicate(timeout=30)
    finally:
        if record.poll() is None:
            record.kill()
            record.communicate()
    check(record.returncode == NO_SUCH_PROCESS, "record exits 3 when the target is killed", record.returncode, err)
    check("process %d died while recorded: killed by signal 9 (SIGKILL)" % target.pid in err,
          "record says the target was killed by signal 9", err)
    check("memtap report %s" % journal in err, "record says where the journal is", err)
    check("detaching" not in err, "record does not try to detach from a dead process", err)
    target.reap()
    check_report("record", [journal], burst, grown, kill_ms)
    return target.pid, journal


def case_watch():
    target = Target()
    watch = subprocess.Popen([MEMTAP, "watch", str(target.pid), "--interval", str(INTERVAL), "--exact"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    reports = []
    reader = threading.Thread(target=lambda: reports.append(watch.stdout.read()))
    try:
        # The first report: attached, and the baseline record taken.
        reports.append(watch.stdout.readline())
        if watch.poll() == PERMISSION_DENIED:
            print("SKIP: ptrace is not allowed here")
            sys.exit(77)
        reader.start()
        burst, grown = target.run_case()
        time.sleep(2 * INTERVAL + 0.2)
        kill_ms = target.kill() * 1000
        err = watch.stderr.read()
        watch.wait(timeout=30)
    finally:
        if watch.poll() is None:
            watch.kill()
        if reader.is_alive():
            reader.join(timeout=30)
    check(watch.returncode == NO_SUCH_PROCESS, "watch exits 3 when the target is killed", watch.returncode, err)
    check("process %d died while watched: killed by signal 9 (SIGKILL)" % target.pid in err,
          "watch says the target was killed by signal 9", err)
    check("memtap report %d" % target.pid in err, "watch says where the journal is", err)
    check(reports and "memtap watch: pid %d" % target.pid in reports[0], "watch wrote plain reports to the pipe")
    target.reap()
    check_report("watch", [target.pid], burst, grown, kill_ms)
    return target.pid


def case_store(gone_pid, other_journal):
    """Another process's snapshot keeps the gone one's store; -o is checked before attaching."""
    proc = subprocess.Popen([PYTHON, "-u", os.path.join(TARGETS, "parked_target.py"), "sleep"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("ready")
        stores = [d for d in os.listdir(os.path.join(STORE, "memtap")) if d.startswith("%d-" % gone_pid)]
        check(len(stores) == 1, "the gone process's store exists", stores)
        not_journal = os.path.join(STORE, "notes.txt")
        with open(not_journal, "w") as f:
            f.write("my notes\n")
        os.chmod(not_journal, 0o600)
        for path, why in ((not_journal, "is not a memtap journal"), (other_journal, "journal of another process")):
            r = memtap("record", proc.pid, "-o", path, "--count", 1)
            check(r.returncode == 1 and why in r.stderr, "record -o refuses a file that %s" % why, r.stderr)
        with open(not_journal) as f:
            check(f.read() == "my notes\n", "the refused file is unchanged")
        status = memtap("status", proc.pid)
        check("attached:         no" in status.stdout, "a refused -o attached nothing", status.stdout)
        check(memtap("attach", proc.pid).returncode == 0, "attach to another process")
        check(memtap("snapshot", proc.pid).returncode == 0, "snapshot of another process")
        # record into the store, then stop on --count: an end record "stopped".
        r = memtap("record", proc.pid, "--interval", "0.2", "--count", 2)
        check(r.returncode == 0 and r.stdout.strip().endswith("journal-1.mtj"),
              "record --count 2 writes a journal in the store", r.stdout, r.stderr)
        rep = memtap("report", proc.pid, "--json")
        check(rep.returncode == 0 and json.loads(rep.stdout)["records"] == 2 and
              json.loads(rep.stdout)["end"]["reason"] == "stopped",
              "report PID of the running process reads it: 2 records, stopped", rep.stdout, rep.stderr)
        memtap("detach", proc.pid)
        # Ctrl-C: an end record, the agent record attached detached, exit 0.
        rec = subprocess.Popen([MEMTAP, "record", str(proc.pid), "--interval", "0.2"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV)
        path = rec.stdout.readline().strip()
        time.sleep(0.7)
        rec.send_signal(signal.SIGINT)
        out, err = rec.communicate(timeout=30)
        check(rec.returncode == 0 and "detaching from %d" % proc.pid in err and "memtap report %s" % path in err,
              "record stops on SIGINT, detaches and says where the journal is", rec.returncode, err)
        check("attached:         no" in memtap("status", proc.pid).stdout, "no agent left after SIGINT")
        rep = json.loads(memtap("report", path, "--json").stdout)
        check(rep["end"] == {"unix_ms": rep["end"]["unix_ms"], "reason": "stopped", "detail": "SIGINT"} and
              rep["records"] >= 3, "the journal ends with 'stopped (SIGINT)'", rep["end"], rep["records"])
        # kill -9 of memtap itself: the records written are readable, with no end record.
        killed = os.path.join(STORE, "killed.mtj")
        rec = subprocess.Popen([MEMTAP, "record", str(proc.pid), "--interval", "0.1", "-o", killed],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        rec.stdout.readline()
        time.sleep(0.6)
        rec.kill()
        rec.communicate(timeout=30)
        memtap("detach", proc.pid)  # what the killed record could not do
        r = memtap("report", killed, "--json")
        rep = json.loads(r.stdout) if r.returncode == 0 else {}
        check(r.returncode == 0 and rep["end"] is None and rep["records"] >= 3,
              "a journal whose memtap was killed -9 reads back (%s records)" % rep.get("records"), r.stderr)
        # The size limit: the record that would cross it is not written; an end record says why.
        limited = os.path.join(STORE, "limited.mtj")
        r = memtap("record", proc.pid, "--interval", "0.05", "--max-bytes", "8K", "-o", limited)
        rep = json.loads(memtap("report", limited, "--json").stdout) if r.returncode == 0 else {}
        check(r.returncode == 0 and os.path.getsize(limited) <= 8192 and rep["records"] >= 1 and
              "size limit" in rep["end"]["detail"], "record --max-bytes 8K stops at the limit, saying so",
              r.returncode, r.stderr, rep.get("end"))
        stores = [d for d in os.listdir(os.path.join(STORE, "memtap")) if d.startswith("%d-" % gone_pid)]
        check(len(stores) == 1, "a later snapshot of another process keeps the gone process's store", stores)
        r = memtap("report", gone_pid)
        check(r.returncode == 0 and "killed by signal 9" in r.stdout, "report of the gone PID still works",
              r.stderr)
    finally:
        memtap("detach", proc.pid)
        proc.kill()
        proc.wait()


try:
    record_pid, record_journal = case_record()
    watch_pid = case_watch()
    case_store(watch_pid, record_journal)
finally:
    shutil.rmtree(STORE, ignore_errors=True)

if FAILURES:
    print("\n".join(["FAILED:"] + FAILURES))
    sys.exit(1)
print("journals kept the evidence of killed targets")
