"""Issue 10 item 1: numpy's array data, reported through PyTraceMalloc_Track,
traced on a live process.

On one target (Debian's python3 with python3-numpy):
  1. attach before numpy is imported, then import it: the module loaded
     after the attach is covered (its GOT slot points into memtap's agent);
  2. a snapshot pair around K arrays of N float64 names the allocating line
     with the array bytes, within 1% in exact mode, marked [numpy];
     dropping them shows the bytes go (Untrack is seen);
  3. detach: the slot no longer points into the agent (the PLT stub or the
     real function), read from inside the target;
  4. attach again with numpy loaded and its slot resolved: after detach the
     slot holds exactly what it held before the attach; status names the
     module; sampled mode sees the arrays too (an estimate);
  5. with --native the arrays count once, as [numpy], not again as numpy's
     own malloc.

Usage: numpy_test.py MEMTAP PYTHON TARGETS_DIR. Exit 77 if ptrace is denied
or numpy does not import in PYTHON.
"""
import json
import os
import subprocess
import sys

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
TARGET = os.path.join(os.path.abspath(TARGETS), "numpy_target.py")
N = 250000  # float64: 2,000,000 bytes of data per array
K = 20
ARRAY_BYTES = N * 8 * K
LINE = 54  # numpy_target.py: held.append(numpy.zeros((n,)))
FAILURES = []


def check(condition, message, *details):
    if not condition:
        FAILURES.append(message + ("" if not details else ": " + " | ".join(str(d) for d in details)))
    return condition


def memtap(*args):
    return subprocess.run([MEMTAP] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


class Target:
    def __init__(self):
        self.proc = subprocess.Popen([PYTHON, TARGET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     universal_newlines=True)
        self.pid = int(self.proc.stdout.readline().split()[1])

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def got(self):
        _, slot, value, mapping, real = self.ask("got").split(" ")
        return int(slot), int(value), mapping, int(real)


def numpy_rows(pid, old, new):
    r = memtap("diff", pid, old, new, "--json", "--top", 100000)
    check(r.returncode == 0, "diff failed", r.stderr)
    stats = json.loads(r.stdout)["stats"] if r.returncode == 0 else []
    return [s for s in stats if s.get("domain_name") == "numpy" and s["file"] == TARGET and s["line"] == LINE]


def main():
    if subprocess.run([PYTHON, "-c", "import numpy"], stderr=subprocess.DEVNULL).returncode != 0:
        print("SKIP: numpy does not import in " + PYTHON)
        return 77
    target = Target()
    pid = target.pid
    try:
        r = memtap("attach", pid, "--exact")
        if r.returncode == 5:
            print("SKIP: ptrace denied: " + r.stderr.strip())
            return 77
        if not check(r.returncode == 0, "attach failed", r.stderr):
            return 1
        # 1. numpy imported after the attach.
        check(target.ask("import").startswith("imported"), "numpy did not import")
        memtap("status", pid)  # a status rewires what was loaded since the last tick
        slot, during, mapping, real = target.got()
        check("memtap-agent" in mapping, "the late module's GOT slot does not point into the agent", mapping)
        # 2. The arrays, by line, within 1%.
        memtap("snapshot", pid, "s1")
        check(target.ask("alloc %d %d" % (N, K)) == "allocated", "alloc")
        memtap("snapshot", pid, "s2")
        rows = numpy_rows(pid, "s1", "s2")
        if check(len(rows) == 1, "no [numpy] row for the allocating line", rows):
            grown = rows[0]["size_diff"]
            check(abs(grown - ARRAY_BYTES) <= ARRAY_BYTES / 100, "array bytes off by more than 1%",
                  grown, ARRAY_BYTES)
            check(rows[0]["count_diff"] == K, "array count", rows[0]["count_diff"], K)
            print("exact: %d bytes traced for %d bytes of array data (%+.3f%%)" %
                  (grown, ARRAY_BYTES, 100.0 * (grown - ARRAY_BYTES) / ARRAY_BYTES))
        text = memtap("diff", pid, "s1", "s2", "--top", "3").stdout
        check("%s:%d [numpy]: size=" % (TARGET, LINE) in text, "text diff does not mark the row [numpy]", text)
        check(target.ask("free") == "freed", "free")
        memtap("snapshot", pid, "s3")
        rows = numpy_rows(pid, "s2", "s3")
        check(len(rows) == 1 and rows[0]["size_diff"] <= -ARRAY_BYTES * 0.99 and rows[0]["size"] == 0,
              "frees not seen", rows)
        status = memtap("status", pid, "--json")
        agent = json.loads(status.stdout) if status.returncode == 0 else {}
        check("_multiarray_umath" in agent.get("tracked_call_modules", ""), "status does not name the module",
              agent.get("tracked_call_modules"))
        text_status = memtap("status", pid).stdout
        check("_multiarray_umath" in text_status, "status text does not name the module", text_status)
        # 3. Detach puts the slot back.
        check(memtap("detach", pid).returncode == 0, "detach failed")
        _, after, mapping, _ = target.got()
        check("memtap-agent" not in mapping, "after detach the slot still points into the agent", mapping)
        check(after != during, "the slot did not change on detach")
        # 4. numpy loaded, its slot resolved by use: restored to the same value.
        check(target.ask("alloc 10 1") == "allocated", "alloc")
        _, before, _, _ = target.got()
        r = memtap("attach", pid, "--sample-bytes", "64K")
        check(r.returncode == 0, "second attach failed", r.stderr)
        _, during2, mapping, _ = target.got()
        check("memtap-agent" in mapping, "a module loaded before the attach is not rewired", mapping)
        memtap("snapshot", pid, "t1")
        target.ask("alloc %d %d" % (N, K))
        memtap("snapshot", pid, "t2")
        rows = numpy_rows(pid, "t1", "t2")
        if check(len(rows) == 1, "sampled mode: no [numpy] row", rows):
            estimate = rows[0]["size_diff"]
            check(abs(estimate - ARRAY_BYTES) <= ARRAY_BYTES * 0.25, "sampled estimate far off", estimate)
            print("sampled (64 KiB): %d bytes estimated for %d (%+.1f%%)" %
                  (estimate, ARRAY_BYTES, 100.0 * (estimate - ARRAY_BYTES) / ARRAY_BYTES))
        check(memtap("detach", pid).returncode == 0, "second detach failed")
        _, after2, _, _ = target.got()
        check(after2 == before, "the slot is not what it was before the attach", hex(after2), hex(before))
        print("GOT slot %#x: %#x during attach, %#x after detach (real PyTraceMalloc_Track %#x)" %
              (slot, during2, after2, real))
        # 5. With --native the arrays' malloc by numpy is not counted again.
        target.ask("free")
        r = memtap("attach", pid, "--exact", "--native")
        check(r.returncode == 0, "attach --native failed", r.stderr)
        memtap("snapshot", pid, "u1")
        target.ask("alloc %d %d" % (N, K))
        memtap("snapshot", pid, "u2")
        rows = numpy_rows(pid, "u1", "u2")
        check(len(rows) == 1 and abs(rows[0]["size_diff"] - ARRAY_BYTES) <= ARRAY_BYTES / 100,
              "--native: the [numpy] row is not the array bytes", rows)
        r = memtap("diff", pid, "u1", "u2", "--json", "--top", 100000)
        native = sum(s["size_diff"] for s in json.loads(r.stdout)["stats"]
                     if s.get("domain_name", "").startswith("native ") and s["line"] == LINE)
        check(native < ARRAY_BYTES / 100, "--native counts the arrays a second time", native)
        print("--native exact: [numpy] %d bytes, native at the same line %d bytes" %
              (rows[0]["size_diff"] if rows else -1, native))
        check(memtap("detach", pid).returncode == 0, "third detach failed")
        check(target.proc.poll() is None, "the target died")
    finally:
        target.proc.kill()
        target.proc.wait()
    for failure in FAILURES:
        print("FAIL: " + failure)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
