"""integration.refs.uwsgi_idle: `memtap refs` on a real, idle uWSGI worker
(Debian's uwsgi + python3 plugin, one worker, no --enable-threads: its main
thread holds the GIL in epoll_wait and allocates nothing, so no walk can run).

1. Idle: `refs --timeout 2` exits 6 after ~2 s with the progress line and the
   "did not run ... disarmed" message on stderr; the agent stays healthy;
   the next request is served and runs no walk (the agent's heap-walk-result
   still says "cancelled", never started: `memtap status` has no field for
   the walk, so the test asks the agent's control socket, protocol.h);
   detach leaves the worker as it was (same threads, no socket, serving).
2. A request ~0.5 s after the walk is armed (`refs --timeout 10`): the walk
   runs inside that request, on the worker's main thread, and refs exits 0
   naming the module-level list that holds exactly the Entry objects
   allocated at the SITE line since attach --exact.

Usage: refs_uwsgi_idle_test.py MEMTAP APP_FILE. Exit 77 without uWSGI or ptrace.
"""
import json
import os
import select
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uwsgi_worker  # noqa: E402
from uwsgi_worker import threads  # noqa: E402

MEMTAP, APP = sys.argv[1:3]
uwsgi_worker.skip_without_uwsgi()
failures = []


def check(condition, message, *details):
    if not condition:
        failures.append(message + "".join("\n--- " + str(d) for d in details))
    return condition


def memtap(*args):
    return subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True, timeout=60)


def socket_path(pid):
    return "/proc/%d/root/tmp/memtap-%d.sock" % (pid, pid)


def walk_state(pid):
    """The agent's heap-walk-result keys (src/agent/protocol.h), without the walk's lines."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(socket_path(pid))
        s.sendall(b"heap-walk-result\n")
        data = b""
        while b"\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise AssertionError("the agent closed the connection: %r" % data)
            data += chunk
        head, rest = data.split(b"\n", 1)
        word, size = head.decode().split(" ", 1)
        if word != "ok":
            raise AssertionError("heap-walk-result: %s" % head.decode())
        while len(rest) < int(size):
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("short heap-walk-result reply")
            rest += chunk
    state = {}
    for line in rest.decode().splitlines():
        key, _, value = line.partition(" ")
        if key.startswith("heap_walk_"):
            state[key] = value
    return state


def run_timed(argv, timeout):
    """Runs argv; returns (exit code, stdout, [(seconds since start, stderr line)], seconds taken)."""
    started = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines, pending, out = [], b"", b""
        streams = [p.stdout, p.stderr]
        while streams:
            left = started + timeout - time.monotonic()
            if left <= 0:
                raise AssertionError("%s ran longer than %d s" % (" ".join(argv), timeout))
            for f in select.select(streams, [], [], left)[0]:
                chunk = os.read(f.fileno(), 65536)
                if not chunk:
                    streams.remove(f)
                elif f is p.stdout:
                    out += chunk
                else:
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        lines.append((time.monotonic() - started, line.decode() + "\n"))
        if pending:
            lines.append((time.monotonic() - started, pending.decode()))
        rc = p.wait(timeout=max(1, started + timeout - time.monotonic()))
        return rc, out.decode(), lines, time.monotonic() - started
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()


def healthy(pid, what):
    s = memtap("status", pid, "--json", "--timeout", "0.5")
    if not check(s.returncode == 0, "%s: status failed (%d)" % (what, s.returncode), s.stderr):
        return {}
    j = json.loads(s.stdout)
    check(j.get("attached") is True and j.get("hooks") == "installed" and j.get("hook_chain") == "intact"
          and "hook_problem" not in j, "%s: the agent is not healthy" % what, s.stdout)
    return j


def left_as_it_was(worker, before_threads, held, what):
    check(threads(worker) == before_threads, "%s: thread ids after detach differ from before attach" % what,
          before_threads, threads(worker))
    check(not os.path.exists(socket_path(worker)), "%s: the agent's socket is left after detach" % what)
    s = memtap("status", worker, "--json")
    check(s.returncode == 0 and json.loads(s.stdout).get("attached") is False,
          "%s: still attached after detach" % what, s.stdout, s.stderr)
    state = get("/state")
    check(state["pid"] == worker and state["held"] == held, "%s: the worker after detach: %r, want %d held"
          % (what, state, held))


uwsgi = uwsgi_worker.Master(APP)
get = uwsgi.get
refs = None
try:
    start = uwsgi.wait_serving("/state")
    workers = uwsgi.workers()
    assert workers == [start["pid"]], (workers, start)
    worker = workers[0]
    site = "uwsgi_refs_app.py:%d" % start["site_line"]
    module = start["module"]
    held = start["held"]
    per_request = start["per_request"]
    before_threads = threads(worker)

    # 1. Idle worker: the walk cannot run, refs gives up after --timeout.
    a = memtap("attach", worker)
    if a.returncode == 5:
        print("SKIP: ptrace is not allowed here: " + a.stderr.strip())
        sys.exit(77)
    assert a.returncode == 0, "attach failed: %s" % a.stderr
    time.sleep(0.3)  # the worker is idle in epoll_wait from here on
    rc, out, lines, took = run_timed([MEMTAP, "refs", str(worker), site, "--timeout", "2"], 60)
    err = "".join(line for _, line in lines)
    print("refs on the idle worker: exit %d after %.2f s\n%s" % (rc, took, err.strip()))
    check(rc == 6, "refs on an idle worker must exit 6 (timeout), not %d" % rc, err)
    check(2.0 <= took < 4.0, "refs --timeout 2 returned after %.2f s" % took)
    check(out == "", "refs printed a result on a timeout", out)
    waiting = ("memtap: waiting for a thread of process %d holding the GIL to allocate (an idle worker runs "
               "the walk at its next request)" % worker)
    gave_up = ("memtap: error: no thread of process %d holding the GIL allocated within 2.0 s, so the heap "
               "walk did not run; it was disarmed and nothing is left in the target" % worker)
    said = [(t, line) for t, line in lines if line.startswith(waiting)]
    verdict = [(t, line) for t, line in lines if line.startswith(gave_up)]
    check(len(said) == 1, "want one progress line while waiting", err)
    check(len(verdict) == 1 and lines[-1] == verdict[0], "the last line must say the walk did not run", err)
    # The progress line comes while refs waits (memtap says so after 1 s), not with the verdict.
    check(said and said[0][0] < took - 0.5, "the progress line came only at the end (%s of %.2f s)"
          % (said and "%.2f s" % said[0][0], took), err)
    w = walk_state(worker)
    check(w.get("heap_walk_state") == "cancelled" and w.get("heap_walk_started_unix_ms") == "0"
          and w.get("heap_walk_thread") == "0", "after the timeout the walk is not disarmed", w)
    seen = healthy(worker, "after the timeout").get("allocations_seen", 0)
    # The next request is served and runs no walk: the walk was disarmed.
    served = get("/add")
    held += per_request
    check(served["pid"] == worker and served["held"] == held, "the request after the timeout: %r" % served)
    w = walk_state(worker)
    print("walk after the next request: %r" % w)
    check(w.get("heap_walk_state") == "cancelled" and w.get("heap_walk_started_unix_ms") == "0"
          and w.get("heap_walk_thread") == "0", "the request after the timeout ran the disarmed walk", w)
    after = healthy(worker, "after the request").get("allocations_seen", 0)
    check(after > seen, "the hooks saw no allocation of the request (%d -> %d)" % (seen, after))
    d = memtap("detach", worker)
    check(d.returncode == 0, "detach failed (%d)" % d.returncode, d.stderr)
    left_as_it_was(worker, before_threads, held, "idle")

    # 2. A request while refs waits: the walk runs inside it and refs exits 0.
    a = memtap("attach", "--exact", worker)
    assert a.returncode == 0, "attach --exact failed: %s" % a.stderr
    check(len(threads(worker)) == len(before_threads) + 1, "no agent thread while attached", threads(worker))
    traced = 0
    for _ in range(2):
        served = get("/add")
        held += per_request
        traced += per_request
        check(served["held"] == held, "GET /add: %r, want %d held" % (served, held))
    refs = subprocess.Popen([MEMTAP, "refs", str(worker), site, "--json", "--timeout", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while walk_state(worker).get("heap_walk_state") != "armed":
        if time.monotonic() > deadline or refs.poll() is not None:
            raise AssertionError("refs did not arm a walk")
        time.sleep(0.02)
    time.sleep(0.5)
    check(walk_state(worker).get("heap_walk_state") == "armed", "the walk ran on an idle worker")
    sent_ms = int(time.time() * 1000)
    state = get("/state", timeout=15)
    check(state["pid"] == worker and state["held"] == held, "the request during the walk: %r" % state)
    out, err = refs.communicate(timeout=30)
    print("refs with a request during the wait: exit %d\n%s" % (refs.returncode, err.strip()))
    if check(refs.returncode == 0,
             "refs with a request during the wait must exit 0, not %d" % refs.returncode, out, err):
        j = json.loads(out)
        entries = [c for c in j["chains"] if c["links"][-1]["type"] == module + ".Entry"]
        total = sum(c["objects"] for c in entries)
        holders = set(c["holder"] for c in entries)
        print("%d Entry objects reached, held by %s" % (total, sorted(holders)))
        # Entry instances come from no free list: exactly those allocated since attach --exact.
        check(total == traced, "%d Entry objects reached, want %d" % (total, traced), out)
        check(holders == {module + ".HELD"}, "holders %s, want {%s.HELD}" % (holders, module), out)
    w = walk_state(worker)
    print("walk after refs: %r (request sent at %d ms)" % (w, sent_ms))
    check(w.get("heap_walk_state") == "done" and w.get("heap_walk_thread") == str(worker)
          and int(w.get("heap_walk_started_unix_ms", 0)) >= sent_ms,
          "the walk did not run inside the request (on the worker's main thread %d, at or after %d ms)"
          % (worker, sent_ms), w)
    healthy(worker, "after the walk")
    d = memtap("detach", worker)
    check(d.returncode == 0, "detach failed (%d)" % d.returncode, d.stderr)
    left_as_it_was(worker, before_threads, held, "after the walk")
finally:
    if refs is not None and refs.poll() is None:
        refs.kill()
    if refs is not None:
        refs.wait()
    uwsgi.close()

if failures:
    print("FAILED:\n" + "\n\n".join(failures))
    sys.exit(1)
print("idle uWSGI worker: refs times out cleanly and disarms; a request runs the walk")
