#!/usr/bin/env python3
"""integration.uwsgi_example: memtap finds the leak in examples/flask_uwsgi_leak
and leaves the worker as it was.

One worker, so every request reaches the process memtap is attached to.
Every wait is bounded; uWSGI is stopped and reaped whatever happens.
Exit 0 pass, 1 fail, 77 skipped (with the reason on stderr).
"""
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
MEMTAP = os.environ["MEMTAP"]
EXAMPLE = os.environ["MEMTAP_EXAMPLE_DIR"]
PLUGIN = "/usr/lib/uwsgi/plugins/python3_plugin.so"
NOT_PERMITTED = 5  # memtap's exit code for a denied ptrace
SNAPSHOT_DIR = tempfile.mkdtemp(prefix="memtap-uwsgi-example.")

spec = importlib.util.spec_from_file_location("drive", os.path.join(EXAMPLE, "drive.py"))
drive = importlib.util.module_from_spec(spec)
spec.loader.exec_module(drive)


class Skip(Exception):
    pass


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def memtap(*args, expect=0):
    # Snapshots go to this test's own directory (removed at the end).
    env = {**os.environ, "XDG_RUNTIME_DIR": SNAPSHOT_DIR}
    result = subprocess.run([MEMTAP, *map(str, args)], capture_output=True, text=True, timeout=60, env=env)
    if result.returncode == NOT_PERMITTED and args[0] == "attach":
        raise Skip(f"ptrace is not permitted here: {result.stderr.strip()}")
    check(result.returncode == expect,
          f"memtap {' '.join(map(str, args))}: exit {result.returncode}, expected {expect}\n{result.stderr}")
    return result.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orders(port, n):
    for i in range(n):
        drive.request(port, "POST", f"/orders?product={i % 8}", drive.BODY)


def state(port):
    _, data = drive.request(port, "GET", "/state")
    return json.loads(data)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def start_uwsgi(port, log):
    master = subprocess.Popen(
        ["uwsgi", "--ini", os.path.join(EXAMPLE, "uwsgi.ini"), "--workers", "1"],
        env={**os.environ, "MEMTAP_EXAMPLE_PORT": str(port)}, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        check(master.poll() is None, f"uWSGI exited at start with {master.returncode}")
        try:
            with open(f"/proc/{master.pid}/task/{master.pid}/children") as f:
                workers = [int(w) for w in f.read().split()]
            if workers:
                return master, workers[0], state(port)
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("uWSGI did not answer within 15 s")


def stop_uwsgi(master):
    if master.poll() is None:
        master.send_signal(signal.SIGINT)  # the master stops its workers, then exits
        try:
            master.wait(timeout=10)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait(timeout=10)


def leak_line():
    with open(os.path.join(EXAMPLE, "helpers", "audit.py")) as f:
        for number, text in enumerate(f, 1):
            if "cls.entries.append(" in text:
                return number
    raise AssertionError("no cls.entries.append in helpers/audit.py")


def run(port, log):
    master, worker = None, None
    try:
        master, worker, _ = start_uwsgi(port, log)
        orders(port, 50)
        check(state(port)["orders_served"] == 50, "warm-up orders not all served by the one worker")

        memtap("attach", worker, "--exact")
        check(json.loads(memtap("status", worker, "--json"))["attached"] is True, "status: not attached")
        memtap("snapshot", worker, "old")
        orders(port, 150)
        memtap("snapshot", worker, "new")
        diff = json.loads(memtap("diff", worker, "old", "new", "--by", "lineno", "--json"))
        top = diff["stats"][0]
        where = f"{top['file']}:{top['line']}"
        check(top["file"].endswith("/helpers/audit.py") and top["line"] == leak_line(),
              f"rank 1 is {where}, expected helpers/audit.py:{leak_line()}")
        check(top["count_diff"] >= 150 and top["size_diff"] >= 150 * len(drive.BODY),
              f"{where}: +{top['size_diff']} B in +{top['count_diff']} blocks, expected 150 bodies or more")
        print(f"rank 1: {where} in {top['function']}(): +{top['size_diff']} B, +{top['count_diff']} blocks")

        before = state(port)
        memtap("detach", worker)
        after = state(port)
        check(after == before, f"state changed across detach: {before} -> {after}")
        check(before["orders_served"] == 200 and len(before["price_cache"]) == 8, f"unexpected state {before}")
        orders(port, 10)
        later = state(port)
        check(later["orders_served"] == before["orders_served"] + 10, f"counter did not continue: {later}")
        check(later["price_cache"] == before["price_cache"], f"cache changed: {later}")
        check(later["worker"] == worker, f"another process answered: {later}")
        check(json.loads(memtap("status", worker, "--json"))["attached"] is False, "status: still attached")
        print(f"after detach: orders_served {before['orders_served']} -> {later['orders_served']}, "
              f"{len(later['price_cache'])} cache entries unchanged")
    finally:
        if master is not None:
            stop_uwsgi(master)
            check(worker is None or not alive(worker), f"worker {worker} still running after stop")


def main():
    if shutil.which("uwsgi") is None or not os.path.exists(PLUGIN):
        print(f"skipped: uwsgi or {PLUGIN} not installed (scripts/install-deps)", file=sys.stderr)
        return SKIP
    if subprocess.run(["/usr/bin/python3", "-c", "import flask"], capture_output=True).returncode != 0:
        print("skipped: python3-flask not installed (scripts/install-deps)", file=sys.stderr)
        return SKIP
    with tempfile.TemporaryFile(mode="w+") as log:
        try:
            run(free_port(), log)
        except Skip as e:
            print(f"skipped: {e}", file=sys.stderr)
            return SKIP
        except Exception:
            log.seek(0)
            print("uWSGI log (last lines):\n" + "".join(log.readlines()[-20:]), file=sys.stderr)
            raise
    print("integration.uwsgi_example: ok")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(SNAPSHOT_DIR, ignore_errors=True)
