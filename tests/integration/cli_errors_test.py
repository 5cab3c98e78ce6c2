"""Bad input gets one clear line on stderr, a documented exit code, quickly,
and the target is left exactly as it was. Runs the real memtap binary.

Usage: cli_errors_test.py MEMTAP PYTHON3 PYTHON2_OR_EMPTY TARGETS_DIR
"""
import os
import shutil
import signal
import subprocess
import sys
import time

MEMTAP, PYTHON3, PYTHON2, TARGETS = sys.argv[1:5]
FAILURES = []


def run(*args, expect, stderr_has=None, stdout_has=None, max_seconds=5.0):
    started = time.monotonic()
    p = subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True, timeout=60)
    took = time.monotonic() - started
    label = "memtap " + " ".join(str(a) for a in args)
    problems = []
    if p.returncode != expect:
        problems.append("exit %d, expected %d" % (p.returncode, expect))
    if expect != 0 and args:
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        if len(lines) != 1 or not lines[0].startswith("memtap: error: "):
            problems.append("stderr is not one 'memtap: error:' line: %r" % p.stderr)
    if stderr_has and stderr_has not in p.stderr:
        problems.append("stderr lacks %r: %r" % (stderr_has, p.stderr))
    if stdout_has and stdout_has not in p.stdout:
        problems.append("stdout lacks %r: %r" % (stdout_has, p.stdout))
    if took > max_seconds:
        problems.append("took %.1f s" % took)
    print("%-60s exit %d %.2fs %s" % (label[:60], p.returncode, took, "OK" if not problems else "FAIL"))
    for problem in problems:
        FAILURES.append("%s: %s" % (label, problem))
    return p


def start(argv):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("ready"), line
    return p


def stop(p):
    p.kill()
    p.wait()


# Usage errors: exit 2.
run(expect=2, stderr_has="usage: memtap")  # no command: help on stderr, not an error line
run("bogus", expect=2, stderr_has="unknown command 'bogus'")
run("attach", expect=2, stderr_has="takes PID")
run("attach", "abc", expect=2, stderr_has="'abc' is not a PID")
run("attach", "123", "--frames", "0", expect=2, stderr_has="--frames")
run("attach", "123", "--exact", "--sample-bytes", "1M", expect=2, stderr_has="exclude")
run("attach", "123", "--what", expect=2, stderr_has="unknown option '--what'")
run("diff", "123", "s1", expect=2)

# --help on every command: exit 0, usage on stdout.
for command in ("attach", "status", "detach", "snapshot", "diff", "watch", "record", "report", "peak-reset"):
    run(command, "--help", expect=0, stdout_has="usage: memtap %s" % command)
run("--help", expect=0, stdout_has="Exit codes")

# No such process: exit 3.
run("attach", "4194000", expect=3, stderr_has="no process with PID 4194000")
run("status", "4194000", expect=3)
run("record", "4194000", expect=3, stderr_has="no process with PID 4194000")
run("report", "4194000", expect=3, stderr_has="no journal stored for it")
run("report", "/nonexistent/journal.mtj", expect=1, stderr_has="No such file")
run("record", "123", "--interval", "x", expect=2, stderr_has="--interval")

# Not Python: exit 4, and the process is untouched.
sleeper = subprocess.Popen(["sleep", "60"])
try:
    time.sleep(0.2)
    run("attach", sleeper.pid, expect=4, stderr_has="not a Python process")
    run("status", sleeper.pid, expect=4, stderr_has="not a Python process")
    # record refuses it too (after its "attaching" progress line), and leaves no journal behind.
    p = subprocess.run([MEMTAP, "record", str(sleeper.pid), "--count", "1"], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 4 or "memtap: error: " not in p.stderr or "not a Python process" not in p.stderr:
        FAILURES.append("memtap record of a sleep: exit %d, %r" % (p.returncode, p.stderr))
    base = os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", "memtap" if os.environ.get("XDG_RUNTIME_DIR")
                        else "memtap-%d" % os.geteuid())
    for entry in (os.listdir(base) if os.path.isdir(base) else []):
        if entry.startswith("%d-" % sleeper.pid) and any(f.endswith(".mtj") for f in os.listdir(os.path.join(base, entry))):
            FAILURES.append("a failed record left a journal in %s" % os.path.join(base, entry))
    assert sleeper.poll() is None
finally:
    sleeper.kill()
    sleeper.wait()

# Python 2: exit 4.
if PYTHON2:
    py2 = start([PYTHON2, "-c", "import sys,time; sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(60)"])
    try:
        run("attach", py2.pid, expect=4, stderr_has="Python 2")
    finally:
        stop(py2)

target = start([PYTHON3, "-u", os.path.join(TARGETS, "parked_target.py"), "sleep"])
try:
    # A Python process that is not attached: status works, the rest says so (exit 7).
    p = run("status", target.pid, "--json", expect=0, stdout_has='"attached":false')
    run("detach", target.pid, expect=7, stderr_has="not attached")
    run("snapshot", target.pid, expect=7, stderr_has="not attached")
    run("diff", target.pid, "now", "now", expect=7, stderr_has="not attached")
    # Sizes that overflow or are absurd are usage errors at parse time: no
    # thread borrowed, no agent loaded (it would stay mapped, dormant).
    for size in ("1099511627776G", "16777216G", "2T", "18446744073709551616", "99999999999999999999999K", "0"):
        run("attach", target.pid, "--sample-bytes", size, expect=2, stderr_has="--sample-bytes must be a size",
            max_seconds=1.0)
    with open("/proc/%d/maps" % target.pid) as f:
        if "memtap-agent" in f.read():
            FAILURES.append("a rejected --sample-bytes still loaded the agent into the target")
    run("status", target.pid, "--json", expect=0, stdout_has='"attached":false')
    # Stopped by job control: refused (exit 4) and left stopped.
    os.kill(target.pid, signal.SIGSTOP)
    time.sleep(0.2)
    run("attach", target.pid, expect=4, stderr_has="is stopped")
    with open("/proc/%d/stat" % target.pid) as f:
        state = f.read().rsplit(")", 1)[1].split()[0]
    if state != "T":
        FAILURES.append("stopped target was not left stopped (state %s)" % state)
    os.kill(target.pid, signal.SIGCONT)
    # Attached: unknown snapshot names are usage errors listing what exists.
    run("attach", target.pid, expect=0, stdout_has="attached to process")
    run("snapshot", target.pid, "base", expect=0, stdout_has="base")
    run("snapshot", target.pid, "../evil", expect=2, stderr_has="not a valid snapshot name")
    run("diff", target.pid, "nope", "now", expect=2, stderr_has="known snapshots: base")
    run("diff", target.pid, "base", "now", "--by", "nonsense", expect=2, stderr_has="--by")
    run("diff", target.pid, "base", "now", expect=0, stdout_has="grouped by lineno")
    run("detach", target.pid, expect=0)
    run("status", target.pid, expect=0, stdout_has="attached:         no")
    # A debugger attached afterwards must work: the loader's list names the
    # dormant agent as its memfd, not a /proc/self path gdb would resolve in
    # its own process (it then hung reading its own pipe).
    if shutil.which("gdb"):
        try:
            g = subprocess.run(["gdb", "-nx", "-p", str(target.pid), "-batch", "-ex", "info sharedlibrary"],
                               capture_output=True, text=True, timeout=30)
            if g.returncode != 0 or "/memfd:memtap-agent" not in g.stdout:
                FAILURES.append("gdb after detach: exit %d, agent not listed as memfd" % g.returncode)
        except subprocess.TimeoutExpired:
            FAILURES.append("gdb hung on the target after memtap detached")
        run("attach", target.pid, expect=0, stdout_has="attached to process")  # after gdb, too
        run("detach", target.pid, expect=0)
finally:
    stop(target)

if FAILURES:
    print("\n".join(["FAILED:"] + FAILURES))
    sys.exit(1)
print("all CLI error cases behaved")
