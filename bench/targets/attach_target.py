"""Target for bench/attach_latency.py.

Usage: python attach_target.py GAPTICKER_SO

Threads: main asleep in time.sleep; one thread allocating (bursts of small
lists, then a 0.5 ms sleep, so it does not hog the GIL from the tickers);
a Python ticker thread (1 ms sleeps, needs the GIL); a C ticker thread
(gapticker.c, no GIL). Prints "ready", then on SIGUSR1 prints
"gaps C_NS PY_NS" (largest gaps since the previous SIGUSR1) and resets them.
SIGUSR2 stops tracemalloc if it runs (the gdb route's "detach").
"""
import ctypes
import signal
import sys
import threading
import time

lib = ctypes.CDLL(sys.argv[1])
lib.gapticker_take_max.restype = ctypes.c_int64
PY_MAX = [0]


def py_ticker():
    last = time.perf_counter_ns()
    while True:
        time.sleep(0.001)
        t = time.perf_counter_ns()
        if t - last > PY_MAX[0]:
            PY_MAX[0] = t - last
        last = t


def allocating():
    keep = []
    while True:
        for _ in range(20):
            keep.append([str(i) for i in range(50)])
        if len(keep) > 2000:
            del keep[:1000]
        time.sleep(0.0005)


def on_usr1(signum, frame):
    c = lib.gapticker_take_max()
    p, PY_MAX[0] = PY_MAX[0], 0
    sys.stdout.write("gaps %d %d\n" % (c, p))
    sys.stdout.flush()


def on_usr2(signum, frame):
    import tracemalloc
    tracemalloc.stop()
    sys.stdout.write("stopped\n")
    sys.stdout.flush()


signal.signal(signal.SIGUSR1, on_usr1)
signal.signal(signal.SIGUSR2, on_usr2)
if lib.gapticker_start() != 0:
    sys.exit("gapticker_start failed")
for fn in (py_ticker, allocating):
    threading.Thread(target=fn, daemon=True).start()
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    time.sleep(1)
