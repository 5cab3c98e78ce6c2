"""Issue 10: the cost of tracing numpy's arrays (PyTraceMalloc_Track, always
on) and of --native, on a numpy-heavy loop, side by side with tracemalloc.

Configurations (each a fresh process of bench/targets/workload.py numpy N,
Debian's python3 with python3-numpy; attached before the work starts):
  baseline         nothing attached
  sampled          memtap attach: PyMem and PyTraceMalloc_Track callers
  sampled-native   memtap attach --native: also native modules' malloc/mmap
  exact            memtap attach --exact --frames 1
  exact-native     memtap attach --exact --frames 1 --native
  tracemalloc      PYTHONTRACEMALLOC=1 (sees numpy through the same C-API)

Rounds are interleaved; medians; ratios vs baseline.

Usage: /usr/bin/python3 bench/numpy_native.py [--quick] [--reps N] [--markdown FILE]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Child, log, median  # noqa: E402

PYTHON = "/usr/bin/python3"
N = 50000
CONFIGS = [
    ("baseline", None, {}),
    ("sampled", [], {}),
    ("sampled-native", ["--native"], {}),
    ("exact", ["--exact", "--frames", "1"], {}),
    ("exact-native", ["--exact", "--frames", "1", "--native"], {}),
    ("tracemalloc", None, {"PYTHONTRACEMALLOC": "1"}),
]


def run_once(n, attach_args, extra_env):
    env = dict(os.environ)
    env.update(extra_env)
    with Child([PYTHON, os.path.join(common.TARGETS, "workload.py"), "numpy", str(n)], env=env) as t:
        t.read_line(60, "ready")
        if attach_args is not None:
            common.memtap_or_throw(["attach", str(t.pid)] + attach_args)
        t.send("go")
        elapsed = float(t.read_line(600, "elapsed ").split()[1])
        t.read_line(10, "done")
        note = ""
        if attach_args is not None:
            status = json.loads(common.memtap_or_throw(["status", "--json", str(t.pid)]).stdout)
            if "_multiarray_umath" not in str(status.get("tracked_call_modules")):
                raise RuntimeError("numpy's PyTraceMalloc_Track calls not rewired: %s" % status)
            note = "seen %s" % status.get("allocations_seen")
        t.send("exit")
        return elapsed, note


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, a tenth of the work")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    n = N
    if args.quick:
        args.reps, n = 1, N // 10
    if common.run_bounded([PYTHON, "-c", "import numpy"], 60).returncode != 0:
        common.emit(["numpy_native: skipped, numpy does not import in %s" % PYTHON], args.markdown)
        return
    times = {c[0]: [] for c in CONFIGS}
    notes = {}
    for rep in range(args.reps):
        for name, attach_args, env in CONFIGS:
            elapsed, note = run_once(n, attach_args, env)
            times[name].append(elapsed)
            notes[name] = note
            log("numpy %s round %d: %.3f s %s" % (name, rep + 1, elapsed, note))
    base = median(times["baseline"])
    out = ["#### numpy loop (N=%d), %s (Python %s), %d round%s\n" %
           (n, PYTHON, common.interpreter_version(PYTHON), args.reps, "" if args.reps == 1 else "s")]
    out.append(common.table(["configuration", "median s", "vs baseline"],
                            [[c, "%.3f" % median(times[c]), "%.2fx" % (median(times[c]) / base)]
                             for c, _, _ in CONFIGS]))
    out.append("\nRaw elapsed seconds (per round):\n\n```")
    for c, _, _ in CONFIGS:
        out.append("%-15s %s  %s" % (c, " ".join("%.3f" % x for x in times[c]), notes.get(c, "")))
    out.append("```")
    common.emit(out, args.markdown)


if __name__ == "__main__":
    main()
