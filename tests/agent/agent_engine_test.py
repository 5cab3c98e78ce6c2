"""agent.engine: what the snapshot attributes, checked against tracemalloc
on the same interpreter.

Usage: python agent_engine_test.py AGENT_SO
"""
import gc
import os
import sys
import threading
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_client as ac  # noqa: E402

THIS_FILE = os.path.abspath(__file__)
BURST_OBJECTS = 10000
BURST_SIZE = 1000


def burst(count, size):
    return [bytes(size) for _ in range(count)]  # BURST LINE


BURST_LINENO = burst.__code__.co_firstlineno + 1


def grown(count, size):
    """Buffers that reach their size by realloc: a bytearray's buffer starts
    in a pymalloc pool and moves past 512 bytes, where pymalloc takes the
    new block from the raw domain (through the raw hook again)."""
    out = []
    for _ in range(count):
        b = bytearray(64)
        b += bytes(size - 64)  # GROWN LINE
        out.append(b)
    return out


def shrunk(count, size):
    """Buffers that shrink by realloc below 480 bytes from a block pymalloc
    does not manage (over 512 bytes): pymalloc passes such a realloc to
    PyMem_RawRealloc, through the raw hook again."""
    out = []
    for _ in range(count):
        b = bytearray(4096)
        del b[size:]  # SHRUNK LINE
        out.append(b)
    return out


def marked_line(marker):
    with open(THIS_FILE) as source:
        return next(n for n, line in enumerate(source, 1) if line.rstrip().endswith(marker))


GROWN_LINENO = marked_line("# GROWN LINE")
SHRUNK_LINENO = marked_line("# SHRUNK LINE")


def tracemalloc_burst_bytes(count, size):
    """tracemalloc's compare_to for the burst line."""
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    data = burst(count, size)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    del data
    for stat in after.compare_to(before, "lineno"):
        frame = stat.traceback[0]
        if frame.lineno == BURST_LINENO and os.path.abspath(frame.filename) == THIS_FILE:
            return stat.size_diff, stat.count_diff
    ac.fail("tracemalloc did not see the burst line")


def line_totals(traces, lineno):
    """Bytes and count whose most recent frame is THIS_FILE:lineno (the
    function is "burst", or "<listcomp>" before 3.12)."""
    size = count = 0
    for t_size, t_count, frames in traces:
        if frames and frames[0][0] == lineno and os.path.abspath(frames[0][1]) == THIS_FILE:
            size += t_size
            count += t_count
    return size, count


def snapshot(agent):
    ok, text = agent.request("snapshot")
    ac.check(ok, "snapshot refused: %s" % text)
    return ac.parse_snapshot(text)


def within(value, expected, tolerance):
    return abs(value - expected) <= tolerance * expected


def exact_mode(agent, module):
    expected_size, expected_count = tracemalloc_burst_bytes(BURST_OBJECTS, BURST_SIZE)
    gc.collect()
    rc = agent.start(agent.make_args(mode=ac.MODE_EXACT, frames=4, module=module))
    ac.check(rc == ac.START_OK, "exact start returned %d" % rc)
    data = burst(BURST_OBJECTS, BURST_SIZE)
    header, traces = snapshot(agent)
    ac.check(header["mode"] == "exact", "mode %r" % header["mode"])
    size, count = line_totals(traces, BURST_LINENO)
    ac.check(within(size, expected_size, 0.05),
             "exact: burst line %d bytes, tracemalloc %d" % (size, expected_size))
    ac.check(within(count, expected_count, 0.05),
             "exact: burst line %d blocks, tracemalloc %d" % (count, expected_count))
    ac.check(int(header["traced_bytes"]) >= size, "traced_bytes below the burst")
    # The caller's frame follows (3.6-3.11 put a <listcomp> frame between).
    for t_size, _, frames in traces:
        if frames and frames[0][0] == BURST_LINENO and len(frames) > 1:
            callers = [f[2] for f in frames[1:3]]
            ac.check("exact_mode" in callers, "caller frames %r" % (frames,))
            break
    del data
    gc.collect()
    _, traces = snapshot(agent)
    size, count = line_totals(traces, BURST_LINENO)
    ac.check(size < expected_size * 0.01, "freed burst still shows %d bytes" % size)

    # Names are escaped as protocol.h says.
    code = compile("def weird():\n    return [bytes(50000) for _ in range(20)]\n",
                   "dir\\odd\tname\nfile.py", "exec")
    space = {}
    exec(code, space)
    kept = space["weird"]()
    _, traces = snapshot(agent)
    names = set(f[1] for _, _, frames in traces for f in frames)
    ac.check("dir\\odd\tname\nfile.py" in names, "escaped file name not found: %r" % sorted(names)[:20])
    del kept
    agent.detach()


def sampled_mode(agent, module):
    mean = 64 * 1024
    count_objects, size = 8000, 4096  # 32 MiB
    expected = count_objects * size
    gc.collect()
    rc = agent.start(agent.make_args(mode=ac.MODE_SAMPLED, frames=4, sample_bytes=mean, module=module))
    ac.check(rc == ac.START_OK, "sampled start returned %d" % rc)
    st = agent.status()
    ac.check(st["mode"] == "sampled" and st["sample_bytes"] == str(mean), "status %r" % st)
    data = burst(count_objects, size)
    header, traces = snapshot(agent)
    ac.check(header["mode"] == "sampled", "mode %r" % header["mode"])
    est_size, est_count = line_totals(traces, BURST_LINENO)
    ac.check(within(est_size, expected, 0.25),
             "sampled: burst line estimated %d bytes, allocated ~%d" % (est_size, expected))
    ac.check(within(est_count, count_objects, 0.25),
             "sampled: burst line estimated %d blocks, allocated %d" % (est_count, count_objects))
    del data
    gc.collect()
    _, traces = snapshot(agent)
    est_size, _ = line_totals(traces, BURST_LINENO)
    ac.check(est_size < expected * 0.05, "sampled: freed burst still shows %d bytes" % est_size)
    # Grown by realloc: counted once, not once per hook the call passes.
    data = grown(count_objects, size)
    _, traces = snapshot(agent)
    est_size, _ = line_totals(traces, GROWN_LINENO)
    ac.check(within(est_size, expected, 0.25),
             "sampled: realloc'd buffers estimated %d bytes, grown to ~%d" % (est_size, expected))
    del data
    shrink_count, shrink_size = 40000, 400
    data = shrunk(shrink_count, shrink_size)
    _, traces = snapshot(agent)
    est_size, _ = line_totals(traces, SHRUNK_LINENO)
    held = sum(sys.getsizeof(b) - sys.getsizeof(bytearray()) for b in data[:100]) * shrink_count // 100
    ac.check(within(est_size, held, 0.25),
             "sampled: buffers shrunk by realloc estimated %d bytes, hold ~%d" % (est_size, held))
    del data
    agent.detach()
    print("sampled: estimate ok (mean %d)" % mean)


# thread_state.h: in sampled mode a thread's fast-path calls reach
# allocations_seen at least every kBudgetBytes (16 KiB) it allocates, not
# only at its sample points (512 KiB apart by default, which 3000 small
# objects rarely reach).
COUNT_LAG_OBJECTS = 3000
COUNT_LAG_BYTES = 16 * 1024
COUNT_LAG_BATCH = 64


def allocate_then_idle(count, keep, done):
    keep.extend(bytes(40) for _ in range(count))  # ~73-byte objects: obj-domain fast path
    done.set()


def sampled_count_lag(agent, module):
    rc = agent.start(agent.make_args(mode=ac.MODE_SAMPLED, frames=4, module=module))
    ac.check(rc == ac.START_OK, "sampled start returned %d" % rc)
    object_bytes = sys.getsizeof(bytes(40))
    bound = COUNT_LAG_BYTES // object_bytes + COUNT_LAG_BATCH
    for round_ in range(4):
        keep, done = [], threading.Event()
        seen = int(agent.status()["allocations_seen"])
        worker = threading.Thread(target=allocate_then_idle, args=(COUNT_LAG_OBJECTS, keep, done))
        worker.start()
        done.wait()
        after = int(agent.status()["allocations_seen"])
        ac.check(after - seen >= COUNT_LAG_OBJECTS - bound,
                 "sampled: a thread's %d allocations raised allocations_seen by %d (round %d); "
                 "it may lag by at most %d" % (COUNT_LAG_OBJECTS, after - seen, round_, bound))
        worker.join()
    agent.detach()
    print("sampled: allocations_seen lags by at most %d calls a thread" % bound)


def peak_a(count):
    return [bytes(100000) for _ in range(count)]  # PEAK A


def peak_b(count):
    return [bytes(100000) for _ in range(count)]  # PEAK B


def peak_mode(agent, module):
    """The breakdown at the traced peak (engine.cpp "Peak"): a new high
    reached after a drop is copied even when it is barely above the old one,
    and peak-reset starts over from what is traced now."""
    line_a = peak_a.__code__.co_firstlineno + 1
    line_b = peak_b.__code__.co_firstlineno + 1
    gc.collect()
    rc = agent.start(agent.make_args(mode=ac.MODE_EXACT, frames=1, module=module))
    ac.check(rc == ac.START_OK, "start returned %d" % rc)
    data = peak_a(400)  # 40 MB at line A
    size_a = sum(sys.getsizeof(b) for b in data)
    del data
    gc.collect()
    ok, text = agent.request("snapshot peak")
    ac.check(ok, "snapshot peak refused: %s" % text)
    header, traces = ac.parse_snapshot(text)
    at_a, _ = line_totals(traces, line_a)
    ac.check(at_a >= 0.98 * size_a, "peak after A: line A %d of %d" % (at_a, size_a))
    # B: a new high only 1% above A's, with nothing of A left. The breakdown
    # must move to B, though the new high is within 1/64 of the copied one.
    data = peak_b(404)
    size_b = sum(sys.getsizeof(b) for b in data)
    del data
    gc.collect()
    st = agent.status()
    header, traces = ac.parse_snapshot(agent.request("snapshot peak")[1])
    at_a, _ = line_totals(traces, line_a)
    at_b, _ = line_totals(traces, line_b)
    peak = int(st["peak_traced_bytes"])
    ac.check(peak >= size_b, "peak_traced_bytes %d below B's %d" % (peak, size_b))
    ac.check(at_b >= 0.80 * size_b and at_a <= 0.05 * size_a,
             "peak after B: line B %d of %d, line A %d" % (at_b, size_b, at_a))
    breakdown = int(header["traced_bytes"])
    ac.check(peak - max(peak // 64, 1 << 20) <= breakdown <= peak,
             "breakdown total %d, peak %d: more than the documented bound apart" % (breakdown, peak))
    ac.check(int(st["peak_breakdown_bytes"]) == breakdown, "status %r vs snapshot %d" % (st, breakdown))
    now_ms = time.time() * 1000
    ac.check(now_ms - 10000 <= int(st["peak_unix_ms"]) <= now_ms + 100, "peak_unix_ms %s" % st["peak_unix_ms"])
    ok, text = agent.request("peak-reset")
    ac.check(ok and text == "", "peak-reset: %r" % text)
    st = agent.status()
    header, traces = ac.parse_snapshot(agent.request("snapshot peak")[1])
    ac.check(int(st["peak_traced_bytes"]) < int(st["traced_bytes"]) + (1 << 20),
             "after peak-reset: %r" % st)
    ac.check(line_totals(traces, line_b)[0] <= 0.05 * size_b, "after peak-reset line B is still at the peak")
    agent.detach()
    print("peak: A %d, B %d at peak %d (breakdown %d)" % (size_a, at_b, peak, breakdown))


def snapshot_cost(agent, module):
    """Snapshot time with many live traced allocations (exact mode)."""
    rc = agent.start(agent.make_args(mode=ac.MODE_EXACT, frames=4, module=module))
    ac.check(rc == ac.START_OK, "start returned %d" % rc)
    data = [str(i) for i in range(300000)]
    st = agent.status()
    t0 = time.time()
    header, traces = snapshot(agent)
    elapsed = time.time() - t0
    ac.check(int(st["traced_count"]) >= 300000, "traced_count %s" % st["traced_count"])
    ac.check(elapsed < 1.0, "snapshot took %.3f s" % elapsed)
    print("snapshot of %s traced blocks, %d tracebacks: %.1f ms"
          % (st["traced_count"], len(traces), elapsed * 1000))
    del data
    agent.detach()


def main():
    agent = ac.Agent(sys.argv[1])
    original = ac.get_allocators()
    module = ac.libpython_path()
    st = None
    rc = agent.start(agent.make_args(module=module))
    ac.check(rc == ac.START_OK, "start returned %d" % rc)
    st = agent.status()
    agent.detach()
    if st.get("frame_capture") != "yes":
        print("frame capture unavailable on %s: skipping" % sys.version.split()[0])
        sys.exit(ac.SKIP)
    exact_mode(agent, module)
    sampled_mode(agent, module)
    sampled_count_lag(agent, module)
    peak_mode(agent, module)
    snapshot_cost(agent, module)
    ac.check(ac.get_allocators() == original, "allocators differ at the end")
    os.rmdir(agent.dir)
    print("ok: %s" % sys.version.split()[0])


if __name__ == "__main__":
    main()
