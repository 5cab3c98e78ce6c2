"""Target for integration.refs: objects kept alive by known holders.

Each holder gets COUNT objects allocated at its own line (printed as
"SITE NAME LINE" on stdout, then "ready"):
  audit      a class-level list, Audit.entries
  resurrect  a module-level list filled by __del__ (a reference cycle the gc
             collects, whose finalizer puts the object back)
  cache      a class-level dict keyed by type, Registry.cache[type]
  handler    an instance attribute, Handler.records, of an object in a
             module-level list (as logging keeps its handlers)
"""
import gc
import sys
import time

COUNT = 2000
RESURRECTED = []


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


def main():
    for tag in ("audit", "resurrect", "cache", "handler"):
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
