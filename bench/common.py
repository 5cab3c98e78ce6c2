"""Shared helpers for memtap's benchmarks: interpreters, child processes with
bounded waits and guaranteed cleanup, per-child peak RSS, small statistics.

Every process a benchmark starts goes through Child or run_bounded, so it is
killed and reaped on every path (exceptions, timeouts, Ctrl-C).
"""
import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TARGETS = os.path.join(HERE, "targets")
MEMTAP = os.environ.get("MEMTAP", "/work/build-bench/src/cli/memtap")

# name -> interpreter. "3.6", "3.11", "3.12" and "3.13" are pyenv builds (libpython shared
# or not, as pyenv built them); "debian-3.11" is /usr/bin/python3, statically
# linked, the only one with Flask installed.


def _exit_on_sigterm(signum, frame):
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so every Child and
    # run_bounded below kills and reaps what it started.
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _exit_on_sigterm)

INTERPRETERS = {
    "3.6": "/root/.pyenv/versions/3.6.15/bin/python3",
    "3.11": "/root/.pyenv/versions/3.11.7/bin/python3",
    "3.12": "/root/.pyenv/versions/3.12.1/bin/python3",
    "3.13": "/root/.pyenv/versions/3.13.0/bin/python3",
    "debian-3.11": "/usr/bin/python3",
}


def interpreter_version(path):
    out = run_bounded([path, "-c", "import sys; print(sys.version.split()[0])"], 20)
    return out.stdout.strip() if out.returncode == 0 else "?"


def available_interpreters(names):
    return [(n, INTERPRETERS[n]) for n in names if os.path.exists(INTERPRETERS[n])]


class Result:
    def __init__(self, returncode, stdout, stderr, wall, maxrss_kb):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.wall = wall            # seconds, from just before fork to reaped
        self.maxrss_kb = maxrss_kb  # the child's own peak RSS (wait4 rusage)


def run_bounded(argv, timeout, env=None):
    """Runs argv to completion or kills it after timeout seconds. Reaps it
    with wait4 so the peak RSS is this child's alone."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        status, usage = None, None
        try:
            deadline = start + timeout
            while True:
                pid, st, ru = os.wait4(p.pid, os.WNOHANG)
                if pid == p.pid:
                    status, usage = st, ru
                    break
                if time.perf_counter() > deadline:
                    break
                time.sleep(0.0005)
        finally:
            if status is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") \
                else (-(status & 0x7F) if status & 0x7F else status >> 8)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return Result(p.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                      wall, usage.ru_maxrss)


class Child:
    """A long-running target with line-based stdin/stdout. Always use as a
    context manager: the process is killed and reaped on exit."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, bufsize=0)
        self.pid = self.proc.pid
        self._buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # SIGKILL failed: nothing more we can do
            pass
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def read_line(self, timeout, prefix=None):
        """Next stdout line (starting with prefix, if given), or raise."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                if prefix is None or text.startswith(prefix):
                    return text
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("pid %d: no %r line within %.0f s; stderr: %s"
                                   % (self.pid, prefix or "output", timeout, self.stderr_tail()))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError("pid %d exited (rc %s) before a %r line; stderr: %s"
                                       % (self.pid, self.proc.poll(), prefix, self.stderr_tail()))
                self._buf += chunk

    def stderr_tail(self):
        if self.proc.poll() is None:
            return "(still running)"
        try:
            return self.proc.stderr.read().decode(errors="replace")[-800:]
        except (OSError, ValueError):
            return "?"


def memtap(args, timeout=30):
    return run_bounded([MEMTAP] + args, timeout)


def memtap_or_throw(args, timeout=30):
    r = memtap(args, timeout)
    if r.returncode != 0:
        raise RuntimeError("memtap %s failed (rc %d): %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


def build_gap_ticker(tmpdir):
    """targets/gapticker.c built into tmpdir: a GIL-free C thread that times its 1 ms ticks."""
    so = os.path.join(tmpdir, "gapticker.so")
    r = run_bounded(["cc", "-O2", "-shared", "-fPIC", "-o", so,
                     os.path.join(TARGETS, "gapticker.c"), "-lpthread"], 60)
    if r.returncode != 0:
        raise RuntimeError("building gapticker.so failed: " + r.stderr)
    return so


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM for %d" % pid)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def p90(xs):
    if not xs:
        return float("nan")
    s = sorted(xs)
    # nearest-rank
    k = max(0, min(len(s) - 1, int(round(0.9 * len(s) + 0.4999)) - 1))
    return s[k]


def table(headers, rows):
    """A Markdown table."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def machine_note():
    load = os.getloadavg()
    return "%s, %d cores, load average %.2f %.2f %.2f at end, %s" % (
        time.strftime("%Y-%m-%d %H:%M %Z"), os.cpu_count(), load[0], load[1], load[2],
        os.uname().release)


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# The configurations churn.py and peak_rss.py compare: (name, memtap attach
# flags or None for no attach, extra environment).
CONFIGS = [
    ("baseline", None, {}),
    ("sampled", [], {}),
    ("exact-f1", ["--exact", "--frames", "1"], {}),
    ("exact-f16", ["--exact"], {}),
    ("tracemalloc", None, {"PYTHONTRACEMALLOC": "1"}),
]


def emit(out_lines, markdown_path):
    """Print a benchmark's Markdown and append it to --markdown FILE, if given."""
    text = "\n".join(out_lines) + "\n"
    print(text)
    if markdown_path:
        with open(markdown_path, "a") as f:
            f.write(text)


PASSTHROUGH_SOURCE = os.path.join(TARGETS, "passthrough_hooks.c")


def build_passthrough(out_dir):
    """targets/passthrough_hooks.c as a shared library, with the C compiler."""
    path = os.path.join(out_dir, "libpassthrough_hooks.so")
    r = run_bounded(["cc", "-O2", "-shared", "-fPIC", "-o", path, PASSTHROUGH_SOURCE], 120)
    if r.returncode != 0:
        raise SystemExit("building %s failed: %s" % (PASSTHROUGH_SOURCE, r.stderr[-400:]))
    return path
