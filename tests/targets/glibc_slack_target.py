"""Free memory inside glibc malloc's heap, pinned by a few survivors.

Usage: python glibc_slack_target.py [COUNT] [KEEP_EVERY]

Builds COUNT (default 200,000) strings of ~650 bytes: over pymalloc's
512-byte limit, so each comes from glibc malloc's heap. Keeps every
KEEP_EVERY-th (default 500) and frees the rest: the survivors sit between
free chunks all over the heap, so glibc cannot shrink it and the free
memory stays resident. Prints "ready", then ticks every 50 ms and answers
each stdin line with "done" ("quit" exits).
Runs on CPython 3.6 to 3.13.
"""
import select
import sys

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
KEEP_EVERY = int(sys.argv[2]) if len(sys.argv) > 2 else 500

lines = ["%08d " % i + ("event=ok user=u%d path=/api/items/%d " % (i % 977, i % 977)) * 14
         for i in range(COUNT)]  # BUILD-LINE
SURVIVORS = lines[::KEEP_EVERY]
del lines

sys.stdout.write("ready\n")
sys.stdout.flush()
tick = 0
while True:
    readable, _, _ = select.select([sys.stdin], [], [], 0.05)
    tick += 1
    last = str(tick) * 3
    if not readable:
        continue
    line = sys.stdin.readline()
    if not line or line.strip() == "quit":
        break
    sys.stdout.write("done\n")
    sys.stdout.flush()
