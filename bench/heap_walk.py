"""The cost of the heap walk behind `memtap types` and `memtap refs`.

For each interpreter and heap size, one fresh target
(bench/targets/heap_target.py BASE) builds BASE objects held by module
globals (dicts {"name": str, "n": int}, tuples (int, float), lists of 3
strs) before memtap attaches, so none of them is traced. Then:

  memtap attach --exact PID      (or sampled, for the largest heap)
  site 100000                    the target builds 100K dicts {"id": int}
                                 at one line (traced: built after attach)
  memtap types PID --json        x REPS
  memtap refs PID heap_target.py:LINE --json    x REPS
  memtap types PID --json --max-objects 500000  x REPS, largest heap only

Every process also holds the site (100K dicts and their 100K ints) and the
interpreter's own modules: the tables report the number of objects the walk
visited (walk_objects), never BASE.

Per command:
  walk ms       walk_ns as the agent reports it (the walk alone)
  wall ms       the memtap command, start to exit (arm, wait for an
                allocating thread, the walk, 50 ms result polls, rendering)
  mapped        walk_mapped_bytes: the walk's own tables (mmap'd, unmapped
                when it ends)
  RSS           the target's VmRSS just before the command, its VmHWM during
                it (the peak is reset with `echo 5 > /proc/PID/clear_refs`
                just before), and VmRSS after it: after - before shows the
                walk's memory was given back
  Py gap        the largest gap between 1 ms ticks of a Python thread in the
                target during the command: the walk holds the GIL (it runs
                inside that very thread's next allocation), so this is the
                pause the application sees
  C gap         same for a GIL-free C thread (targets/gapticker.c): the walk
                stops no thread, so this stays at the idle level
The idle gaps (0.5 s, no command) of each process are in the raw rows.

The commands get --timeout 60: memtap's --timeout also cancels a walk that is
already running (see README), and this benchmark measures walks, not that.

Usage: /usr/bin/python3 bench/heap_walk.py [--quick] [--reps N] [--sizes 250000,...]
        [--interpreters debian-3.11,3.6,3.12,3.13] [--no-sampled] [--markdown FILE]
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Child, log, median  # noqa: E402

TARGET = os.path.join(common.TARGETS, "heap_target.py")
SITE_N = 100000
BOUND = 500000


def site_line():
    with open(TARGET) as f:
        for number, line in enumerate(f, 1):
            if line.rstrip().endswith("# SITE") and "append" in line:
                return number
    raise RuntimeError("no '# SITE' line in " + TARGET)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])  # kB
    return out


def reset_hwm(pid):
    """Resets the target's VmHWM to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def take_gaps(t):
    t.send("gaps")
    parts = t.read_line(30, "gaps ").split()
    return int(parts[1]) / 1e6, int(parts[2]) / 1e6  # ms


def check_alive(t):
    if t.proc.poll() is not None:
        raise RuntimeError("target died (rc %s): %s" % (t.proc.returncode, t.stderr_tail()))


def one_command(t, label, argv):
    take_gaps(t)  # reset
    before = proc_status(t.pid)
    hwm_reset = reset_hwm(t.pid)
    r = common.run_bounded([common.MEMTAP] + argv, 180)
    time.sleep(0.03)  # let both tickers finish the tick that spans the command
    during = proc_status(t.pid)
    py_gap, c_gap = take_gaps(t)
    after = proc_status(t.pid)
    check_alive(t)
    if r.returncode != 0:
        raise RuntimeError("memtap %s failed (rc %d): %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    j = json.loads(r.stdout)
    rec = dict(cmd=label, wall_ms=r.wall * 1000, walk_ms=j["walk_ns"] / 1e6, objects=j["walk_objects"],
               gc_objects=j["walk_gc_objects"], result=j["walk_result"], mapped=j["walk_mapped_bytes"],
               rss_before=before["VmRSS"], hwm_before=before["VmHWM"], hwm_reset=hwm_reset,
               hwm_during=during["VmHWM"], rss_after=after["VmRSS"], py_gap=py_gap, c_gap=c_gap)
    if j.get("gc_lists"):  # newer agents also read the gc's lists after the walk
        rec["gc"] = "gc_lists %s, %d listed" % (j["gc_lists"], j.get("gc_listed", 0))
    if "site_objects" in j:
        rec.update(site_objects=j["site_objects"], site_records=j["site_traced_records"],
                   holder=j["chains"][0]["holder"] if j["chains"] else "-")
    log("  %-14s %9d objects %-9s walk %7.1f ms, wall %7.1f ms, mapped %5.1f MB, RSS %.1f -> HWM %.1f -> %.1f MB,"
        " Py gap %.1f ms, C gap %.1f ms" % (label, rec["objects"], rec["result"], rec["walk_ms"], rec["wall_ms"],
                                            rec["mapped"] / 2**20, rec["rss_before"] / 1024,
                                            rec["hwm_during"] / 1024, rec["rss_after"] / 1024, py_gap, c_gap))
    return rec


def run_process(python, ticker, base, exact, reps, bound):
    """One target: attach, build the site, REPS x (types, refs[, bounded types])."""
    line = site_line()
    with Child([python, TARGET, str(base), ticker]) as t:
        t.read_line(600, "ready")
        time.sleep(0.2)
        pid = str(t.pid)
        attach = common.memtap_or_throw(["attach", pid] + (["--exact"] if exact else []), 60)
        t.send("site %d" % SITE_N)
        t.read_line(120, "site ")
        take_gaps(t)
        time.sleep(0.5)
        idle = take_gaps(t)
        runs = []
        for _ in range(reps):
            runs.append(one_command(t, "types", ["types", pid, "--json", "--top", "5", "--timeout", "60"]))
            runs.append(one_command(t, "refs", ["refs", pid, "heap_target.py:%d" % line, "--json", "--top", "3",
                                                "--timeout", "60"]))
            if bound:
                runs.append(one_command(t, "types --max-objects %d" % BOUND,
                                        ["types", pid, "--json", "--top", "5", "--timeout", "60",
                                         "--max-objects", str(BOUND)]))
        t.send("exit")
        return dict(idle=idle, runs=runs, attach_ms=attach.wall * 1000)


def k(n):
    return "%dK" % (n // 1000) if n < 1000000 else ("%gM" % (n / 1e6))


def mb(kb):
    return "%.1f" % (kb / 1024.0)


def med(runs, key):
    return median([r[key] for r in runs])


def span(runs, key):
    lo, hi = min(r[key] for r in runs), max(r[key] for r in runs)
    return "%d" % lo if lo == hi else "%d-%d" % (lo, hi)


def groups(procs):
    """(base, mode, cmd, runs) in order."""
    out = []
    for (base, mode), p in procs:
        if "error" in p:
            continue
        cmds = []
        for r in p["runs"]:
            if r["cmd"] not in cmds:
                cmds.append(r["cmd"])
        for c in cmds:
            out.append((base, mode, c, [r for r in p["runs"] if r["cmd"] == c]))
    return out


def time_table(procs):
    rows = []
    for base, mode, cmd, runs in groups(procs):
        objects = med(runs, "objects")
        walk = med(runs, "walk_ms")
        results = sorted(set(r["result"] for r in runs))
        site = ""
        if "site_objects" in runs[0]:
            site = "%s (%s)" % (span(runs, "site_objects"), runs[0]["holder"])
        rows.append([k(base) + "+site", mode, cmd, span(runs, "objects"), "/".join(results), "%.0f" % walk,
                     "%.0f" % (walk / (objects / 1e6)), "%.0f" % med(runs, "wall_ms"),
                     "%.0f" % med(runs, "py_gap"), "%.0f" % max(r["py_gap"] for r in runs),
                     "%.1f" % max(r["c_gap"] for r in runs), site or "-"])
    return common.table(["heap built", "mode", "command", "objects visited", "walk_result", "walk ms (agent)",
                         "walk ms per 1M objects", "command wall ms", "Py-ticker gap ms (median)",
                         "Py-ticker gap ms (max)", "C-ticker gap ms (max)", "refs: site objects reached (holder)"],
                        rows)


def memory_table(procs):
    rows = []
    for base, mode, cmd, runs in groups(procs):
        objects = med(runs, "objects")
        mapped = med(runs, "mapped")
        rise = median([r["hwm_during"] - r["rss_before"] for r in runs])
        back = [r["rss_after"] - r["rss_before"] for r in runs]
        reset = all(r["hwm_reset"] for r in runs)  # else VmHWM is the process's lifetime peak
        rows.append([k(base) + "+site", mode, cmd, "%.1f" % (mapped / 2**20), "%.1f" % (mapped / objects),
                     mb(med(runs, "rss_before")), mb(med(runs, "hwm_during")) + ("" if reset else " (not reset)"),
                     "%+.1f" % (rise / 1024.0) if reset else "n/a", "%.1f" % (rise * 1024.0 / objects) if reset
                     else "n/a", " ".join("%+d" % b for b in back)])
    return common.table(["heap built", "mode", "command", "walk mapped MB", "mapped B/object", "RSS before MB",
                         "VmHWM during MB", "rise during MB", "rise B/object", "RSS after - before KB (each run)"],
                        rows)


def raw_lines(procs):
    out = []
    for (base, mode), p in procs:
        if "error" in p:
            out.append("%s+site %s: FAILED: %s" % (k(base), mode, p["error"]))
            continue
        out.append("%s+site %s: attach %.0f ms; idle 0.5 s: Py gap %.1f ms, C gap %.1f ms"
                   % (k(base), mode, p["attach_ms"], p["idle"][0], p["idle"][1]))
        for r in p["runs"]:
            extra = ""
            if "site_objects" in r:
                extra = " site %d objects / %d records" % (r["site_objects"], r["site_records"])
            if "gc" in r:
                extra += "; " + r["gc"]
            out.append("  %-24s %8d obj (%d gc) %-9s walk %7.1f wall %7.1f mapped %6.1f MB  RSS %s / HWM %s%s "
                       "/ %s MB  Py %6.1f C %5.1f%s"
                       % (r["cmd"], r["objects"], r["gc_objects"], r["result"], r["walk_ms"], r["wall_ms"],
                          r["mapped"] / 2**20, mb(r["rss_before"]), mb(r["hwm_during"]),
                          "" if r["hwm_reset"] else " (not reset)", mb(r["rss_after"]), r["py_gap"], r["c_gap"],
                          extra))
    return out


def summary(results):
    rows = []
    for name, version, procs, largest in results:
        exact = dict(procs).get((largest, "exact"))
        if not exact or "error" in exact:
            rows.append([name, version] + ["-"] * 8)
            continue
        t = [r for r in exact["runs"] if r["cmd"] == "types"]
        b = [r for r in exact["runs"] if r["cmd"].startswith("types --max")]
        objects = med(t, "objects")
        rise = median([r["hwm_during"] - r["rss_before"] for r in t])
        rows.append([name, version, span(t, "objects"), "%.0f" % med(t, "walk_ms"),
                     "%.0f" % (med(t, "walk_ms") / (objects / 1e6)), "%.0f" % med(t, "py_gap"),
                     "%.1f / %.1f" % (med(t, "mapped") / objects, rise * 1024.0 / objects),
                     "%+d" % max(r["rss_after"] - r["rss_before"] for r in exact["runs"]),
                     "%s %s, %.0f ms, %.1f MB" % (span(b, "objects"), "/".join(sorted(set(r["result"] for r in b))),
                                                  med(b, "walk_ms"), med(b, "mapped") / 2**20) if b else "-"])
    return common.table(["interpreter", "version", "objects visited", "walk ms", "ms per 1M objects",
                         "Py-ticker gap ms", "walk memory B/object: mapped / RSS rise",
                         "worst RSS after - before KB", "--max-objects %d: visited, result, walk, mapped" % BOUND],
                        rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Debian's 3.11 only, 250K and 2M, 1 rep, no sampled")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default="250000,1000000,2000000", help="BASE objects per heap, comma-separated")
    ap.add_argument("--interpreters", default="debian-3.11,3.6,3.12,3.13")
    ap.add_argument("--no-sampled", action="store_true", help="skip the sampled-mode process (largest heap)")
    ap.add_argument("--markdown", help="append the Markdown tables to this file")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.sizes, args.interpreters, args.no_sampled = 1, "250000,2000000", "debian-3.11", True
    sizes = [int(s) for s in args.sizes.split(",")]
    largest = max(sizes)
    started = time.time()
    load0 = os.getloadavg()
    names = args.interpreters.split(",")
    found = common.available_interpreters(names)
    missing = [n for n in names if n not in dict(found)]
    out = []
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ticker = common.build_gap_ticker(tmp)
        for name, python in found:
            version = common.interpreter_version(python)
            log("heap_walk: %s (%s)" % (name, version))
            plan = [(base, "exact") for base in sizes]
            if not args.no_sampled:
                plan.append((largest, "sampled"))
            procs = []
            for base, mode in plan:
                log(" %s+site, %s" % (k(base), mode))
                try:
                    p = run_process(python, ticker, base, mode == "exact", args.reps,
                                    bound=(base == largest and mode == "exact"))
                except (RuntimeError, TimeoutError, ValueError, KeyError) as e:
                    log("  FAILED: %s" % e)
                    p = dict(error=str(e))
                procs.append(((base, mode), p))
            results.append((name, version, procs, largest))
            out.append("#### %s: %s (Python %s), %d rep%s\n"
                       % (name, python, version, args.reps, "" if args.reps == 1 else "s"))
            out.append("Time (medians over the reps; gaps also max):\n")
            out.append(time_table(procs))
            out.append("\nMemory (medians; the last column lists every run):\n")
            out.append(memory_table(procs))
            out.append("\nRaw rows:\n\n```")
            out += raw_lines(procs)
            out.append("```\n")
    out.insert(0, "#### Summary: largest heap (%s+site), exact mode, `memtap types`\n" % k(largest))
    out.insert(1, summary(results))
    load1 = os.getloadavg()
    out.insert(2, "\n\"+site\": every heap also holds the refs site (%d dicts {\"id\": int} = %dK objects) and the "
               "interpreter's own modules. Load average %.2f at start, %.2f at end (%d cores); %.0f s.%s\n"
               % (SITE_N, 2 * SITE_N // 1000, load0[0], load1[0], os.cpu_count(), time.time() - started,
                  " Not found: %s." % ", ".join(missing) if missing else ""))
    common.emit(out, args.markdown)


if __name__ == "__main__":
    main()
