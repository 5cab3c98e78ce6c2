"""A deterministic allocation burst at known lines, for memtap's accuracy test.

  python burst_target.py             prints "ready", then obeys stdin lines:
                                     "burst [SCALE]" (allocate and keep), "free"
                                     (drop and collect), each answered "done"
  python burst_target.py --tracemalloc FRAMES [SCALE]
                                     runs the same burst under tracemalloc and
                                     prints compare_to('lineno') for this file
                                     as JSON {"LINE": size_diff, ...} and the
                                     total, then exits
"""
import gc
import json
import sys

KEPT = []


def burst(scale=1):
    a = [bytes(1000) for _ in range(10000 * scale)]  # BURST-A ~10 MB of bytes
    b = [str(i) * 10 for i in range(100000 * scale)]  # BURST-B ~10 MB of str
    c = [{"k": i, "v": -i} for i in range(40000 * scale)]  # BURST-C ~10 MB of dicts
    KEPT.extend((a, b, c))


def free():
    del KEPT[:]
    gc.collect()


if len(sys.argv) > 1 and sys.argv[1] == "--tracemalloc":
    import tracemalloc

    tracemalloc.start(int(sys.argv[2]))
    gc.collect()
    before = tracemalloc.take_snapshot()
    burst(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    after = tracemalloc.take_snapshot()
    lines = {}
    for stat in after.compare_to(before, "lineno"):
        frame = stat.traceback[0]
        if frame.filename == __file__:
            lines[str(frame.lineno)] = stat.size_diff
    print(json.dumps({"lines": lines}))
    sys.exit(0)

sys.stdout.write("ready\n")
sys.stdout.flush()
for command in sys.stdin:
    command = command.strip()
    if command.startswith("burst"):
        burst(int(command.split()[1]) if " " in command else 1)
    elif command == "free":
        free()
    elif command == "quit":
        break
    sys.stdout.write("done\n")
    sys.stdout.flush()
