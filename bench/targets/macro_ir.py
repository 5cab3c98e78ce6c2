#!/usr/bin/env python3
"""macro_target's workloads, each run once for warm-up and then --reps times
between two os.getppid() calls, in one of six setups: unhooked, hooks that
only forward (passthrough_hooks.c, the floor under any PEP 445 hook), memtap's
agent started in this process (sampled, exact --frames 1, exact 16 frames:
the same library and entry point an attach calls, without ptrace, so the
process can run under valgrind), or tracemalloc.start(1). Run under
`valgrind --tool=callgrind --dump-before=getppid`, every getppid() ends one
profile part: the part after a workload's runs holds exactly their
instructions (bench/instructions.py reads them).

Usage: macro_ir.py SETUP LIBRARY REPS   (SETUP: unhooked passthrough sampled exact-f1 exact tracemalloc;
                                         LIBRARY: the agent, or for passthrough the built passthrough_hooks.c)
Prints "workloads NAME ..." first, in the order they run.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "agent"))
import macro_target  # noqa: E402
import passthrough  # noqa: E402


def start(setup, agent_so):
    if setup == "passthrough":
        passthrough.install(agent_so)
        return None
    if setup == "tracemalloc":
        import tracemalloc
        tracemalloc.start(1)
        return None
    if setup == "unhooked":
        return None
    import agent_client as ac
    agent = ac.Agent(agent_so)
    mode = ac.MODE_SAMPLED if setup == "sampled" else ac.MODE_EXACT
    frames = 1 if setup == "exact-f1" else 16
    rc = agent.start(agent.make_args(mode=mode, frames=frames, module=ac.libpython_path()))
    if rc != ac.START_OK:
        sys.exit("agent start returned %d" % rc)
    return agent


def main():
    setup, agent_so, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    agent = start(setup, agent_so)
    print("workloads " + " ".join(name for name, _ in macro_target.WORKLOADS), flush=True)
    for name, fn in macro_target.WORKLOADS:
        fn()  # warm-up: imports, caches, free lists
        os.getppid()  # ends the part with the warm-up
        for _ in range(reps):
            fn()
        os.getppid()  # ends the part with the measured runs
    if agent is not None:
        agent.detach()


if __name__ == "__main__":
    main()
