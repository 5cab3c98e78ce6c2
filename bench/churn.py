"""Allocation-heavy workloads under each configuration, side by side.

Configurations (each a fresh process of bench/targets/workload.py):
  baseline      nothing attached
  sampled       memtap attach (default sampled mode), before the work starts
  exact-f1      memtap attach --exact --frames 1 (tracemalloc's default depth)
  exact-f16     memtap attach --exact (default --frames 16)
  tracemalloc   PYTHONTRACEMALLOC=1 (started at launch, 1 frame)

The workload reports its own elapsed time (perf_counter around the work
only, after a "ready" handshake, so attaching is not timed). Repetitions are
interleaved (round 1 runs every configuration, then round 2, ...) so that
load drift hits all configurations alike; the table gives medians and the
ratio of medians vs baseline. For memtap configurations, `memtap status
--json` is read after the work to check the hooks saw the allocations.

Usage: /usr/bin/python3 bench/churn.py [--quick] [--reps N] [--interpreters ...] [--markdown FILE]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Child, log, median  # noqa: E402

WORKLOADS = {"dict": 200000, "list": 200000, "str": 100000, "flask": 1000}
CONFIGS = common.CONFIGS


def has_flask(python):
    return common.run_bounded([python, "-c", "import flask"], 30).returncode == 0


def run_once(python, workload, n, attach_args, extra_env):
    env = dict(os.environ)
    env.update(extra_env)
    with Child([python, os.path.join(common.TARGETS, "workload.py"), workload, str(n)], env=env) as t:
        t.read_line(60, "ready")
        if attach_args is not None:
            common.memtap_or_throw(["attach", str(t.pid)] + attach_args)
        t.send("go")
        elapsed = float(t.read_line(300, "elapsed ").split()[1])
        t.read_line(10, "done")
        seen = None
        if attach_args is not None:
            status = json.loads(common.memtap_or_throw(["status", "--json", str(t.pid)]).stdout)
            if not status.get("attached") or status.get("hooks") != "installed":
                raise RuntimeError("memtap not attached/installed after the work: %s" % status)
            seen = status.get("allocations_seen")
        t.send("exit")
        return elapsed, seen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, 3.11 only, quarter-size workloads")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--interpreters", default="3.11,3.13")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    scale = 1.0
    if args.quick:
        args.reps, args.interpreters, scale = 1, "3.11", 0.25
    out = []
    for name, python in common.available_interpreters(args.interpreters.split(",")):
        version = common.interpreter_version(python)
        workloads = [w for w in WORKLOADS if w != "flask" or has_flask(python)]
        skipped = [w for w in WORKLOADS if w not in workloads]
        times = {(w, c[0]): [] for w in workloads for c in CONFIGS}
        seen = {}
        for rep in range(args.reps):
            for w in workloads:
                n = max(1, int(WORKLOADS[w] * scale))
                for cname, attach_args, env in CONFIGS:
                    elapsed, s = run_once(python, w, n, attach_args, env)
                    times[(w, cname)].append(elapsed)
                    if s is not None:
                        seen[(w, cname)] = s
                    log("churn %s %s %s round %d: %.3f s" % (name, w, cname, rep + 1, elapsed))
        out.append("#### %s: %s (Python %s), %d round%s\n" % (name, python, version, args.reps,
                                                               "" if args.reps == 1 else "s"))
        rows = []
        for w in workloads:
            base = median(times[(w, "baseline")])
            row = ["%s (N=%d)" % (w, max(1, int(WORKLOADS[w] * scale))), "%.3f" % base]
            for cname, _, _ in CONFIGS[1:]:
                row.append("%.2fx" % (median(times[(w, cname)]) / base))
            tm = median(times[(w, "tracemalloc")]) / base - 1
            ex = median(times[(w, "exact-f1")]) / base - 1
            row.append("%.2f" % (ex / tm) if tm > 0 else "-")
            rows.append(row)
        out.append(common.table(["workload", "baseline s (median)", "sampled", "exact --frames 1",
                                 "exact --frames 16", "tracemalloc", "exact-f1 overhead / tracemalloc's"],
                                rows))
        if skipped:
            out.append("\nNot run on this interpreter: %s (flask is not importable)." % ", ".join(skipped))
        out.append("\nRaw elapsed seconds (per round):\n")
        out.append("```")
        for w in workloads:
            for cname, _, _ in CONFIGS:
                extra = ""
                if (w, cname) in seen:
                    extra = "  (allocations_seen %s)" % seen[(w, cname)]
                out.append("%-6s %-12s %s%s" % (w, cname, " ".join("%.3f" % x for x in times[(w, cname)]),
                                                 extra))
        out.append("```")
        # goals
        notes = []
        for w in workloads:
            base = median(times[(w, "baseline")])
            s = median(times[(w, "sampled")]) / base
            tm = median(times[(w, "tracemalloc")]) / base
            ex = median(times[(w, "exact-f1")]) / base
            limit = 1 + (tm - 1) / 2
            notes.append("%s: sampled %.2fx %s 1.05x; exact-f1 %.2fx %s %.2fx (half of tracemalloc's %.2fx)"
                         % (w, s, "<=" if s <= 1.05 else "MISSES", ex, "<=" if ex <= limit else "MISSES",
                            limit, tm))
        out.append("\nGoals: " + "; ".join(notes) + ".\n")
    common.emit(out, args.markdown)


if __name__ == "__main__":
    main()
