"""A CPython process that leaks at one known line, for `memtap watch` tests.

Usage: python watch_target.py

Prints "ready" on stdout, then appends a 64 KiB bytearray to a list every
20 ms (about 3 MiB/s) on the line marked GROWTH-LINE, until it holds 256 MiB,
then keeps the process alive without growing. Runs on CPython 3.6 to 3.13.
"""
import sys
import threading
import time

HELD = []
LIMIT = 256 * 1024 * 1024 // (64 * 1024)


def grow():
    HELD.append(bytearray(64 * 1024))  # GROWTH-LINE


# CPython 3.6 creates its GIL with the first thread; memtap needs one.
idle = threading.Thread(target=lambda: time.sleep(1e6))
idle.daemon = True
idle.start()

sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    if len(HELD) < LIMIT:
        grow()
    time.sleep(0.02)
