#!/usr/bin/env python3
"""A service whose RSS stays high after a burst is over.

  service.py [--seconds S]     prints "ready PID", then idles (S seconds at most, default 600)
  kill -USR1 PID               one burst: 100,000 report lines built, 1 in 500 kept
  kill -USR2 PID               ask glibc to give free heap memory back (malloc_trim)

Each burst builds many ~650-byte strings. Objects over 512 bytes bypass
pymalloc and come from glibc malloc's heap. When the burst ends almost all of
them are freed, but the few kept (a "recent lines" cache) sit between the
free ones all over the heap, so glibc cannot shrink it: the memory is free
for this process to reuse, yet still counted in its RSS.
"""
import argparse
import ctypes
import os
import signal
import time

RECENT = []  # the survivors: a small cache of recent lines, kept on purpose
pending = []  # signals seen, handled in the main loop (not inside the handler)


def burst():
    lines = [f"{i:08d} " + "event=ok user=u{0} path=/api/items/{0} ".format(i % 977) * 14 for i in range(100_000)]
    RECENT.extend(lines[::500])  # keep 1 in 500: enough to pin the heap
    return len(lines)


def trim():
    # glibc returns free pages inside the heap only when asked.
    return ctypes.CDLL("libc.so.6").malloc_trim(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600, help="exit after this long")
    args = parser.parse_args()
    signal.signal(signal.SIGUSR1, lambda *_: pending.append("burst"))
    signal.signal(signal.SIGUSR2, lambda *_: pending.append("trim"))
    print(f"ready {os.getpid()}", flush=True)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        while pending:
            if pending.pop(0) == "burst":
                print(f"burst: built {burst()} lines, keeping {len(RECENT)}", flush=True)
            else:
                print(f"malloc_trim(0) returned {trim()}", flush=True)
        time.sleep(0.2)


if __name__ == "__main__":
    main()
