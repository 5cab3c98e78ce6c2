"""Many small objects freed with a few survivors, for issue 8 item 2.

Usage: python fragmented_target.py [COUNT] [KEEP_EVERY]

Builds COUNT (default 1,000,000) small dicts, keeps every KEEP_EVERY-th
(default 500), deletes the rest and runs gc.collect(): the survivors are
spread over every pymalloc pool, so its arenas stay mapped and mostly free.
Prints "ready", then ticks every 50 ms (each tick allocates a small string,
so an agent's pymalloc read that waits for the next allocation runs soon)
and reads commands from stdin, one a line, answering each with "done":
  stats PATH   write sys._debugmallocstats() (it prints to the C-level
               stderr, fd 2) into PATH: ground truth for memtap's figures
  quit         exit
Runs on CPython 3.6 to 3.13.
"""
import gc
import os
import select
import sys

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
KEEP_EVERY = int(sys.argv[2]) if len(sys.argv) > 2 else 500

objects = [{"id": i, "v": i & 7} for i in range(COUNT)]  # BUILD-LINE
SURVIVORS = objects[::KEEP_EVERY]
del objects
gc.collect()


def write_stats(path):
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.dup2(fd, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(fd)
        os.close(saved)


sys.stdout.write("ready\n")
sys.stdout.flush()
tick = 0
while True:
    readable, _, _ = select.select([sys.stdin], [], [], 0.05)
    tick += 1
    last = str(tick) * 3  # one small allocation per tick
    if not readable:
        continue
    line = sys.stdin.readline()
    if not line:
        break
    words = line.split()
    if words and words[0] == "stats":
        write_stats(words[1])
    elif words and words[0] == "quit":
        break
    sys.stdout.write("done\n")
    sys.stdout.flush()
