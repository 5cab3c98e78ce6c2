"""Issue 12 items 1-2: `memtap diff --format pprof|speedscope|html` on a real target.

  - pprof: the file is decoded by an independent decoder (python3-protobuf,
    with profile.proto's schema built here from its field numbers) and its
    totals agree with `diff --json --by traceback`;
  - html: headless Chromium loads the page without a script error, and the
    top line's place and size are on the page; the page's own render time
    and the file size for 10,000 tracebacks are printed;
  - bad --format is a usage error; an unwritable -o fails before any work
    and leaves nothing behind.

Usage: export_test.py MEMTAP PYTHON TARGETS_DIR. Exit 77 if ptrace is denied.
"""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
TARGET = os.path.join(os.path.abspath(TARGETS), "export_target.py")
SITES = 10000
FAILURES = []


def check(condition, message, *details):
    if not condition:
        FAILURES.append(message + "".join("\n--- " + str(d) for d in details))
    return condition


def memtap(*args):
    return subprocess.run([MEMTAP] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)


def profile_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="memtap_test_profile.proto", package="memtap_test",
                                             syntax="proto3")

    def message(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype,
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                f.type_name = ".memtap_test." + type_name

    # proto/profile.proto of github.com/google/pprof, field numbers only.
    message("ValueType", [("type", 1, F.TYPE_INT64, False, None), ("unit", 2, F.TYPE_INT64, False, None)])
    message("Sample", [("location_id", 1, F.TYPE_UINT64, True, None), ("value", 2, F.TYPE_INT64, True, None)])
    message("Line", [("function_id", 1, F.TYPE_UINT64, False, None), ("line", 2, F.TYPE_INT64, False, None)])
    message("Location", [("id", 1, F.TYPE_UINT64, False, None), ("line", 4, F.TYPE_MESSAGE, True, "Line")])
    message("Function", [("id", 1, F.TYPE_UINT64, False, None), ("name", 2, F.TYPE_INT64, False, None),
                         ("system_name", 3, F.TYPE_INT64, False, None), ("filename", 4, F.TYPE_INT64, False, None)])
    message("Profile", [
        ("sample_type", 1, F.TYPE_MESSAGE, True, "ValueType"), ("sample", 2, F.TYPE_MESSAGE, True, "Sample"),
        ("location", 4, F.TYPE_MESSAGE, True, "Location"), ("function", 5, F.TYPE_MESSAGE, True, "Function"),
        ("string_table", 6, F.TYPE_STRING, True, None), ("period_type", 11, F.TYPE_MESSAGE, False, "ValueType"),
        ("period", 12, F.TYPE_INT64, False, None), ("comment", 13, F.TYPE_INT64, True, None),
        ("default_sample_type", 14, F.TYPE_INT64, False, None)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName("memtap_test.Profile")
    factory = message_factory.MessageFactory(pool)
    return factory.GetPrototype(desc)


def check_pprof(pid, work, stats):
    path = os.path.join(work, "diff.pb.gz")
    r = memtap("diff", pid, "s1", "s2", "--format", "pprof", "-o", path)
    if not check(r.returncode == 0, "diff --format pprof failed", r.stderr):
        return
    check("wrote " + path in r.stderr, "no word of the file written", r.stderr)
    with open(path, "rb") as f:
        raw = gzip.decompress(f.read())  # an independent gzip reader
    profile = profile_class()()
    profile.ParseFromString(raw)
    strings = list(profile.string_table)
    check(strings[0] == "", "string_table[0] is not empty")
    types = [(strings[t.type], strings[t.unit]) for t in profile.sample_type]
    check(types == [("inuse_space", "bytes"), ("inuse_objects", "count"), ("growth_space", "bytes"),
                    ("growth_objects", "count")], "sample types", types)
    check(strings[profile.default_sample_type] == "growth_space", "default sample type")
    check(len(profile.sample) == len(stats), "one sample per traceback", len(profile.sample), len(stats))
    totals = [sum(s.value[i] for s in profile.sample) for i in range(4)]
    want = [sum(s["size"] for s in stats), sum(s["count"] for s in stats), sum(s["size_diff"] for s in stats),
            sum(s["count_diff"] for s in stats)]
    check(totals == want, "pprof totals differ from diff --json", totals, want)
    # The largest-growth traceback's innermost frame, by location and function.
    functions = {f.id: f for f in profile.function}
    locations = {loc.id: loc for loc in profile.location}
    top = max(profile.sample, key=lambda s: s.value[2])
    leaf = locations[top.location_id[0]].line[0]
    fn = functions[leaf.function_id]
    top_json = stats[0]
    check((strings[fn.filename], leaf.line) == (top_json["traceback"][0]["file"], top_json["traceback"][0]["line"]),
          "top sample's leaf frame", (strings[fn.filename], leaf.line), top_json["traceback"][0])
    print("pprof: %d samples, %d locations, %d functions, %d bytes gzip'd" %
          (len(profile.sample), len(profile.location), len(profile.function), os.path.getsize(path)))


def chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def check_html(pid, work, lineno_stats):
    path = os.path.join(work, "diff.html")
    r = memtap("diff", pid, "s1", "s2", "--format", "html", "-o", path)
    if not check(r.returncode == 0, "diff --format html failed", r.stderr):
        return
    with open(path) as f:
        html = f.read()
    check("http://" not in html and "https://" not in html, "the page refers to the network")
    browser = chromium()
    if not check(browser is not None, "chromium is not installed (scripts/install-deps installs it)"):
        return
    t0 = time.time()
    r = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
                        "--user-data-dir=" + os.path.join(work, "chromium-profile"), "--dump-dom",
                        "file://" + path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    wall = time.time() - t0
    dom = r.stdout
    status = re.search(r'id="status">([^<]*)<', dom)
    check(status and status.group(1) == "ok", "the page script did not finish",
          status.group(1) if status else dom[-2000:])
    top = lineno_stats[0]
    where = "%s:%d" % (top["file"], top["line"])
    check(where in dom, "the top line is not on the page", where)
    render = re.search(r'id="render-ms">([0-9.]+)<', dom)
    drawn = re.search(r'id="drawn">([0-9]+)<', dom)
    print("html: %d bytes for %d tracebacks; page render %s ms (%s boxes drawn); chromium load+dump %.1f s" %
          (len(html), SITES, render.group(1) if render else "?", drawn.group(1) if drawn else "?", wall))


def check_speedscope(pid, work, stats):
    path = os.path.join(work, "diff.speedscope.json")
    r = memtap("diff", pid, "s1", "s2", "--format", "speedscope", "-o", path)
    if not check(r.returncode == 0, "diff --format speedscope failed", r.stderr):
        return
    with open(path) as f:
        doc = json.load(f)
    check(doc["$schema"] == "https://www.speedscope.app/file-format-schema.json", "schema", doc.get("$schema"))
    frames = doc["shared"]["frames"]
    held, growth = doc["profiles"]
    for profile in (held, growth):
        check(profile["type"] == "sampled" and profile["unit"] == "bytes", "profile kind", profile["type"])
        check(len(profile["samples"]) == len(profile["weights"]), "one weight per sample")
        check(sum(profile["weights"]) == profile["endValue"], "endValue is the sum of the weights")
        check(all(0 <= i < len(frames) for sample in profile["samples"] for i in sample), "frame index out of range")
    check(sum(held["weights"]) == sum(s["size"] for s in stats), "held total differs from diff --json",
          sum(held["weights"]), sum(s["size"] for s in stats))
    want_growth = sum(max(0, s["size_diff"]) for s in stats)
    check(sum(growth["weights"]) == want_growth, "growth total differs from diff --json",
          sum(growth["weights"]), want_growth)
    # The largest growth: its stack ends (innermost, last) at diff's top traceback's first frame.
    top = max(range(len(growth["weights"])), key=lambda i: growth["weights"][i])
    leaf = frames[growth["samples"][top][-1]]
    want = stats[0]["traceback"][0]
    check((leaf["file"], leaf["line"]) == (want["file"], want["line"]), "top sample's leaf frame", leaf, want)
    print("speedscope: %d frames, %d + %d samples, %d bytes" %
          (len(frames), len(held["samples"]), len(growth["samples"]), os.path.getsize(path)))


def check_bad_input(pid, work):
    r = memtap("diff", pid, "s1", "s2", "--format", "svg")
    check(r.returncode == 2 and "--format must be" in r.stderr, "bad --format", r.returncode, r.stderr)
    missing = os.path.join(work, "no-such-dir", "x.html")
    t0 = time.time()
    r = memtap("diff", pid, "s1", "s2", "--format", "html", "-o", missing)
    check(r.returncode == 1 and "no-such-dir" in r.stderr, "unwritable -o", r.returncode, r.stderr)
    check(time.time() - t0 < 5, "an unwritable -o should fail fast")
    leftovers = [n for n in os.listdir(work) if ".tmp-memtap-" in n]
    check(not leftovers, "temporary files left behind", leftovers)


def main():
    work = tempfile.mkdtemp(prefix="memtap-export-")
    target = subprocess.Popen([PYTHON, TARGET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              universal_newlines=True)
    try:
        pid = int(target.stdout.readline().split()[1])
        r = memtap("attach", pid, "--exact")
        if r.returncode == 5:
            print("SKIP: ptrace denied: " + r.stderr.strip())
            return 77
        if not check(r.returncode == 0, "attach failed", r.stderr):
            return 1
        memtap("snapshot", pid, "s1")
        target.stdin.write("grow %d\n" % SITES)
        target.stdin.flush()
        check(target.stdout.readline().strip() == "done", "target did not grow")
        memtap("snapshot", pid, "s2")
        r = memtap("diff", pid, "s1", "s2", "--json", "--by", "traceback", "--top", 100000)
        stats = json.loads(r.stdout)["stats"]
        check(len(stats) >= SITES, "expected at least %d tracebacks, got %d" % (SITES, len(stats)))
        lineno = json.loads(memtap("diff", pid, "s1", "s2", "--json").stdout)["stats"]
        check_pprof(pid, work, stats)
        check_speedscope(pid, work, stats)
        check_html(pid, work, lineno)
        check_bad_input(pid, work)
        memtap("detach", pid)
    finally:
        target.kill()
        target.wait()
        shutil.rmtree(work, ignore_errors=True)
    for failure in FAILURES:
        print("FAIL: " + failure)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
