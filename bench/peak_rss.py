"""Peak RSS with 2M live small objects, per configuration, and the agent's
own memory in sampled mode.

Each configuration is a fresh process of bench/targets/workload.py live N:
it keeps N one-element tuples alive (N=2,000,000). After the work, VmHWM is
read from /proc/PID/status while the objects are still alive. Configurations
as in churn.py: baseline, sampled, exact (--frames 1 and 16), tracemalloc
(PYTHONTRACEMALLOC=1). For memtap, `memtap status --json` gives agent_bytes
(the agent's own mappings) before and after the work.

Then, sampled mode only, the same workload at growing N shows whether
agent_bytes stays bounded as the live heap grows.

Usage: /usr/bin/python3 bench/peak_rss.py [--quick] [--reps N] [--interpreters ...] [--markdown FILE]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Child, log, median  # noqa: E402

CONFIGS = common.CONFIGS


def status(pid):
    return json.loads(common.memtap_or_throw(["status", "--json", str(pid)]).stdout)


def run_once(python, n, attach_args, extra_env):
    env = dict(os.environ)
    env.update(extra_env)
    with Child([python, os.path.join(common.TARGETS, "workload.py"), "live", str(n)], env=env) as t:
        t.read_line(60, "ready")
        before = None
        if attach_args is not None:
            common.memtap_or_throw(["attach", str(t.pid)] + attach_args)
            before = status(t.pid)
        t.send("go")
        t.read_line(300, "elapsed ")
        t.read_line(10, "done")
        hwm = common.vm_hwm_kb(t.pid)
        after = status(t.pid) if attach_args is not None else None
        t.send("exit")
        return hwm, before, after


def mb(kb):
    return "%.1f" % (kb / 1024.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, 3.11 only, fewer sizes")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--objects", type=int, default=2000000)
    ap.add_argument("--interpreters", default="3.11,3.13")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    sizes = [250000, 1000000, 2000000, 4000000]
    if args.quick:
        args.reps, args.interpreters, sizes = 1, "3.11", [250000, 2000000]
    out = []
    for name, python in common.available_interpreters(args.interpreters.split(",")):
        version = common.interpreter_version(python)
        hwm = {c[0]: [] for c in CONFIGS}
        agent = {}
        for rep in range(args.reps):
            for cname, attach_args, env in CONFIGS:
                h, before, after = run_once(python, args.objects, attach_args, env)
                hwm[cname].append(h)
                if after is not None:
                    agent[cname] = (before.get("agent_bytes"), after.get("agent_bytes"),
                                    after.get("traced_bytes"), after.get("traced_count"))
                log("peak_rss %s %s round %d: VmHWM %s MB" % (name, cname, rep + 1, mb(h)))
        base = median(hwm["baseline"])
        out.append("#### %s: %s (Python %s), %d live tuples, %d round%s\n"
                   % (name, python, version, args.objects, args.reps, "" if args.reps == 1 else "s"))
        rows = []
        for cname, _, _ in CONFIGS:
            m = median(hwm[cname])
            a = agent.get(cname)
            rows.append([cname, mb(m), "%.3fx" % (m / base), "%+.1f" % ((m - base) / 1024.0),
                         "%.1f / %.1f" % (a[0] / 2**20, a[1] / 2**20) if a else "-",
                         "%.1f MB in %d blocks" % (a[2] / 2**20, a[3]) if a else "-"])
        out.append(common.table(["configuration", "VmHWM MB (median)", "vs baseline", "MB over baseline",
                                 "agent_bytes MB before / after work", "traced (last round)"], rows))
        out.append("\nRaw VmHWM MB: " + "; ".join("%s %s" % (c, " ".join(mb(x) for x in hwm[c]))
                                                   for c, _, _ in CONFIGS))
        s = median(hwm["sampled"]) / base
        out.append("\nGoal sampled <= 1.05x peak RSS: %s (%.3fx).\n" % ("met" if s <= 1.05 else "MISSED", s))
        # sampled: agent_bytes as the live heap grows
        rows = []
        for n in sizes:
            h, before, after = run_once(python, n, [], {})
            rows.append([n, mb(h), "%.2f" % (before["agent_bytes"] / 2**20), "%.2f" % (after["agent_bytes"] / 2**20),
                         "%.1f" % (after["traced_bytes"] / 2**20), after["traced_count"]])
            log("peak_rss %s sampled agent_bytes N=%d: %d" % (name, n, after["agent_bytes"]))
        out.append("Sampled mode, agent's own memory as the live heap grows:\n")
        out.append(common.table(["live tuples", "VmHWM MB", "agent_bytes MB after attach",
                                 "agent_bytes MB after work", "traced_bytes MB (estimate)", "traced_count"],
                                rows))
        out.append("")
    common.emit(out, args.markdown)


if __name__ == "__main__":
    main()
