"""Checks memtap's frame walker against the traceback module, in-process.

Usage: python test_frames.py PATH/libmemtap_frames_probe.so

The probe library wraps src/agent/python_frames.cpp. Through ctypes.PyDLL
the GIL stays held during the call, so captureFrames must see exactly the
frames traceback.extract_stack() sees (file, line, function, depth); through
ctypes.CDLL the GIL is released and it must return 0. Written for 3.6+.
Exit status: 0 pass, 1 fail, 77 skip.
"""

import ctypes
import sys
import threading
import time
import traceback

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


if len(sys.argv) != 2:
    print("usage: test_frames.py PROBE_LIBRARY")
    sys.exit(2)

PROBE_PATH = sys.argv[1]
# PyDLL keeps the GIL across the call; RTLD_GLOBAL is not needed: the probe
# looks CPython's symbols up with dlsym(RTLD_DEFAULT).
probe = ctypes.PyDLL(PROBE_PATH)
probe_nogil = ctypes.CDLL(PROBE_PATH)
for lib in (probe, probe_nogil):
    lib.probe_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.probe_capture.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    lib.probe_names.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.probe_count.argtypes = [ctypes.c_int]
    lib.probe_bench.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.probe_bench.restype = ctypes.c_double

if not probe.probe_init(sys.version_info[0], sys.version_info[1]):
    print("framesInit failed for", sys.version)
    sys.exit(1)

BUF = ctypes.create_string_buffer(1 << 16)


def capture(max_frames=256):
    """The caller's frames, innermost first (capture's own frame dropped)."""
    n = probe.probe_capture(BUF, len(BUF), max_frames + 1)
    if n < 0:
        raise AssertionError("probe_capture failed")
    rows = []
    for line in BUF.value.decode("utf-8").splitlines():
        fname, lineno, func, first = line.split("\t")
        rows.append((fname, int(lineno), func, int(first)))
    if len(rows) != n or not rows or rows[0][2] != "capture":
        raise AssertionError("probe_capture: %d rows for %d frames: %r" % (len(rows), n, rows[:1]))
    return rows[1:]


def expected_name(s):
    # copyCodeNames writes lone surrogates (surrogateescape'd file names) as U+FFFD.
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)


def compare(label, got, want):
    """got: probe rows (innermost first); want: extract_stack() (outermost first)."""
    want = [(expected_name(f.filename), f.lineno, expected_name(f.name)) for f in reversed(want)]
    got3 = [(f, l, n) for (f, l, n, _) in got]
    if got3 != want:
        print("--- %s: probe" % label)
        for row in got3:
            print("   ", row)
        print("--- %s: traceback" % label)
        for row in want:
            print("   ", row)
    check(got3 == want, "%s: frames differ from traceback (%d vs %d)" % (label, len(got3), len(want)))
    return got


def snap(label):
    # Both calls on one line: the innermost frame's line is the same for both.
    got, want = capture(), traceback.extract_stack()
    return compare(label, got, want)


# ---- plain nesting ---------------------------------------------------------


def level3(label):
    return snap(label)


def level2(label):
    x = 1
    return level3(label) if x else None


def level1(label):
    return level2(label)


rows = level1("nested")
check(rows[0][2] == "snap" and rows[1][2] == "level3", "nested: innermost names")
check(rows[0][3] == snap.__code__.co_firstlineno, "nested: codeIdentity firstLine")

# Depth limit: the first max frames, in order.
def limited(n):
    if n > 0:
        return limited(n - 1)
    full = capture()
    part = capture(3)
    return full, part


full, part = limited(5)
check(len(part) == 3, "max=3 returned %d frames" % len(part))
check([r[2] for r in part] == [r[2] for r in full[:3]], "max=3 returns the innermost frames")
check(probe.probe_count(0) == 0, "max=0 returns 0")
check(probe.probe_count(1) == 1, "max=1 returns 1")

# Module level of this script.
got, want = capture(), traceback.extract_stack()
compare("module level", got, want)

# ---- generators, coroutines, comprehensions, lambdas, C callers -----------


def gen():
    yield snap("generator")
    yield snap("generator resumed")


for _ in gen():
    pass


def gen_outer():
    yield from gen()


list(gen_outer())


async def co_inner():
    return snap("coroutine")


async def co_outer():
    return await co_inner()


def run_coroutine(coro):
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("coroutine did not finish")


run_coroutine(co_outer())


def comprehensions():
    [snap("list comprehension") for _ in range(1)]
    {k: snap("dict comprehension") for k in range(1)}
    list(snap("generator expression") for _ in range(1))
    sorted([2, 1], key=lambda x: snap("lambda under sorted()") and x)
    list(map(lambda x: snap("lambda under map()"), [1]))


comprehensions()


class WithBody:
    rows = snap("class body")


def closure():
    captured = 5

    def inner():
        return snap("closure") and captured

    return inner()


closure()


def deep(n):
    if n == 0:
        return snap("recursion")
    return deep(n - 1)


deep(50)


# Under a line-tracing function (debuggers, coverage) frames keep f_lineno,
# which 3.6-3.10 prefer over f_lasti, as PyFrame_GetLineNumber does.
def tracer(frame, event, arg):
    return tracer


def traced():
    y = 2
    return snap("traced") and y


sys.settrace(tracer)
try:
    traced()
finally:
    sys.settrace(None)

# Code objects created and freed in a loop: their addresses get reused, and
# the line cache must not return a dead code object's lines.
for k in range(200):
    src = "\n" * (k % 7) + "def f():\n" + "    x = 1\n" * (k % 5) + "    return snap('exec %d')\n" % k
    namespace = {"snap": snap}
    exec(compile(src, "<generated %d>" % (k % 3), "exec"), namespace)
    namespace["f"]()
    del namespace

# ---- names: non-ASCII, every str kind, surrogates, truncation -------------


def names_of_innermost(file_cap=1024, func_cap=256):
    file_buf = ctypes.create_string_buffer(max(file_cap, 1))
    func_buf = ctypes.create_string_buffer(max(func_cap, 1))
    # Frame 0 is this function, frame 1 its caller.
    rc = probe.probe_names(1, file_buf, file_cap, func_buf, func_cap)
    return rc, file_buf.value.decode("utf-8"), func_buf.value.decode("utf-8")


def run_named(filename, funcname, body_call="snap('names')"):
    src = "def %s():\n    return %s\n" % (funcname, body_call)
    namespace = {"snap": snap, "names_of_innermost": names_of_innermost}
    exec(compile(src, filename, "exec"), namespace)
    return namespace[funcname]()


run_named("caf\u00e9_latin1.py", "f\u00fcnf")  # kind 1, non-ASCII
run_named("\u03bb_ucs2.py", "\u03bb\u03ac\u03bc\u03b4\u03b1")  # kind 2
run_named("emoji_\U0001F600.py", "plain")  # kind 4
run_named("bad_\udcff.py", "surrogate")  # lone surrogate from surrogateescape

rc, fname, func = run_named("\u03bb" * 10 + ".py", "trunc", "names_of_innermost(8, 5)")
check(rc == 0, "truncation: rc %d" % rc)
check(fname == "\u03bb" * 3, "truncation on character boundary: %r" % fname)
check(func == "trun", "truncation of ASCII name: %r" % func)
rc, fname, func = run_named("\U0001F600.py", "f", "names_of_innermost(4, 2)")
check(fname == "" and func == "f", "4-byte character does not fit in 3 bytes: %r %r" % (fname, func))

# ---- threads and the GIL ---------------------------------------------------


def thread_body(results):
    results.append(level1("thread"))


results = []
t = threading.Thread(target=thread_body, args=(results,))
t.start()
t.join()
check(len(results) == 1, "thread ran")

# Without the GIL (CDLL releases it) nothing may be captured, also while
# another thread holds the GIL and runs Python code.
check(probe_nogil.probe_count(16) == 0, "CDLL call (GIL released) returned frames")
check(probe.probe_count_on_c_thread() == 0, "thread without Python state returned frames")

stop = [False]


def spinner():
    while not stop[0]:
        pass


spin = threading.Thread(target=spinner)
spin.start()
try:
    nonzero = sum(1 for _ in range(2000) if probe_nogil.probe_count(16) != 0)
finally:
    stop[0] = True
    spin.join()
check(nonzero == 0, "CDLL call while another thread runs Python returned frames %d times" % nonzero)

# And concurrently with the GIL held on several threads in turn.
def hammer(errors):
    for _ in range(300):
        got, want = capture(), traceback.extract_stack()
        if [(f, l) for (f, l, _, _) in got] != [(f.filename, f.lineno) for f in reversed(want)]:
            errors.append(1)
            return


errors = []
threads = [threading.Thread(target=hammer, args=(errors,)) for _ in range(4)]
for th in threads:
    th.start()
for th in threads:
    th.join()
check(not errors, "concurrent captures on 4 threads")

# ---- cost -------------------------------------------------------------------


def bench_at_depth(n):
    if n > 0:
        return bench_at_depth(n - 1)
    depth = probe.probe_count(256)
    # Best of three runs of 1e6 calls: the machine may be shared.
    one = min(probe.probe_bench(1, 1000000) for _ in range(3))
    sixteen = min(probe.probe_bench(16, 1000000) for _ in range(3))
    return depth, one, sixteen


depth, one, sixteen = bench_at_depth(20)
print("bench %s: depth %d, captureFrames max=1 %.1f ns/call, max=16 %.1f ns/call"
      % (sys.version.split()[0], depth, one, sixteen))

if FAILURES:
    print("%d failure(s)" % len(FAILURES))
    sys.exit(1)
print("ok", sys.version.split()[0])
