"""Target for bench/heap_walk.py: a large live heap reachable from module
globals, a Python ticker thread and (optionally) a GIL-free C ticker.

Usage: python heap_target.py OBJECTS [GAPTICKER_SO]

Builds, before the benchmark attaches (so none of it is traced), a mix of
about OBJECTS objects held by this module's globals:

  RECORDS  a list of dicts {"name": str, "n": int}: 3 objects per entry
           (the keys are interned strs shared by all), half of OBJECTS
  ROWS     a list of tuples (int, float): 3 objects per entry, a quarter
  GROUPS   a list of lists of 3 strs: 4 objects per entry, a quarter

The walk counts every object it reaches, the interpreter's own modules too;
the benchmark reports the walk's count, not OBJECTS.

Then it prints "ready" and answers one command per stdin line:

  site N   drop SITE and build it again: N dicts {"id": int}, all allocated
           at the line marked "# SITE" below (after an attach, so traced);
           prints "site N"
  gaps     prints "gaps PY_NS C_NS": the largest gap between two ticks of
           the Python ticker (1 ms sleeps; it needs the GIL, so a walk that
           holds the GIL stalls it) and of the C ticker (-1 without one)
           since the previous "gaps", and resets both
  exit     exits

The Python ticker is the only thread that allocates while the main thread
waits on stdin: one new str per tick (floats and small tuples come from free
lists, no malloc), so an armed walk runs inside its next tick, and its gap
spans the time the walk held the GIL.
"""
import ctypes
import gc
import sys
import threading
import time

OBJECTS = int(sys.argv[1])
LIB = None
if len(sys.argv) > 2:
    LIB = ctypes.CDLL(sys.argv[2])
    LIB.gapticker_take_max.restype = ctypes.c_int64

PY_MAX = [0.0]
TICK = [""]
RECORDS = []
ROWS = []
GROUPS = []
SITE = []


def build(objects):
    for i in range(objects // 6):
        RECORDS.append({"name": "rec-%d" % i, "n": i + 100000})
    for i in range(objects // 12):
        ROWS.append((i + 100000, i * 0.5))
    for i in range(objects // 16):
        GROUPS.append(["g%d" % i, "h%d" % i, "k%d" % i])


def build_site(n):
    del SITE[:]
    for i in range(n):
        SITE.append({"id": i})  # SITE
    return len(SITE)


def py_ticker():
    last = time.perf_counter()
    ticks = 0
    while True:
        time.sleep(0.001)
        t = time.perf_counter()
        if t - last > PY_MAX[0]:
            PY_MAX[0] = t - last
        last = t
        ticks += 1
        TICK[0] = "tick %d" % ticks  # a new str: a PyObject_Malloc, where an armed walk runs


def main():
    build(OBJECTS)
    gc.collect()
    if LIB is not None and LIB.gapticker_start() != 0:
        sys.exit("gapticker_start failed")
    threading.Thread(target=py_ticker, daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "site":
            sys.stdout.write("site %d\n" % build_site(int(words[1])))
        elif words[0] == "gaps":
            py, PY_MAX[0] = PY_MAX[0], 0.0
            c = LIB.gapticker_take_max() if LIB is not None else -1
            sys.stdout.write("gaps %d %d\n" % (int(py * 1e9), c))
        elif words[0] == "exit":
            break
        sys.stdout.flush()


main()
