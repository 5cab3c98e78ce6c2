"""Workload target for bench/churn.py and bench/peak_rss.py.

Usage: python workload.py WORKLOAD N

Sets up (imports, app), prints "ready", waits for one line on stdin (the
benchmark attaches memtap in between, so attaching is not timed), then runs
the workload N iterations with time.perf_counter around the work only and
prints "elapsed SECONDS". Then it prints "done" and waits for one more line
before exiting, so the benchmark can read /proc and memtap status first.

Workloads:
  dict    build and drop small dicts
  list    build, grow and drop small lists
  str     format, concatenate, join and split strings
  flask   GET through Flask's test client (no network), JSON response
  live    keep N small objects alive (tuples of one int): peak RSS
  numpy   numpy arrays of mixed sizes built, combined and dropped (array data
          reported through PyTraceMalloc_Track), and zlib compression of
          their bytes (a native library's own malloc): bench/numpy_native.py
"""
import sys
import time

WORKLOAD, N = sys.argv[1], int(sys.argv[2])


def dict_churn(n):
    keep = []
    for i in range(n):
        d = {"a": i, "b": i + 1, "c": str(i), "d": [i]}
        d["e"] = d.copy()
        keep.append(d)
        if len(keep) > 1000:
            keep = []
    return len(keep)


def list_churn(n):
    keep = []
    for i in range(n):
        l = [i, i + 1, i + 2]
        l.extend(range(8))
        l.append([i])
        keep.append(l[:])
        if len(keep) > 1000:
            keep = []
    return len(keep)


def str_churn(n):
    total = 0
    for i in range(n):
        s = "item-%d-%s" % (i, "x" * (i % 32))
        t = "/".join([s, str(i), s.upper()])
        total += len(t.split("/")[2] + s)
    return total


def make_flask():
    import flask
    app = flask.Flask("bench")

    @app.route("/item/<int:n>")
    def item(n):
        return flask.jsonify({"n": n, "names": ["x%d" % i for i in range(20)]})

    client = app.test_client()
    client.get("/item/0")  # warm up routing and JSON
    return client


def flask_loop(n, client):
    total = 0
    for i in range(n):
        r = client.get("/item/%d" % i)
        total += len(r.data)
    return total


def numpy_loop(n):
    import numpy
    import zlib
    keep = []
    total = 0.0
    for i in range(n):
        a = numpy.arange(64 + i % 4096, dtype=numpy.float64)
        b = a * 2.0 + 1.0  # temporaries: one Track/Untrack pair each
        c = numpy.concatenate([a, b])
        total += float(c.sum())
        if i % 8 == 0:
            total += len(zlib.compress(c.tobytes()[:4096]))
        keep.append(c)
        if len(keep) > 64:
            keep = []
    return total


def live(n):
    return [(i,) for i in range(n)]


client = make_flask() if WORKLOAD == "flask" else None
if WORKLOAD == "numpy":
    import numpy  # noqa: F401  (imported before the attach, as a service has it)
    import zlib  # noqa: F401
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.readline()
start = time.perf_counter()
if WORKLOAD == "dict":
    result = dict_churn(N)
elif WORKLOAD == "list":
    result = list_churn(N)
elif WORKLOAD == "str":
    result = str_churn(N)
elif WORKLOAD == "flask":
    result = flask_loop(N, client)
elif WORKLOAD == "live":
    result = live(N)
elif WORKLOAD == "numpy":
    result = numpy_loop(N)
else:
    sys.exit("unknown workload " + WORKLOAD)
elapsed = time.perf_counter() - start
sys.stdout.write("elapsed %.6f\ndone\n" % elapsed)
sys.stdout.flush()
sys.stdin.readline()
