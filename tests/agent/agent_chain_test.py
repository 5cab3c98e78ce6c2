"""agent.chain: another PyMem_SetAllocator caller changes the chain under us.

tracemalloc is the caller: started before the attach and stopped while
attached, it puts back the allocators it saved and so cuts our hooks out;
started after the attach, it wraps them and still calls them. The agent must
tell the two apart (status keys hooks, hook_chain, hook_reinstalls), install
its hooks again after a cut, and leave the allocators as the program expects
at detach.

Usage: python agent_chain_test.py AGENT_SO
"""
import os
import sys
import threading
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_client as ac  # noqa: E402

THIS_FILE = os.path.abspath(__file__)
BURST_OBJECTS = 5000
BURST_SIZE = 1000
DOMAINS = ("raw", "mem", "obj")


def burst(count, size):
    return [bytes(size) for _ in range(count)]  # BURST LINE


BURST_LINENO = burst.__code__.co_firstlineno + 1


def burst_bytes(agent):
    """Bytes the agent attributes to the burst line (or traced_bytes when this
    interpreter gives no frames)."""
    ok, text = agent.request("snapshot")
    ac.check(ok, "snapshot refused: %s" % text)
    header, traces = ac.parse_snapshot(text)
    if not FRAMES:
        return int(header["traced_bytes"])
    size = 0
    for t_size, _, frames in traces:
        if frames and frames[0][0] == BURST_LINENO and os.path.abspath(frames[0][1]) == THIS_FILE:
            size += t_size
    return size


def sees_burst(agent):
    """A burst made now shows in the agent's snapshots."""
    before = burst_bytes(agent)
    data = burst(BURST_OBJECTS, BURST_SIZE)
    after = burst_bytes(agent)
    del data
    return after - before >= BURST_OBJECTS * BURST_SIZE


def cut_domains(before, tracing):
    """Domains tracemalloc wrapped (raw is wrapped when built with threads)."""
    return [DOMAINS[d] for d in range(3) if before[d] != tracing[d]]


def tracemalloc_works():
    """tracemalloc can start, traces an allocation made now, and stops."""
    tracemalloc.start()
    data = bytes(123456)
    tb = tracemalloc.get_object_traceback(data)
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return tb is not None and traced >= 123456


def start(agent, module):
    rc = agent.start(agent.make_args(module=module))
    ac.check(rc == ac.START_OK, "start returned %d" % rc)


def cut_while_attached(agent, module, original):
    """tracemalloc.start(); attach; tracemalloc.stop(): the cut."""
    tracemalloc.start()
    tracing = ac.get_allocators()
    cut = cut_domains(original, tracing)
    ac.check(cut, "tracemalloc.start() changed no allocator")
    start(agent, module)
    st = agent.status()
    ac.check(st["hook_chain"] == "intact" and st["hook_reinstalls"] == "0", "after attach: %r" % st)
    tracemalloc.stop()
    ac.check(ac.get_allocators() == original, "tracemalloc.stop() did not put back its saved allocators")

    # Made while cut: the agent cannot have seen these.
    unseen = burst(BURST_OBJECTS, BURST_SIZE)
    st = agent.status()
    ac.check(st["hooks"] == "installed", "hooks %r after the cut" % st["hooks"])
    ac.check(st["hook_chain"] == "intact", "hook_chain %r after re-install" % st["hook_chain"])
    ac.check(st["hook_reinstalls"] == "1", "hook_reinstalls %r" % st["hook_reinstalls"])
    ac.check(st["hook_reinstall_domains"] == ",".join(cut),
             "hook_reinstall_domains %r, tracemalloc had wrapped %r" % (st["hook_reinstall_domains"], cut))
    ac.check(int(st["hook_reinstall_unix_ms"]) > 0, "no re-install time: %r" % st)
    ac.check(ac.get_allocators() != original, "hooks not installed again")
    # Re-installed: what is allocated from now on is seen.
    seen = int(st["allocations_seen"])
    ac.check(sees_burst(agent), "a burst after the re-install was not traced")
    ac.check(int(agent.status()["allocations_seen"]) >= seen + BURST_OBJECTS, "allocations_seen stuck")
    del unseen

    # Now tracemalloc wraps us: our hook is still called, not lost.
    tracemalloc.start()
    st = agent.status()
    ac.check(st["hook_chain"] == "wrapped:" + ",".join(cut), "hook_chain %r under tracemalloc" % st["hook_chain"])
    ac.check(st["hook_reinstalls"] == "1", "wrapped counted as a re-install: %r" % st)
    ac.check(sees_burst(agent), "a burst under tracemalloc was not traced")
    data = bytes(654321)
    ac.check(tracemalloc.get_object_traceback(data) is not None, "tracemalloc over us traces nothing")
    del data
    tracemalloc.stop()
    st = agent.status()
    ac.check(st["hook_chain"] == "intact" and st["hook_reinstalls"] == "1", "after 2nd stop: %r" % st)
    agent.detach()
    ac.check(ac.get_allocators() == original, "allocators not restored after a re-install")
    ac.check(tracemalloc_works(), "tracemalloc broken after detach")
    ac.check(ac.get_allocators() == original, "allocators changed by the tracemalloc check")


def wrapped_from_the_start(agent, module, original):
    """attach; tracemalloc.start(); allocate; tracemalloc.stop(): never lost."""
    start(agent, module)
    tracemalloc.start()
    st = agent.status()
    ac.check(st["hook_chain"].startswith("wrapped:"), "hook_chain %r" % st["hook_chain"])
    ac.check(st["hooks"] == "installed" and st["hook_reinstalls"] == "0", "wrapped reported as %r" % st)
    ac.check(sees_burst(agent), "burst under tracemalloc not traced")
    tracemalloc.stop()
    st = agent.status()
    ac.check(st["hook_chain"] == "intact" and st["hook_reinstalls"] == "0", "after stop: %r" % st)
    ac.check(sees_burst(agent), "burst after tracemalloc.stop() not traced")
    agent.detach()
    ac.check(ac.get_allocators() == original, "allocators not restored")


def detach_while_cut(agent, module, original):
    """The cut is only found at detach: nothing of ours to remove; the next
    attach must not take the cut hook for a live one."""
    tracemalloc.start()
    start(agent, module)
    tracemalloc.stop()
    agent.detach()
    ac.check(ac.get_allocators() == original, "detach changed what tracemalloc.stop() put back")
    start(agent, module)
    ac.check(ac.get_allocators() != original, "re-attach installed nothing")
    st = agent.status()
    ac.check(st["hook_chain"] == "intact" and st["hook_reinstalls"] == "0", "re-attach: %r" % st)
    ac.check(sees_burst(agent), "re-attach after a cut traces nothing")
    agent.detach()
    ac.check(ac.get_allocators() == original, "allocators not restored")


def dormant_under_tracemalloc(agent, module, original):
    """Detach while wrapped leaves our hook in pass-through inside
    tracemalloc's chain; its stop puts our hook back on top; re-attach uses
    it, detach then restores the original."""
    start(agent, module)
    tracemalloc.start()
    agent.detach()
    ac.check(ac.get_allocators() != original, "detach cut tracemalloc's chain")
    ac.check(tracemalloc_traces_now(), "tracemalloc broken by a detach under it")
    tracemalloc.stop()
    start(agent, module)
    st = agent.status()
    ac.check(st["hook_chain"] == "intact" and st["hook_reinstalls"] == "0", "re-attach: %r" % st)
    ac.check(sees_burst(agent), "re-attach of the pass-through hook traces nothing")
    agent.detach()
    ac.check(ac.get_allocators() == original, "allocators not restored")


def tracemalloc_traces_now():
    data = bytes(77777)
    return tracemalloc.get_object_traceback(data) is not None


def exhausted(agent, module, original):
    """Every cut uses up one generation of hooks for good: once none is left
    the agent says so ("hooks lost") rather than claim it records, and
    detach still leaves the program's allocators."""
    lost_after = None
    for cycle in range(64):
        tracemalloc.start()
        start(agent, module)
        tracemalloc.stop()
        st = agent.status()
        if st["hooks"] == "lost":
            ac.check(st["hook_chain"].startswith("lost:"), "hooks lost but hook_chain %r" % st["hook_chain"])
            lost_after = cycle
            agent.detach()
            break
        ac.check(st["hook_chain"] == "intact" and st["hook_reinstalls"] == "1", "cycle %d: %r" % (cycle, st))
        agent.detach()
        ac.check(ac.get_allocators() == original, "cycle %d: allocators not restored" % cycle)
    ac.check(lost_after is not None and lost_after >= 8, "generations used up after %r cuts" % lost_after)
    ac.check(ac.get_allocators() == original, "allocators changed after running out")
    ac.check(tracemalloc_works(), "tracemalloc broken after running out")
    start(agent, module)
    st = agent.status()
    ac.check(st["hooks"] == "lost", "attach with no generation left says %r" % st["hooks"])
    agent.detach()
    ac.check(ac.get_allocators() == original, "allocators changed by a hookless attach")
    return lost_after


def churn(stop):
    keep = []
    while not stop.is_set():
        keep.append(bytes(300))
        keep.append(os.urandom(64))  # a raw-domain path without the GIL on some builds
        if len(keep) > 2000:
            keep = []


def under_load(agent, module, original, cycles):
    """Cuts and re-installs while other threads allocate: nothing crashes,
    and the allocators end as they began."""
    stop = threading.Event()
    threads = [threading.Thread(target=churn, args=(stop,)) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(cycles):
            tracemalloc.start()
            start(agent, module)
            tracemalloc.stop()
            ac.check(agent.status()["hook_reinstalls"] == "1", "no re-install under load")
            ok, text = agent.request("snapshot")
            ac.check(ok, "snapshot refused under load: %s" % text)
            tracemalloc.start()
            agent.status()
            tracemalloc.stop()
            agent.detach()
    finally:
        stop.set()
        for t in threads:
            t.join()
    ac.check(ac.get_allocators() == original, "allocators differ after the load run")


def main():
    global FRAMES
    agent = ac.Agent(sys.argv[1])
    module = ac.libpython_path()
    original = ac.get_allocators()
    start(agent, module)
    FRAMES = agent.status().get("frame_capture") == "yes"
    agent.detach()

    cut_while_attached(agent, module, original)
    wrapped_from_the_start(agent, module, original)
    detach_while_cut(agent, module, original)
    dormant_under_tracemalloc(agent, module, original)
    # Last: these use up the generations a cut costs.
    under_load(agent, module, original, cycles=4)
    lost_after = exhausted(agent, module, original)
    ac.check(ac.get_allocators() == original, "allocators differ at the end")
    os.rmdir(agent.dir)
    print("ok: %s, frames %s, generations used up after %d more cuts"
          % (sys.version.split()[0], FRAMES, lost_after))


FRAMES = False

if __name__ == "__main__":
    main()
