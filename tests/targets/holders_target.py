"""Target for integration.refs: objects kept alive by known holders.

Each holder gets COUNT objects allocated at its own line (printed as
"SITE NAME LINE" on stdout, then "ready"):
  audit      a class-level list, Audit.entries
  resurrect  a module-level list filled by __del__ (a reference cycle the gc
             collects, whose finalizer puts the object back)
  cache      a class-level dict keyed by type, Registry.cache[type]
  handler    an instance attribute, Handler.records, of an object in a
             module-level list (as logging keeps its handlers)
  lazarus    objects whose own __del__ put them back (LAZARUS): resurrected
  garbage    dicts the gc found unreachable and kept in gc.garbage
             (gc.DEBUG_SAVEALL while they were collected)
  cycle      dicts in reference cycles reachable only from each other, left
             for a gc that is disabled from then on
"""
import gc
import sys
import time

COUNT = 2000
RESURRECTED = []
LAZARUS = []


class Audit:
    entries = []


class Registry:
    cache = {}


class Handler:
    def __init__(self):
        self.records = []


HANDLERS = [Handler()]


class Phoenix:
    def __init__(self):
        self.me = self
        self.payload = {"phoenix": 1}  # SITE resurrect

    def __del__(self):
        RESURRECTED.append(self.payload)


class Lazarus:
    def __init__(self):
        self.me = self

    def __del__(self):
        LAZARUS.append(self)


class Node:
    pass


def cycles(tag):
    for i in range(COUNT):
        a = Node()
        b = Node()
        a.peer = b
        b.peer = a
        if tag == "garbage":
            a.payload = {"garbage": i}  # SITE garbage
        else:
            a.payload = {"cycle": i}  # SITE cycle


def site_line(tag):
    for n, line in enumerate(open(__file__), 1):
        if line.rstrip().endswith("# SITE " + tag):
            return n
    raise SystemExit("no site " + tag)


def fill():
    for i in range(COUNT):
        Audit.entries.append({"audit": i})  # SITE audit
    kinds = [type("Kind%d" % k, (), {}) for k in range(40)]
    for i in range(COUNT):
        Registry.cache.setdefault(kinds[i % 40], []).append({"cached": i})  # SITE cache
    for i in range(COUNT):
        HANDLERS[0].records.append({"record": i})  # SITE handler
    for i in range(COUNT):
        Phoenix()
    gc.collect()
    for i in range(COUNT):
        Lazarus()  # SITE lazarus
    # Up to 3.8 a collection where a finalizer resurrected anything frees
    # none of its garbage (Modules/gcmodule.c check_garbage): collect again.
    for _ in range(3):
        gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    cycles("garbage")
    gc.collect()
    gc.set_debug(0)
    gc.disable()
    cycles("cycle")


def main():
    for tag in ("audit", "resurrect", "cache", "handler", "lazarus", "garbage", "cycle"):
        print("SITE", tag, site_line(tag))
    sys.stdout.flush()
    sys.stdin.readline()  # memtap attaches meanwhile
    fill()
    print("ready")
    sys.stdout.flush()
    while True:
        [0] * 10  # keep allocating, so a walk gets a thread holding the GIL
        time.sleep(0.01)


main()
