"""integration.refs: `memtap refs` names the holder of each site's objects
and counts them exactly (exact mode), on one interpreter; `memtap types`
counts the dicts; an unreachable site times out cleanly.

Usage: refs_test.py MEMTAP PYTHON TARGETS_DIR"""
import json
import os
import subprocess
import sys

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
COUNT = 2000


def check(condition, message, *details):
    if not condition:
        print("FAIL:", message)
        for d in details:
            print(d)
        sys.exit(1)


def memtap(*args):
    return subprocess.run([MEMTAP] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)


def main():
    target = subprocess.Popen([PYTHON, os.path.join(TARGETS, "holders_target.py")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, universal_newlines=True)
    try:
        sites = {}
        for _ in range(7):
            _, tag, line = target.stdout.readline().split()
            sites[tag] = int(line)
        r = memtap("attach", "--exact", str(target.pid))
        check(r.returncode == 0, "attach failed", r.stderr)
        target.stdin.write("go\n")
        target.stdin.flush()
        check(target.stdout.readline().strip() == "ready", "target not ready")
        expected = {
            "audit": "__main__.Audit.entries",
            "resurrect": "__main__.RESURRECTED",
            "cache": "__main__.Registry.cache",
            "handler": "__main__.Handler.records",
        }
        for tag, holder in expected.items():
            r = memtap("refs", str(target.pid), "holders_target.py:%d" % sites[tag], "--json")
            check(r.returncode == 0, "refs %s failed" % tag, r.stdout, r.stderr)
            out = json.loads(r.stdout)
            # The holder's own container counts too when its table grew at
            # the line (Registry.cache's keys, a list's item array): one
            # object, not the site's dicts.
            dicts = [c for c in out["chains"] if c["links"][-1]["type"] == "dict" and c["objects"] > 1]
            check(dicts, "no dict chain for %s" % tag, r.stdout)
            total = sum(c["objects"] for c in dicts)
            # A dict taken from the interpreter's free list keeps the block
            # (and line) of its first life; it counts when its keys table
            # was allocated at the site, which a free-listed table was not:
            # a few (at most the free lists' 80) may be missing, none extra.
            # Phoenix's payloads reuse the free-listed __dict__s of the
            # Phoenixes the gc already collected: only half is guaranteed.
            low = COUNT // 2 if tag == "resurrect" else COUNT - 80
            check(low <= total <= COUNT, "%s: %d dicts reached, want %d" % (tag, total, COUNT),
                  r.stdout)
            holders = set(c["holder"] for c in dicts)
            check(holders == {holder}, "%s: holders %s, want %s" % (tag, holders, holder), r.stdout)
            print("ok: %s held by %s, %d objects, walk %.1f ms" % (tag, holder, total, out["walk_ns"] / 1e6))
        # Lazarus: its own __del__ ran and put it back; every one is finalized.
        r = memtap("refs", str(target.pid), "holders_target.py:%d" % sites["lazarus"], "--json")
        check(r.returncode == 0, "refs lazarus failed", r.stdout, r.stderr)
        out = json.loads(r.stdout)
        ours = [c for c in out["chains"] if c["links"][-1]["type"] == "__main__.Lazarus"]
        total = sum(c["objects"] for c in ours)
        check(total == COUNT and set(c["holder"] for c in ours) == {"__main__.LAZARUS"},
              "lazarus: %d objects held by %s" % (total, set(c["holder"] for c in ours)), r.stdout)
        check(out["site_finalized"] == COUNT, "lazarus: site_finalized %d, want %d"
              % (out["site_finalized"], COUNT), r.stdout)
        print("ok: lazarus %d resurrected, held by __main__.LAZARUS" % total)
        # What the gc kept (gc.garbage) and what it has not collected yet.
        for tag, root_kind, holder in (("garbage", "module", "gc.garbage"),
                                       ("cycle", "cycle", "<reference cycle> __main__.Node.payload")):
            r = memtap("refs", str(target.pid), "holders_target.py:%d" % sites[tag], "--json")
            check(r.returncode == 0, "refs %s failed" % tag, r.stdout, r.stderr)
            out = json.loads(r.stdout)
            check(out["gc_lists"] == "read", "%s: gc lists %r" % (tag, out["gc_lists"]), r.stdout)
            dicts = [c for c in out["chains"] if c["links"][-1]["type"] == "dict"]
            total = sum(c["objects"] for c in dicts)
            check(COUNT - 80 <= total <= COUNT, "%s: %d dicts, want %d" % (tag, total, COUNT), r.stdout)
            kinds = set(c["links"][0]["kind"] for c in dicts)
            holders = set(c["holder"] for c in dicts)
            check(kinds == {root_kind} and holders == {holder},
                  "%s: roots %s held by %s, want %s / %s" % (tag, kinds, holders, root_kind, holder),
                  r.stdout)
            print("ok: %s %d dicts held by %s" % (tag, total, holder))
        r = memtap("types", str(target.pid), "--json", "--top", "10000")
        check(r.returncode == 0, "types failed", r.stderr)
        types = {t["type"]: t["count"] for t in json.loads(r.stdout)["types"]}
        check(types.get("dict", 0) >= 4 * COUNT, "types: %s dicts, want >= %d" % (types.get("dict"), 4 * COUNT))
        check(types.get("__main__.Handler") == 1, "types: Handler count %s" % types.get("__main__.Handler"))
        print("ok: types counts %d dicts, 1 Handler" % types["dict"])
        cycles = {t["type"]: t["count"] for t in json.loads(r.stdout)["cycles"]}
        check(cycles.get("__main__.Node") == 2 * COUNT, "types: %s Nodes in cycles, want %d"
              % (cycles.get("__main__.Node"), 2 * COUNT), r.stdout)
        print("ok: types counts %d Nodes in unreachable cycles" % cycles["__main__.Node"])
        sites_seen = {c["site"]: c["count"] for c in json.loads(r.stdout)["cycle_sites"]}
        at_site = sites_seen.get("%s:%d" % (os.path.abspath(os.path.join(TARGETS, "holders_target.py")),
                                            sites["cycle"]), 0)
        check(COUNT - 80 <= at_site <= COUNT, "types: %d cycle objects allocated at the cycle site, want %d"
              % (at_site, COUNT), r.stdout)
        print("ok: types names the cycle site with %d objects" % at_site)
        r = memtap("refs", str(target.pid), "nowhere.py:1")
        check(r.returncode == 0 and "nothing traced" in r.stdout, "refs on an empty site", r.stdout, r.stderr)
        r = memtap("refs", str(target.pid), "no-line")
        check(r.returncode == 2, "bad SITE must be a usage error", r.stdout, r.stderr)
        r = memtap("detach", str(target.pid))
        check(r.returncode == 0, "detach failed", r.stderr)
        check(target.poll() is None, "target died")
    finally:
        target.kill()
        target.wait()
    print("ok")


main()
