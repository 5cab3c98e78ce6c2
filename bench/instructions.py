"""Issue 13, the figure this machine can measure reproducibly: instructions.

On this 2-core VM the same workload's CPU time moves by up to 2x from one
run to the next with nothing else running (bench/README.md), which buries
a 3% overhead. Instruction counts do not move: valgrind's callgrind counts
every instruction the process executes (memtap's hooks and agent thread
included), the same on every run up to sampling's random draws. This runs
macro.py's workloads (bench/targets/macro_ir.py) once per setup under
callgrind, one process per setup and interpreter, and compares each
workload's instructions with the unhooked process's.

Instructions are not time: a hook's few instructions cost more in cache
misses or branch mispredictions than their count says, and less when they
run alongside the allocator's own. bench/macro.py measures the time;
this is the check that does not depend on the machine's mood.

Usage: /usr/bin/python3 bench/instructions.py [--interpreters 3.11,3.13,debian-3.11] [--reps N]
                                             [--setups unhooked,passthrough,...] [--jobs J] [--markdown FILE]

The passthrough setup is hooks that only forward (targets/passthrough_hooks.c,
built here with cc): what any PEP 445 hook costs before doing anything.
"""
import argparse
import concurrent.futures
import glob
import math
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import log  # noqa: E402

TARGET = os.path.join(common.TARGETS, "macro_ir.py")
SETUPS = ["unhooked", "passthrough", "sampled", "exact-f1", "exact", "tracemalloc"]
def agent_library():
    # The agent of the memtap binary's build tree (src/cli/memtap ->
    # src/agent/libmemtap-agent.so).
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(common.MEMTAP))))
    path = os.path.join(build, "src", "agent", "libmemtap-agent.so")
    if not os.path.exists(path):
        raise SystemExit("instructions.py: no agent library at %s (build memtap first, or set MEMTAP)" % path)
    return path


def measure(python, setup, reps, agent):
    """Instructions per workload (name -> count) for one setup."""
    out_dir = tempfile.mkdtemp(prefix="memtap-ir-")
    try:
        argv = ["valgrind", "--tool=callgrind", "--dump-before=getppid",
                "--callgrind-out-file=%s/cg.%%p" % out_dir, python, TARGET, setup, agent, str(reps)]
        env = dict(os.environ, PYTHONHASHSEED="0")
        r = common.run_bounded(argv, 3600, env=env)
        if r.returncode != 0:
            raise RuntimeError("%s %s under callgrind: rc %d: %s" % (python, setup, r.returncode, r.stderr[-400:]))
        names = next(line for line in r.stdout.splitlines() if line.startswith("workloads ")).split()[1:]
        parts = {}
        for path in glob.glob(os.path.join(out_dir, "cg.*.*")):
            with open(path) as f:
                total = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
            parts[int(path.rsplit(".", 1)[1])] = total
        # Part 2i+1 ends with workload i's warm-up, part 2i+2 with its runs.
        return {name: parts[2 * i + 2] for i, name in enumerate(names)}
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interpreters", default="3.11,3.13,debian-3.11")
    parser.add_argument("--setups", default=",".join(SETUPS),
                        help="which of %s (unhooked is always run)" % ",".join(SETUPS))
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--markdown")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("instructions.py: valgrind is not installed (apt-get install valgrind)")
    wanted = set(args.setups.split(",")) | {"unhooked"}
    unknown = wanted - set(SETUPS)
    if unknown:
        raise SystemExit("instructions.py: unknown setup %s (known: %s)" % (",".join(sorted(unknown)), ",".join(SETUPS)))
    setups = [s for s in SETUPS if s in wanted]
    agent = agent_library()
    pythons = common.available_interpreters(args.interpreters.split(","))
    build_dir = tempfile.mkdtemp(prefix="memtap-passthrough-")
    try:
        passthrough = common.build_passthrough(build_dir)
        jobs = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for label, python in pythons:
                for setup in setups:
                    library = passthrough if setup == "passthrough" else agent
                    jobs[(label, setup)] = pool.submit(measure, python, setup, args.reps, library)
            results = {}
            for key, job in jobs.items():
                results[key] = job.result()
                log("instructions: %s %s done" % key)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    out = ["## instructions: memtap's hooks counted by callgrind, per workload (%d run each)" % args.reps, ""]
    summary = []
    compared = setups[1:]
    for label, python in pythons:
        version = common.interpreter_version(python)
        base = results[(label, "unhooked")]
        rel = {s: {n: results[(label, s)][n] / base[n] for n in base} for s in compared}
        rows = [[n, "%.1f" % (base[n] / 1e6)] + ["%.4fx" % rel[s][n] for s in compared] for n in base]
        rows.append(["**geomean**", ""] + ["**%.4fx**" % geomean(rel[s].values()) for s in compared])
        rows.append(["**worst**", ""] + ["%.4fx (%s)" % max((v, k) for k, v in rel[s].items()) for s in compared])
        out += ["### CPython %s (%s)" % (version, label), "",
                common.table(["workload", "unhooked M instr"] + compared, rows), ""]
        row = [version]
        for s in compared:
            row.append("%.4fx" % geomean(rel[s].values()))
            if s in ("passthrough", "sampled"):
                row.append("%.4fx (%s)" % max((v, k) for k, v in rel[s].items()))
        if "exact-f1" in rel and "tracemalloc" in rel:
            f1 = geomean(rel["exact-f1"].values()) - 1
            tm = geomean(rel["tracemalloc"].values()) - 1
            row.append("%.2f" % (f1 / tm if tm > 0 else float("nan")))
        summary.append(row)
    header = ["python"]
    for s in compared:
        header.append("%s geomean" % s)
        if s in ("passthrough", "sampled"):
            header.append("%s worst" % s)
    if "exact-f1" in compared and "tracemalloc" in compared:
        header.append("exact-f1 / tracemalloc overhead")
    out += ["### Summary (instructions; exact is 16 frames, tracemalloc 1)", "", common.table(header, summary), "",
            "Agent: %s. Machine: %s" % (agent, common.machine_note()), ""]
    common.emit(out, args.markdown)


if __name__ == "__main__":
    main()
