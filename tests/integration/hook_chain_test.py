"""Issue 7 item 6: another PyMem_SetAllocator caller changes the chain under
memtap, on a real target with the real binary.

  1. tracemalloc.start(); memtap attach --exact; tracemalloc.stop() cuts
     memtap's hooks out. status and snapshot must say so, re-install them, and
     a later snapshot pair must see what is allocated after the re-install.
  2. tracemalloc.start() then wraps memtap's hooks: not lost, still traced.
  3. detach leaves the allocators as the program had them: checked from inside
     the target (PyMem_GetAllocator, and tracemalloc traces a new object).
  4. The reverse order from a fresh attach (attach, tracemalloc.start(),
     allocate, tracemalloc.stop()) is never reported lost.

Usage: hook_chain_test.py MEMTAP PYTHON TARGETS_DIR
"""
import json
import os
import select
import subprocess
import sys
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
SCRIPT = os.path.join(TARGETS, "tracemalloc_target.py")
with open(SCRIPT) as f:
    BURST_LINE = next(n for n, line in enumerate(f, 1) if "# BURST" in line and "def" not in line)
BURST_BYTES = 5000 * 1000
FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print("FAIL: " + message)
    return condition


def memtap(*args):
    p = subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("memtap %s: exit %d: %s" % (" ".join(map(str, args)), p.returncode, p.stderr))
    return p


def status_json(pid):
    return json.loads(memtap("status", pid, "--json").stdout)


target = subprocess.Popen([PYTHON, "-u", SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def reply(timeout=30.0):
    ready, _, _ = select.select([target.stdout], [], [], timeout)
    if not ready:
        raise AssertionError("target did not answer within %.0f s" % timeout)
    return target.stdout.readline().strip()


def command(word):
    target.stdin.write(word + "\n")
    target.stdin.flush()
    return reply()


def do(word):
    answer = command(word)
    if answer != "done":
        raise AssertionError("target answered %r to %r" % (answer, word))


def burst_growth(pid, old, new):
    """Bytes the diff old -> new puts on the target's BURST line."""
    stats = json.loads(memtap("diff", pid, old, new, "--json", "--top", "1000").stdout)["stats"]
    return sum(s["size_diff"] for s in stats
               if s["line"] == BURST_LINE and os.path.realpath(s["file"]) == os.path.realpath(SCRIPT))


def sees_burst(pid, tag):
    memtap("snapshot", pid, tag + "-a")
    do("burst")
    memtap("snapshot", pid, tag + "-b")
    growth = burst_growth(pid, tag + "-a", tag + "-b")
    return check(growth >= 0.95 * BURST_BYTES, "%s: the burst line grew by %d bytes, expected ~%d"
                 % (tag, growth, BURST_BYTES))


try:
    if reply() != "ready":
        raise AssertionError("target did not say ready")
    pid = target.pid
    original = command("allocators")

    # 1. The cut.
    do("tm_start")
    memtap("attach", pid, "--exact", "--frames", "1")
    st = status_json(pid)
    check(st.get("hook_chain") == "intact" and st.get("hook_reinstalls") == 0, "after attach: %r" % st)
    do("tm_stop")
    check(command("allocators") == original, "tracemalloc.stop() did not put back the original allocators")
    do("burst")  # made while cut: not seen
    text = memtap("status", pid).stdout
    print(text)
    check("re-installed" in text and "tracemalloc.stop()" in text and "not seen" in text,
          "status text does not tell about the cut:\n" + text)
    st = status_json(pid)
    check(st.get("hook_reinstalls") == 1, "hook_reinstalls %r" % st.get("hook_reinstalls"))
    check(st.get("hook_chain") == "intact" and st.get("hooks") == "installed", "after re-install: %r" % st)
    check("re-installed" in st.get("hook_problem", ""), "no hook_problem in JSON: %r" % st)
    check(st.get("hook_reinstall_unix_ms", 0) > (time.time() - 120) * 1000, "re-install time %r" % st)
    check(command("allocators") != original, "hooks not back in the target")
    sees_burst(pid, "cut")
    p = memtap("snapshot", pid, "cut-c")
    check("memtap: warning: hooks were removed" in p.stderr, "snapshot does not warn: %r" % p.stderr)

    # 2. Wrapped by tracemalloc: still called, not lost.
    do("tm_start")
    st = status_json(pid)
    check(st.get("hook_chain", "").startswith("wrapped:"), "under tracemalloc: hook_chain %r" % st.get("hook_chain"))
    check(st.get("hook_reinstalls") == 1 and st.get("hooks") == "installed", "wrapped reported as %r" % st)
    sees_burst(pid, "wrapped")
    do("tm_stop")
    st = status_json(pid)
    check(st.get("hook_chain") == "intact" and st.get("hook_reinstalls") == 1, "after tm_stop: %r" % st)

    # 3. Detach leaves the program's allocators; tracemalloc works again.
    memtap("detach", pid)
    check(command("allocators") == original, "allocators not the original after detach")
    answer = command("tm_check")
    check(answer == "tm ok", "tracemalloc after detach: %s" % answer)
    do("free")

    # 4. The reverse order from a fresh attach.
    memtap("attach", pid, "--exact", "--frames", "1")
    do("tm_start")
    do("burst")
    st = status_json(pid)
    check(st.get("hook_chain", "").startswith("wrapped:") and st.get("hook_reinstalls") == 0
          and "hook_problem" not in st, "attach then tracemalloc.start(): %r" % st)
    sees_burst(pid, "reverse")
    do("tm_stop")
    st = status_json(pid)
    check(st.get("hook_chain") == "intact" and st.get("hook_reinstalls") == 0 and "hook_problem" not in st,
          "attach, tracemalloc start/stop: %r" % st)
    text = memtap("status", pid).stdout
    check("warning" not in text, "status warns without a cut:\n" + text)
    sees_burst(pid, "reverse-after")
    memtap("detach", pid)
    check(command("allocators") == original, "allocators not the original after the reverse run")
    answer = command("tm_check")
    check(answer == "tm ok", "tracemalloc after the reverse run: %s" % answer)
    do("burst")  # the process keeps working
finally:
    target.kill()
    target.wait()

if FAILURES:
    print("FAILED:\n" + "\n".join(FAILURES))
    sys.exit(1)
print("hook chain: cut found and re-installed, wrapped not lost, allocators restored")
