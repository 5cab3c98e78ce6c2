"""Issue 13 item 1: the cost of memtap on a dozen pyperformance-like
workloads (bench/targets/macro_target.py), timed inside one target process.

Per round, in one process: the workloads unhooked, under hooks that only
forward (targets/passthrough_hooks.c, built here with cc: the floor under
any PEP 445 hook), attached in sampled mode,
attached with --exact --frames 1 (tracemalloc's default depth), attached
with --exact (memtap's default of 16 frames), and after that detach; and
the same workloads in a second process started with PYTHONTRACEMALLOC=1
(1 frame). The in-process phases run in the opposite order every other
round, so a drift of the machine over a round falls on every phase alike.
Round 1's unhooked runs are before any attach; later rounds' follow a
detach (the agent stays loaded, dormant, hooks removed), which is what
"after detach" measures too. Each workload's repetitions are calibrated
once, before attaching, to about --target-ms; each phase's figure is the
best of --best timings of that many repetitions. Times are the target's CPU
time (process_time: every thread, memtap's agent thread included), so time
spent waiting for a core on a shared machine is not counted; --clock wall
uses the wall clock instead. Ratios are medians of the rounds against the
unhooked median; geomean and worst over the workloads.

Usage: /usr/bin/python3 bench/macro.py [--rounds N] [--target-ms MS] [--best K] [--clock cpu|wall]
                                      [--interpreters 3.11,3.13,debian-3.11] [--markdown FILE]
"""
import argparse
import math
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Child, log, median  # noqa: E402

TARGET = os.path.join(common.TARGETS, "macro_target.py")
IN_PROCESS = ["unhooked", "passthrough", "sampled", "exact-f1", "exact", "after-detach"]
PHASES = IN_PROCESS + ["tracemalloc"]
ATTACH = {"sampled": [], "exact-f1": ["--exact", "--frames", "1"], "exact": ["--exact"]}


def run_all(child, names, reps, best, column):
    times = {}
    for name in names:
        child.send("run %s %d %d" % (name, reps[name], best))
        times[name] = float(child.read_line(300, "time ").split()[column])
    return times


def calibrate(child, names, target_s, column):
    reps = {}
    for name in names:
        child.send("run %s 1" % name)
        child.read_line(120, "time ")  # warm-up: imports, caches
        child.send("run %s 1" % name)
        t = float(child.read_line(120, "time ").split()[column])
        reps[name] = max(1, int(round(target_s / max(t, 1e-6))))
    return reps


def bench_interpreter(label, python, rounds, target_s, best, column, passthrough):
    samples = {p: {} for p in PHASES}
    with Child([python, TARGET]) as target, \
            Child([python, TARGET], env=dict(os.environ, PYTHONTRACEMALLOC="1")) as traced:
        target.read_line(60, "ready")
        traced.read_line(60, "ready")
        target.send("list")
        names = target.read_line(30, "workloads").split()[1:]
        reps = calibrate(target, names, target_s, column)
        calibrate(traced, names, target_s, column)  # the same warm-up
        for r in range(rounds):
            log("%s: round %d/%d" % (label, r + 1, rounds))
            order = IN_PROCESS if r % 2 == 0 else IN_PROCESS[::-1]
            for phase in order:
                attach = ATTACH.get(phase)
                if attach is not None:
                    common.memtap_or_throw(["attach", str(target.pid)] + attach)
                if phase == "passthrough":
                    target.send("passthrough on %s" % passthrough)
                    target.read_line(30, "passthrough on")
                for name, t in run_all(target, names, reps, best, column).items():
                    samples[phase].setdefault(name, []).append(t)
                if phase == "passthrough":
                    target.send("passthrough off")
                    target.read_line(30, "passthrough off")
                if attach is not None:
                    common.memtap_or_throw(["detach", str(target.pid)])
            for name, t in run_all(traced, names, reps, best, column).items():
                samples["tracemalloc"].setdefault(name, []).append(t)
    return names, reps, samples


def ratios(names, samples):
    base = {n: median(samples["unhooked"][n]) for n in names}
    out = {}
    for phase in PHASES[1:]:
        out[phase] = {n: median(samples[phase][n]) / base[n] for n in names}
    return base, out


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--target-ms", type=float, default=80)
    parser.add_argument("--best", type=int, default=3)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--interpreters", default="3.11,3.13,debian-3.11")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 3.11 only")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.interpreters = 3, "3.11"
    out = ["## macro: a dozen workloads, memtap sampled / exact vs unhooked, tracemalloc in its own process", ""]
    summary = []
    build_dir = tempfile.mkdtemp(prefix="memtap-passthrough-")
    try:
        passthrough = common.build_passthrough(build_dir)
        measured = [(label, python, bench_interpreter(label, python, args.rounds, args.target_ms / 1000, args.best,
                                                      3 if args.clock == "cpu" else 2, passthrough))
                    for label, python in common.available_interpreters(args.interpreters.split(","))]
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    for label, python, (names, reps, samples) in measured:
        version = common.interpreter_version(python)
        base, rel = ratios(names, samples)
        rows = []
        for n in names:
            rows.append([n, reps[n], "%.1f" % (base[n] * 1000)] +
                        ["%.3fx" % rel[p][n] for p in PHASES[1:]])
        rows.append(["**geomean**", "", ""] + ["**%.3fx**" % geomean(rel[p].values()) for p in PHASES[1:]])
        rows.append(["**worst**", "", ""] +
                    ["%.3fx (%s)" % max((v, k) for k, v in rel[p].items()) for p in PHASES[1:]])
        out += ["### CPython %s (%s), medians of %d rounds, best of %d, %s time"
                % (version, label, args.rounds, args.best, args.clock), "",
                common.table(["workload", "reps", "unhooked ms"] + PHASES[1:], rows), ""]
        tm_overhead = geomean(rel["tracemalloc"].values()) - 1
        f1_overhead = geomean(rel["exact-f1"].values()) - 1
        summary.append([version, "%.3fx" % geomean(rel["passthrough"].values()),
                        "%.3fx" % geomean(rel["sampled"].values()),
                        "%.3fx (%s)" % max((v, k) for k, v in rel["sampled"].items()),
                        "%.3fx" % geomean(rel["exact-f1"].values()), "%.3fx" % geomean(rel["exact"].values()),
                        "%.3fx" % geomean(rel["tracemalloc"].values()),
                        "%.2f" % (f1_overhead / tm_overhead if tm_overhead > 0 else float("nan")),
                        "%.3fx" % geomean(rel["after-detach"].values())])
    out += ["### Summary", "",
            common.table(["python", "passthrough geomean", "sampled geomean", "sampled worst", "exact-f1 geomean",
                          "exact (16) geomean",
                          "tracemalloc (1) geomean", "exact-f1 / tracemalloc overhead", "after detach"], summary),
            "", "Machine: " + common.machine_note(), ""]
    common.emit(out, args.markdown)


if __name__ == "__main__":
    main()
