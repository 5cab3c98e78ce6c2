#!/usr/bin/env python3
"""A service whose RSS stays high after a burst is over.

  service.py [--seconds S]   prints "ready PID", then idles (S seconds at most, default 600)
  kill -USR1 PID             a burst of small records: 2,000,000 dicts built, 1 in 500 kept
  kill -USR2 PID             a burst of report lines: 200,000 strings of ~650 bytes, 1 in 500 kept

Each burst keeps a few of its objects in a "recent" cache and drops the rest.
Small objects (512 bytes or less) come from pymalloc, which carves 1 MiB
arenas (256 KiB before 3.10) into pools of one size class; an arena goes back
to the OS only once every object in it is gone, so one survivor in 500 keeps
nearly all of them mapped. Larger objects come from glibc malloc's heap,
where the survivors sit between free chunks and glibc cannot shrink the heap.
Either way the memory is free for this process to reuse, yet counted in RSS.
"""
import argparse
import os
import signal
import time

RECENT = []  # the survivors: a small cache of recent items, kept on purpose
pending = []  # signals seen, handled in the main loop (not inside the handler)


def record_burst():
    records = [{"id": i, "user": i % 977, "ok": True} for i in range(2_000_000)]
    RECENT.extend(records[::500])  # keep 1 in 500: enough to pin pymalloc's arenas
    return len(records)


def line_burst():
    lines = [f"{i:08d} " + "event=ok user=u{0} path=/api/items/{0} ".format(i % 977) * 14 for i in range(200_000)]
    RECENT.extend(lines[::500])  # keep 1 in 500: enough to pin glibc's heap
    return len(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600, help="exit after this long")
    args = parser.parse_args()
    signal.signal(signal.SIGUSR1, lambda *_: pending.append(record_burst))
    signal.signal(signal.SIGUSR2, lambda *_: pending.append(line_burst))
    print(f"ready {os.getpid()}", flush=True)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        while pending:
            burst = pending.pop(0)
            print(f"{burst.__name__}: built {burst()}, keeping {len(RECENT)} in all", flush=True)
        heartbeat = f"idle since {time.monotonic():.1f}"  # a service's own small bookkeeping
        time.sleep(0.2)


if __name__ == "__main__":
    main()
