"""A real uWSGI master with one worker (Debian's uwsgi and its python3
plugin) on a free loopback port, for the tests that need an idle worker:
no --enable-threads, so its main thread holds the GIL in epoll_wait.

Every test that uses it kills the whole process group in a finally (close).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

PLUGIN = "/usr/lib/uwsgi/plugins/python3_plugin.so"


def skip_without_uwsgi():
    if not shutil.which("uwsgi") or not os.path.exists(PLUGIN):
        print("SKIP: Debian's uwsgi and uwsgi-plugin-python3 are not installed")
        sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def threads(pid):
    return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))


class Master:
    """uwsgi --master --processes 1 serving APP; extra arguments appended."""

    def __init__(self, app, *extra):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen(
            ["uwsgi", "--plugin", "python3", "--master", "--processes", "1", "--http-socket",
             "127.0.0.1:%d" % self.port, "--wsgi-file", app] + list(extra) + ["--die-on-term",
                                                                              "--disable-logging"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid

    def get(self, path="/", timeout=5):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def wait_serving(self, path, timeout=30):
        """The first answer to GET path, once the worker serves."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get(path, timeout=1)
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError("uWSGI did not start serving")
                time.sleep(0.1)

    def workers(self):
        with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
            return [int(x) for x in f.read().split()]

    def close(self):
        os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait()
