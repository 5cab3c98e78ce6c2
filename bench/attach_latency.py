"""Attach latency and thread-stop time: memtap attach vs the gdb route.

For each interpreter, one target (bench/targets/attach_target.py: main thread
asleep, one thread allocating, a Python ticker and a GIL-free C ticker) is
attached and detached CYCLES times by memtap, then GDB_CYCLES times by gdb
(PyGILState_Ensure + PyRun_SimpleString("...tracemalloc.start()")), in the
same run. Per cycle we record:

  wall        command start to command exit (memtap exits once hooks are live)
  reported    memtap's own "hooks live in X ms (longest thread stop Y ms)"
  C gap       largest gap between 1 ms ticks of the C ticker during the
              command: how long a thread was really held stopped (+~1 ms)
  Py gap      same for the Python ticker; also includes waiting for the GIL
  peak RSS    the command's own peak RSS (wait4 rusage)

An "idle" row measures the same gaps over windows with no command running,
so the background (GIL sharing, load on 2 cores) can be told apart.

Usage: /usr/bin/python3 bench/attach_latency.py [--quick] [--cycles N] [--gdb-cycles N]
        [--interpreters 3.11,3.13,debian-3.11] [--markdown FILE]
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Child, log, median, p90  # noqa: E402

GDB_ARGS = ["-batch", "-ex", "call (int)PyGILState_Ensure()",
            "-ex", 'call (int)PyRun_SimpleString("import tracemalloc; tracemalloc.start()")',
            "-ex", "call (void)PyGILState_Release($1)"]
ATTACH_RE = re.compile(r"hooks live in ([0-9.]+) ms \(longest thread stop ([0-9.]+) ms\)")


def take_gaps(target):
    os.kill(target.pid, signal.SIGUSR1)
    parts = target.read_line(10, "gaps ").split()
    return int(parts[1]) / 1e6, int(parts[2]) / 1e6  # ms


def settle():
    time.sleep(0.03)  # let both tickers complete the tick that spans the command


def one_cycle(target, command, after):
    """Runs command (a list) against target; returns (Result, C gap, Py gap)."""
    take_gaps(target)  # reset
    r = common.run_bounded(command, 60)
    settle()
    c_gap, py_gap = take_gaps(target)
    after(r)
    return r, c_gap, py_gap


def idle_gaps(target, cycles):
    c_gaps, py_gaps = [], []
    for _ in range(cycles):
        take_gaps(target)
        time.sleep(0.1)
        c, p = take_gaps(target)
        c_gaps.append(c)
        py_gaps.append(p)
    return dict(c=c_gaps, py=py_gaps)


def start_target(python, ticker_so):
    target = Child([python, os.path.join(common.TARGETS, "attach_target.py"), ticker_so])
    try:
        target.read_line(30, "ready")
        time.sleep(0.5)  # past startup
        return target
    except BaseException:
        target.close()
        raise


def check_alive(target):
    if target.proc.poll() is not None:
        raise RuntimeError("target died during the benchmark: " + target.stderr_tail())


def memtap_cycles(name, target, cycles, binary=None):
    binary = binary or common.MEMTAP
    m = dict(wall=[], lat=[], stop=[], c=[], py=[], rss=[], dwall=[], dc=[], dpy=[])

    def check(what):
        def after(r):
            if r.returncode != 0:
                raise RuntimeError("memtap %s failed (rc %d): %s" % (what, r.returncode, r.stderr.strip()))
        return after

    for i in range(cycles):
        r, c, p = one_cycle(target, [binary, "attach", str(target.pid)], check("attach"))
        found = ATTACH_RE.search(r.stdout)
        if not found:
            raise RuntimeError("unexpected attach output: %r" % r.stdout)
        m["wall"].append(r.wall * 1000)
        m["lat"].append(float(found.group(1)))
        m["stop"].append(float(found.group(2)))
        m["c"].append(c)
        m["py"].append(p)
        m["rss"].append(r.maxrss_kb)
        d, dc, dp = one_cycle(target, [binary, "detach", str(target.pid)], check("detach"))
        m["dwall"].append(d.wall * 1000)
        m["dc"].append(dc)
        m["dpy"].append(dp)
        log("  %s memtap cycle %d: wall %.1f ms, reported %.1f ms / stop %.2f ms, C gap %.1f ms, "
            "Py gap %.1f ms" % (name, i + 1, r.wall * 1000, m["lat"][-1], m["stop"][-1], c, p))
    return m


def gdb_cycles(name, target, cycles):
    g = dict(wall=[], c=[], py=[], rss=[])

    def stop_tracemalloc(r):
        if r.returncode != 0 or "$2 = 0" not in r.stdout:
            raise RuntimeError("gdb route failed (rc %d): %s %s" % (r.returncode, r.stdout, r.stderr))
        os.kill(target.pid, signal.SIGUSR2)
        target.read_line(10, "stopped")

    for i in range(cycles):
        r, c, p = one_cycle(target, ["gdb", "-nx", "-p", str(target.pid)] + GDB_ARGS, stop_tracemalloc)
        g["wall"].append(r.wall * 1000)
        g["c"].append(c)
        g["py"].append(p)
        g["rss"].append(r.maxrss_kb)
        log("  %s gdb cycle %d: wall %.0f ms, C gap %.0f ms" % (name, i + 1, r.wall * 1000, c))
    return g


def bench_interpreter(name, python, ticker_so, cycles, n_gdb, baseline=None):
    """Separate targets for the two routes: gdb must never see a process
    memtap has been in (see README, "gdb after memtap"); and for a baseline
    memtap build, whose agent is another image."""
    rows = {}
    with start_target(python, ticker_so) as target:
        rows["idle"] = idle_gaps(target, cycles)
        rows["memtap"] = memtap_cycles(name, target, cycles)
        check_alive(target)
    if baseline:
        with start_target(python, ticker_so) as target:
            rows["baseline"] = memtap_cycles(name + " baseline", target, cycles, baseline)
            check_alive(target)
    rows["gdb"] = dict(wall=[], c=[], py=[], rss=[])
    if n_gdb > 0:
        with start_target(python, ticker_so) as target:
            rows["gdb"] = gdb_cycles(name, target, n_gdb)
            check_alive(target)
    return rows


def fmt(xs, digits=1):
    if not xs:
        return "-"
    return "%.*f / %.*f" % (digits, median(xs), digits, p90(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 memtap cycles, 2 gdb cycles, 3.11 only")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--gdb-cycles", type=int, default=20)
    ap.add_argument("--interpreters", default="3.11,3.13,debian-3.11")
    ap.add_argument("--markdown", help="append the Markdown tables to this file")
    ap.add_argument("--baseline-memtap", help="another memtap binary (e.g. an older build) measured alongside")
    args = ap.parse_args()
    if args.quick:
        args.cycles, args.gdb_cycles, args.interpreters = 5, 2, "3.11"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        ticker = common.build_gap_ticker(tmp)
        for name, python in common.available_interpreters(args.interpreters.split(",")):
            version = common.interpreter_version(python)
            log("attach_latency: %s (%s)" % (name, version))
            rows = bench_interpreter(name, python, ticker, args.cycles, args.gdb_cycles, args.baseline_memtap)
            m, g, idle = rows["memtap"], rows["gdb"], rows["idle"]
            out.append("#### %s: %s (Python %s)\n" % (name, python, version))
            out.append(common.table(
                ["route", "n", "wall ms (median / p90)", "reported latency ms", "reported longest stop ms",
                 "C-ticker gap ms", "Py-ticker gap ms", "command peak RSS MB"],
                [["idle, no command", len(idle["c"]), "-", "-", "-", fmt(idle["c"]), fmt(idle["py"]), "-"],
                 ["memtap attach", len(m["wall"]), fmt(m["wall"]), fmt(m["lat"]), fmt(m["stop"], 2),
                  fmt(m["c"]), fmt(m["py"]), "%.1f" % (max(m["rss"]) / 1024)],
                 ["memtap detach", len(m["dwall"]), fmt(m["dwall"]), "-", "-", fmt(m["dc"]), fmt(m["dpy"]),
                  "-"],
                 *([["baseline memtap attach", len(rows["baseline"]["wall"]), fmt(rows["baseline"]["wall"]),
                     fmt(rows["baseline"]["lat"]), fmt(rows["baseline"]["stop"], 2), fmt(rows["baseline"]["c"]),
                     fmt(rows["baseline"]["py"]), "%.1f" % (max(rows["baseline"]["rss"]) / 1024)]]
                   if "baseline" in rows else []),
                 ["gdb route (tracemalloc.start)", len(g["wall"]), fmt(g["wall"], 0), "-", "-", fmt(g["c"], 0),
                  fmt(g["py"], 0), "%.1f" % (max(g["rss"]) / 1024) if g["rss"] else "-"]]))
            goal_lat = median(m["wall"]) <= 50
            goal_stop = max(m["stop"]) <= 5 and p90(m["c"]) <= 5 + 1 + p90(idle["c"])
            gdb_ratio = ("gdb route median wall is %.0fx memtap's." % (median(g["wall"]) / median(m["wall"]))
                         if g["wall"] else "gdb route not run.")
            out.append("\nGoals: attach <= 50 ms median: %s (median wall %.1f ms). No thread stopped > 5 ms: "
                       "%s (reported max %.2f ms; C-ticker gap p90 %.1f ms vs idle p90 %.1f ms). %s\n"
                       % ("met" if goal_lat else "MISSED", median(m["wall"]), "met" if goal_stop else "MISSED",
                          max(m["stop"]), p90(m["c"]), p90(idle["c"]), gdb_ratio))
    common.emit(out, args.markdown)


if __name__ == "__main__":
    main()
