"""Hook overhead measured inside ONE target process, which removes the
process-to-process noise that churn.py's medians carry on a shared 2-core
machine: the same loop is timed (best of N runs) before attach, under
sampled mode, under --exact --frames 1, and again detached, in rounds.

--grow keeps what each run allocates (~70 MB, freed after the run), so the
traced total climbs to a new high through the run: the worst case for the
peak tracking (engine.cpp "Peak"), which copies the breakdown every 1/64 of
growth. Each attach starts a fresh peak; use --runs 1 so every timed run
climbs from a fresh peak (later runs would only reach the same height).

--threads T runs the loop in T threads at once (each does the whole loop;
the time is the wall time until all are done). With thread ids in the
traceback key (issue 8 item 5) each thread has its own tracebacks, so T
threads make T times the tracebacks of one: the case where thread ids cost
most.

--cpu times the loop with the target's CPU time (time.process_time: all its
threads, the agent's included) instead of the wall clock, so that on a
machine loaded by other work the time spent waiting for a core is not
counted; the ratios then compare CPU cost.

--baseline-memtap OLD measures another build side by side in the same run:
a second target process, attached only by OLD (an agent stays loaded,
dormant, after detach, and the next attach reuses it, so one process must
never see both builds), its rounds interleaved with this build's. Each
build's ratios are against its own process's baseline.

Usage: /usr/bin/python3 bench/inprocess_churn.py MEMTAP PYTHON [--rounds R] [--runs N] [--grow]
                                                 [--threads T] [--baseline-memtap OLD] [--cpu]
"""
import argparse
import subprocess
import sys

LOOP = r'''
import sys, threading, time
CPU_CLOCK = "--cpu" in sys.argv
def work():
    for i in range(300000):
        s = str(i) * 3
        d = {"a": s, "b": [s, i]}
def churn(threads):
    clock = time.process_time if CPU_CLOCK else time.perf_counter
    t = clock()
    if threads == 1:
        work()
    else:
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for p in pool:
            p.start()
        for p in pool:
            p.join()
    return clock() - t
sys.stdout.write("ready\n"); sys.stdout.flush()
for line in sys.stdin:
    runs, threads = map(int, line.split())
    sys.stdout.write("%.5f\n" % min(churn(threads) for _ in range(runs))); sys.stdout.flush()
'''

LOOP_GROW = LOOP.replace('''def work():
    for i in range(300000):
        s = str(i) * 3
        d = {"a": s, "b": [s, i]}''', '''def work():
    kept = []
    for i in range(200000):
        s = str(i) * 3
        kept.append({"a": s, "b": [s, i]})
    del kept''')

CONFIGS = ["baseline", "sampled", "exact-f1", "detached"]


class Target:
    """One target process and the memtap build that attaches it."""

    def __init__(self, memtap, python, grow, runs, threads, cpu):
        self.memtap_path, self.runs, self.threads = memtap, runs, threads
        self.process = subprocess.Popen([python, "-u", "-c", LOOP_GROW if grow else LOOP] +
                                        (["--cpu"] if cpu else []),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"
        self.best = {}

    def timed(self):
        self.process.stdin.write("%d %d\n" % (self.runs, self.threads))
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def memtap(self, *words):
        subprocess.run([self.memtap_path] + list(words) + [str(self.process.pid)], check=True,
                       capture_output=True, timeout=60)

    def round(self):
        self.best.setdefault("baseline", []).append(self.timed())
        self.memtap("attach")
        self.best.setdefault("sampled", []).append(self.timed())
        self.memtap("detach")
        self.memtap("attach", "--exact", "--frames", "1")
        self.best.setdefault("exact-f1", []).append(self.timed())
        self.memtap("detach")
        self.best.setdefault("detached", []).append(self.timed())

    def ratios(self):
        base = min(self.best["baseline"])
        return {k: (min(v), min(v) / base) for k, v in self.best.items()}

    def close(self):
        self.process.kill()
        self.process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("memtap")
    parser.add_argument("python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--grow", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline-memtap", help="another memtap build, measured side by side")
    parser.add_argument("--cpu", action="store_true",
                        help="time with the target's CPU time (time.process_time, all its threads) "
                             "instead of wall time: on a loaded machine waiting for a core is not counted")
    args = parser.parse_args()
    assert LOOP_GROW != LOOP
    builds = [("this build", args.memtap)]
    if args.baseline_memtap:
        builds.append(("baseline build", args.baseline_memtap))
    targets = []
    try:
        for _, memtap in builds:
            targets.append(Target(memtap, args.python, args.grow, args.runs, args.threads, args.cpu))
        for _ in range(args.rounds):
            for target in targets:
                target.round()
    finally:
        for target in targets:
            target.close()
    results = [t.ratios() for t in targets]
    for (label, _), r in zip(builds, results):
        print("%s, %s, %d thread%s: %s" % (args.python, label, args.threads, "" if args.threads == 1 else "s",
                                           ", ".join("%s %.3f s (%.2fx)" % (k, r[k][0], r[k][1])
                                                     for k in CONFIGS)))
    if len(results) == 2:
        # Two views of the same comparison: each build's ratio to its own
        # baseline, and the best times directly (same loop, same
        # interpreter, interleaved, so load hits both alike); the baseline
        # and detached columns of the direct view show the noise floor.
        print("this build / baseline build: ratio of ratios: sampled %.3f, exact-f1 %.3f; best times: %s"
              % (results[0]["sampled"][1] / results[1]["sampled"][1],
                 results[0]["exact-f1"][1] / results[1]["exact-f1"][1],
                 ", ".join("%s %.3f" % (k, results[0][k][0] / results[1][k][0]) for k in CONFIGS)))


if __name__ == "__main__":
    sys.exit(main())
