#!/usr/bin/env python3
"""A target for the export tests: prints "ready PID", then reads commands on
stdin and answers "done":
  grow N   N distinct functions each keep one bytearray (N distinct tracebacks)
  drop     lets them all go
"""
import os
import sys

KEEP = []


def make_sites(n):
    # One function per site, each on its own line of one generated module.
    source = "\n".join("def site_%d(keep):\n    keep.append(bytearray(%d))" % (i, 100 + i % 97) for i in range(n))
    namespace = {}
    exec(compile(source, "/generated/export_sites.py", "exec"), namespace)
    return [namespace["site_%d" % i] for i in range(n)]


def main():
    print("ready %d" % os.getpid(), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "grow":
            for site in make_sites(int(words[1])):
                site(KEEP)
        elif words[0] == "drop":
            del KEEP[:]
        print("done", flush=True)


if __name__ == "__main__":
    main()
