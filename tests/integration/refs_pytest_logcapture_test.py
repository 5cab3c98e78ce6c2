"""integration.refs.pytest_logcapture: `memtap refs` on a real pytest session
(Debian's python3 and python3-pytest) whose test logged COUNT records with
one of its own dicts as argument, at two sites (see the target's docstring),
and waits inside the test. For each site the dicts must be reached, counted
against the truth (COUNT, of which at most the dict free list's 80 may be
missing, as in refs_test.py) and held by
_pytest.logging.LogCaptureHandler.records through LogRecord.args. memtap
must leave the session undisturbed: after detach the test passes.

The inline site is the issue's own pattern, `log.warning("req %s", {"i": i})`
in a loop: every dict there reuses the object of the dict that the previous
call's `self._log(..., **kwargs)` built and freed (tracemalloc on 3.8+
charges each to the inline line, all COUNT of them). Its block keeps the line
of its first life, but its keys table is allocated at the inline line, which
is how memtap counts it as that site's; one whose keys table also came from
a free list is missed (the failure message says where memtap charged them).

Usage: refs_pytest_logcapture_test.py MEMTAP PYTHON TARGETS_DIR
Exit 77 without pytest for PYTHON, or without ptrace."""
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
TARGET = os.path.abspath(os.path.join(TARGETS, "pytest_logcapture_target.py"))
COUNT = 2000
FREE_LIST = 80  # PyDict_MAXFREELIST (Objects/dictobject.c)
HOLDER = "_pytest.logging.LogCaptureHandler.records"
failures = []
session_output = [""]

if subprocess.run([PYTHON, "-c", "import pytest"], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL, timeout=60).returncode != 0:
    print("SKIP: %s has no pytest (Debian: python3-pytest)" % PYTHON)
    sys.exit(77)


def check(condition, message, *details):
    if not condition:
        failures.append(message + "".join("\n--- " + str(d) for d in details))
    return condition


def memtap(*args):
    return subprocess.run([MEMTAP] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)


def read_line(fd, timeout=60):
    """One line from the target's pipe, within timeout seconds."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError("the target said nothing within %d s (so far %r)" % (timeout, data))
        chunk = os.read(fd, 1)
        if not chunk:
            raise AssertionError("the target closed its pipe (so far %r)" % data)
        data += chunk
    return data.decode().strip()


def charged_elsewhere(pid):
    """Where memtap charges the record args dicts instead: the line of
    Logger.warning whose `**kwargs` builds a dict that each call frees to the
    dict free list (a diagnostic for the failure message, not a check)."""
    code = ("import inspect, logging\n"
            "lines, start = inspect.getsourcelines(logging.Logger.warning)\n"
            "print(start + next(i for i, l in enumerate(lines) if '_log(WARNING' in l))")
    p = subprocess.run([PYTHON, "-c", code], stdout=subprocess.PIPE, universal_newlines=True, timeout=60)
    if p.returncode != 0:
        return ""
    site = "logging/__init__.py:%s" % p.stdout.strip()
    r = memtap("refs", pid, site, "--json", "--timeout", "30")
    if r.returncode != 0:
        return ""
    args = [c for c in json.loads(r.stdout)["chains"] if c["links"][-1]["name"] == "args"]
    return "; memtap charges %d LogRecord.args dicts, held by %s, to %s (the dict that `**kwargs` builds " \
           "there, freed to the dict free list by every call and reused by the next {...})" % (
               sum(c["objects"] for c in args), sorted(set(c["holder"] for c in args)), site)


def check_site(pid, tag, line):
    site = "pytest_logcapture_target.py:%d" % line
    r = memtap("refs", pid, site, "--json", "--timeout", "30")
    if not check(r.returncode == 0, "%s: refs failed (%d)" % (tag, r.returncode), r.stdout, r.stderr):
        return
    out = json.loads(r.stdout)
    dicts = [c for c in out["chains"] if c["links"][-1]["type"] == "dict"]
    total = sum(c["objects"] for c in dicts)
    print("%s (%s): %d dicts reached of %d traced blocks, holders %s, walk %.1f ms" % (
        tag, site, total, out.get("site_traced_records", -1), sorted(set(c["holder"] for c in dicts)),
        out["walk_ns"] / 1e6))
    if not COUNT - FREE_LIST <= total <= COUNT:
        check(False, "%s: %d dicts allocated at %s reached, want %d (at least %d)%s" % (
            tag, total, site, COUNT, COUNT - FREE_LIST, charged_elsewhere(pid)), r.stdout)
    holders = set(c["holder"] for c in dicts)
    check(not dicts or holders == {HOLDER}, "%s: holders %s, want {%s}" % (tag, holders, HOLDER), r.stdout)
    for c in dicts:
        # ... -> LogCaptureHandler .records -> list [] -> LogRecord (__dict__) .args -> dict
        shape = [(link["kind"], link["name"], link["type"]) for link in c["links"]]
        handler = [i for i, link in enumerate(shape) if link[2] == "_pytest.logging.LogCaptureHandler"]
        check(handler and shape[handler[-1] + 1:] == [
            ("attr", "records", "list"), ("item", "", "logging.LogRecord"), ("dict", "", "dict"),
            ("attr", "args", "dict")],
              "%s: not a chain LogCaptureHandler.records[] -> LogRecord.args" % tag, c)
    if tag == "prebuilt":
        t = memtap("refs", pid, site, "--timeout", "30")
        check(t.returncode == 0 and "held by " + HOLDER in t.stdout, "%s: text output names no holder" % tag,
              t.stdout, t.stderr)


def main():
    ctl_r, ctl_w = os.pipe()
    out_r, out_w = os.pipe()
    workdir = tempfile.mkdtemp(prefix="memtap-pytest-")
    log = open(os.path.join(workdir, "pytest.log"), "w+")
    env = dict(os.environ, MEMTAP_CTL_FD=str(ctl_r), MEMTAP_OUT_FD=str(out_w), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    session = subprocess.Popen(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", workdir, TARGET],
        cwd=workdir, env=env, pass_fds=(ctl_r, out_w), stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT)
    os.close(ctl_r)
    os.close(out_w)
    try:
        sites = {}
        for _ in range(2):
            word, tag, line = read_line(out_r).split()
            assert word == "SITE", word
            sites[tag] = int(line)
        a = memtap("attach", "--exact", session.pid)
        if a.returncode == 5:
            print("SKIP: ptrace is not allowed here: " + a.stderr.strip())
            sys.exit(77)
        if not check(a.returncode == 0, "attach --exact failed (%d)" % a.returncode, a.stderr):
            return
        os.write(ctl_w, b"go\n")
        captured = read_line(out_r)
        dict_args = read_line(out_r)
        check(read_line(out_r) == "ready", "target not ready")
        # The truth: both LogCaptureHandlers on the root logger (the call
        # phase's caplog and report handlers) hold every record, whose args
        # is the dict itself.
        want = "%d %d" % (2 * COUNT, 2 * COUNT)
        check(captured == "captured " + want, "target's handlers: %r, want 'captured %s'" % (captured, want))
        check(dict_args == "dict-args " + want,
              "target's dict args: %r, want 'dict-args %s'" % (dict_args, want))
        for tag in ("prebuilt", "inline"):
            check_site(session.pid, tag, sites[tag])
        d = memtap("detach", session.pid)
        check(d.returncode == 0, "detach failed", d.stderr)
        os.write(ctl_w, b"stop\n")
        try:
            rc = session.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        log.seek(0)
        check(rc == 0 and "1 passed" in log.read(),
              "the pytest session did not pass after detach (exit %s)" % rc)
    finally:
        if session.poll() is None:
            session.kill()
        session.wait()
        os.close(ctl_w)
        os.close(out_r)
        log.seek(0)
        session_output[0] = log.read()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


try:
    main()
except Exception:
    print("pytest session's output (tail):\n" + session_output[0][-3000:])
    raise
if failures:
    print("FAILED:\n" + "\n\n".join(failures))
    print("pytest session's output (tail):\n" + session_output[0][-3000:])
    sys.exit(1)
print("ok: pytest's LogCaptureHandler.records named as the holder of the logged dicts")
