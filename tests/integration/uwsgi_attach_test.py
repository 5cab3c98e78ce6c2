"""memtap against a real uWSGI worker (Debian's uwsgi + python3 plugin) under
Debian's default config: no --enable-threads, so the worker's main thread holds
the GIL while idle in epoll_wait. Attach must complete without a request, and
the worker must serve on with its state intact. harakiri is on (2 s): holding
a worker stopped for long would get it killed and the test would see a new PID.

Usage: uwsgi_attach_test.py MEMTAP APP_FILE
"""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uwsgi_worker  # noqa: E402

MEMTAP, APP = sys.argv[1:3]
uwsgi_worker.skip_without_uwsgi()


def memtap(*args, check=True):
    p = subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("memtap %s failed (%d): %s" % (" ".join(map(str, args)), p.returncode, p.stderr))
    return p


def agent_status(pid):
    return json.loads(memtap("status", pid, "--json").stdout)


uwsgi = uwsgi_worker.Master(APP, "--harakiri", "2")
get = uwsgi.get
failures = []
try:
    uwsgi.wait_serving("/state")
    for _ in range(50):
        get("/")
    workers = uwsgi.workers()
    assert len(workers) == 1, workers
    worker = workers[0]
    before = get("/state")
    assert before["pid"] == worker

    # The master: memtap explains that the workers do the work (exit 2).
    p = memtap("attach", uwsgi.pid, check=False)
    if p.returncode != 2 or str(worker) not in p.stderr or "uWSGI master" not in p.stderr:
        failures.append("master not explained: %d %r" % (p.returncode, p.stderr))

    # Idle worker, no request in flight: attach completes on its own.
    started = time.monotonic()
    memtap("attach", worker, "--timeout", "5")
    took = time.monotonic() - started
    print("attach to idle worker %d: %.0f ms" % (worker, took * 1000))
    status = agent_status(worker)
    if not status["attached"] or status["hooks"] != "installed":
        failures.append("not attached: %r" % status)
    seen_idle = status["allocations_seen"]
    for _ in range(50):
        get("/")
    seen_after = agent_status(worker)["allocations_seen"]
    if seen_after <= seen_idle:
        failures.append("hooks saw no allocations from requests (%d -> %d)" % (seen_idle, seen_after))
    memtap("detach", worker)
    after = get("/state")
    if after["pid"] != worker or after["counter"] != before["counter"] + 50 or after["cache"] == "":
        failures.append("worker state after detach: before %r after %r" % (before, after))
    if agent_status(worker)["attached"]:
        failures.append("still attached after detach")

    # Under load: a client hammers the worker while we attach and detach 5 times.
    stop = threading.Event()
    errors = []
    served = [0]

    def load():
        while not stop.is_set():
            try:
                get("/", timeout=5)
                served[0] += 1
            except Exception as e:  # any failed request is a test failure
                errors.append(repr(e))

    client = threading.Thread(target=load)
    client.start()
    try:
        time.sleep(0.3)
        for i in range(5):
            memtap("attach", worker, "--timeout", "5")
            time.sleep(0.2)
            memtap("detach", worker)
    finally:
        stop.set()
        client.join(10)
    print("served %d requests under load, %d errors" % (served[0], len(errors)))
    if errors:
        failures.append("requests failed during attach/detach: %s" % errors[:3])
    final = get("/state")
    if final["pid"] != worker or uwsgi.workers() != [worker]:
        failures.append("the worker was replaced (harakiri or crash): %r" % final)
    if final["counter"] != after["counter"] + served[0]:
        failures.append("counter %d != %d + %d" % (final["counter"], after["counter"], served[0]))
finally:
    uwsgi.close()

if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print("uWSGI worker: attach idle and under load, state intact")
