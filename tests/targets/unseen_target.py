"""A target that holds memory from before memtap attaches, for issue 8 item 3.

Usage: python unseen_target.py MIB

Allocates and touches MIB MiB, prints "ready", then reads commands from
stdin, one a line, and answers each with "done":
  big    keep one 4 MiB bytes object (allocated at the BIG-LINE below): in
         sampled mode one allocation is one sample
Runs on CPython 3.6 to 3.13.
"""
import sys

EARLY = b"x" * (int(sys.argv[1]) << 20)  # allocated before any attach
HELD = []
sys.stdout.write("ready\n")
sys.stdout.flush()
for line in sys.stdin:
    if line.strip() == "big":
        HELD.append(b"y" * (4 << 20))  # BIG-LINE
    sys.stdout.write("done\n")
    sys.stdout.flush()
