"""Issue 8 item 2: pymalloc's figures need the interpreter, and an idle uWSGI
worker without threads never gives it (its main thread holds the GIL in
epoll_wait and allocates nothing). `memtap status --timeout 1` must say it
is waiting for the interpreter, return within ~1.5 s with exit 0 and the rest
of the figures; the read must come with the worker's next request; after
detach the worker has the threads it had before attach and serves on.

Usage: rss_uwsgi_test.py MEMTAP APP_FILE. Exit 77 without uWSGI or ptrace.
"""
import json
import os
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


uwsgi = uwsgi_worker.Master(APP)
get = uwsgi.get
try:
    uwsgi.wait_serving("/state")
    worker = uwsgi.workers()[0]
    before_threads = threads(worker)
    a = memtap("attach", worker, "--timeout", "5")
    if a.returncode == 5:
        print("SKIP: ptrace is not allowed here: " + a.stderr.strip())
        sys.exit(77)
    check(a.returncode == 0, "attach failed", a.stderr)
    time.sleep(0.3)  # the worker is idle in epoll_wait from here on

    started = time.monotonic()
    s = memtap("status", worker, "--timeout", "1")
    took = time.monotonic() - started
    print("status on the idle worker: %.0f ms, exit %d\n%s" % (took * 1000, s.returncode, s.stdout))
    check(s.returncode == 0, "status must exit 0 when only pymalloc is missing", s.returncode, s.stderr)
    check(took < 1.5, "status took %.2f s with --timeout 1" % took)
    check("waiting for the interpreter; it runs when the worker gets its next request" in s.stdout,
          "status does not say it waits for the interpreter", s.stdout)
    check("rss:" in s.stdout and "glibc malloc:" in s.stdout, "the rest of the figures is missing", s.stdout)
    j = json.loads(memtap("status", worker, "--json", "--timeout", "0.5").stdout)
    check(j.get("pymalloc", {}).get("state") == "not_read", "JSON pymalloc state", j.get("pymalloc"))

    # The armed read runs when the worker next allocates: during a request.
    get("/")
    j = json.loads(memtap("status", worker, "--json", "--timeout", "1").stdout)
    py = j.get("pymalloc", {})
    print("after one request: %r" % py)
    check(py.get("state") == "read" and py.get("arenas", 0) > 0, "no pymalloc read after a request", py)

    memtap("status", worker, "--timeout", "0.2")  # leave a read armed, then detach
    d = memtap("detach", worker)
    check(d.returncode == 0, "detach failed", d.stderr)
    after_threads = threads(worker)
    check(after_threads == before_threads, "thread ids after detach differ from before attach",
          before_threads, after_threads)
    check(get("/")["pid"] == worker, "the worker does not serve after detach")
finally:
    uwsgi.close()

if failures:
    print("FAILED:\n" + "\n\n".join(failures))
    sys.exit(1)
print("idle uWSGI worker: status waits at most --timeout, read on the next request, no thread left")
