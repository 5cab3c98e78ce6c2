"""A CPython process that builds a working set, frees it, then grows and
dies, for memtap's journal test (issue 8 item 4).

  python journal_target.py    prints "ready", then on the stdin line "go":
    builds BURST_MB of bytes objects at the line marked JOURNAL-BURST, holds
    them HOLD seconds, drops them and says "burst-done TRUE_BYTES"; then
    appends GROW_MB of bytearrays at the line marked JOURNAL-GROW, one chunk
    every STEP seconds, says "grown TRUE_BYTES" and parks, growing no more.
TRUE_BYTES is what the allocator was asked for at that line (every object
plus the list holding them, by sys.getsizeof). The test kills it with -9.
Runs on CPython 3.6 to 3.13.
"""
import gc
import sys
import threading
import time

BURST_MB = 48
GROW_MB = 16
CHUNK = 64 * 1024
GROW_CHUNK = 256 * 1024
HOLD = 1.0
STEP = 0.02
HELD = []


def say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def burst():
    working = [bytes(CHUNK) for _ in range(BURST_MB * 1024 * 1024 // CHUNK)]  # JOURNAL-BURST
    true_bytes = sys.getsizeof(working) + sum(sys.getsizeof(b) for b in working)
    time.sleep(HOLD)
    del working
    gc.collect()
    say("burst-done %d" % true_bytes)


def grow():
    for _ in range(GROW_MB * 1024 * 1024 // GROW_CHUNK):
        HELD.append(bytearray(GROW_CHUNK))  # JOURNAL-GROW
        time.sleep(STEP)
    # The list's own buffer counts at the line too (tracemalloc's rule).
    say("grown %d" % (sum(sys.getsizeof(b) for b in HELD)))


# CPython 3.6 creates its GIL with the first thread; memtap needs one.
idle = threading.Thread(target=lambda: time.sleep(1e6))
idle.daemon = True
idle.start()

say("ready")
for command in sys.stdin:
    if command.strip() == "go":
        burst()
        grow()
    elif command.strip() == "quit":
        break
