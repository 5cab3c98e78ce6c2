"""Hook overhead measured inside ONE target process, which removes the
process-to-process noise that churn.py's medians carry on a shared 2-core
machine: the same loop is timed (best of N runs) before attach, under
sampled mode, under --exact --frames 1, and again detached, in rounds.

--grow keeps what each run allocates (~70 MB, freed after the run), so the
traced total climbs to a new high through the run: the worst case for the
peak tracking (engine.cpp "Peak"), which copies the breakdown every 1/64 of
growth. Each attach starts a fresh peak; use --runs 1 so every timed run
climbs from a fresh peak (later runs would only reach the same height).

Usage: /usr/bin/python3 bench/inprocess_churn.py MEMTAP PYTHON [--rounds R] [--runs N] [--grow]
"""
import argparse
import os
import subprocess
import sys

LOOP = r'''
import sys, time
def churn():
    t = time.perf_counter()
    for i in range(300000):
        s = str(i) * 3
        d = {"a": s, "b": [s, i]}
    return time.perf_counter() - t
sys.stdout.write("ready\n"); sys.stdout.flush()
for line in sys.stdin:
    sys.stdout.write("%.5f\n" % min(churn() for _ in range(int(line)))); sys.stdout.flush()
'''

LOOP_GROW = LOOP.replace('''    for i in range(300000):
        s = str(i) * 3
        d = {"a": s, "b": [s, i]}
    return time.perf_counter() - t''', '''    kept = []
    for i in range(200000):
        s = str(i) * 3
        kept.append({"a": s, "b": [s, i]})
    elapsed = time.perf_counter() - t
    del kept
    return elapsed''')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("memtap")
    parser.add_argument("python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--grow", action="store_true")
    args = parser.parse_args()
    assert LOOP_GROW != LOOP
    target = subprocess.Popen([args.python, "-u", "-c", LOOP_GROW if args.grow else LOOP], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert target.stdout.readline().strip() == "ready"

        def timed():
            target.stdin.write("%d\n" % args.runs)
            target.stdin.flush()
            return float(target.stdout.readline())

        def memtap(*words):
            subprocess.run([args.memtap] + list(words) + [str(target.pid)], check=True, capture_output=True,
                           timeout=60)

        best = {}
        for _ in range(args.rounds):
            best.setdefault("baseline", []).append(timed())
            memtap("attach")
            best.setdefault("sampled", []).append(timed())
            memtap("detach")
            memtap("attach", "--exact", "--frames", "1")
            best.setdefault("exact-f1", []).append(timed())
            memtap("detach")
            best.setdefault("detached", []).append(timed())
    finally:
        target.kill()
        target.wait()
    base = min(best["baseline"])
    print("%s: %s" % (args.python, ", ".join("%s %.3f s (%.2fx)" % (k, min(v), min(v) / base)
                                              for k, v in best.items())))


if __name__ == "__main__":
    sys.exit(main())
