"""agent.pymalloc: the "pymalloc" read and "malloc-trim", with the agent loaded
into the interpreter running the test (no ptrace).

Checks, against the interpreter's own sys._debugmallocstats():
  - a request never waits: it is answered at once while another thread holds
    the GIL in C code, and the read completes only once a GIL holder
    allocates again (pymalloc_read.h);
  - the figures agree with sys._debugmallocstats() taken right after;
  - detach disarms a read that never ran;
  - under PYTHONMALLOC=malloc the result is "disabled";
  - malloc-trim returns glibc's free heap pages (RSS goes down).

Usage: python agent_pymalloc_test.py AGENT_SO [--no-pymalloc]
"""
import ctypes
import gc
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_client as ac  # noqa: E402

MiB = 1024 * 1024


def key_values(payload):
    values = {}
    for line in payload.splitlines():
        key, _, value = line.partition(" ")
        values[key] = value
    return values


def pymalloc(agent):
    ok, payload = agent.request("pymalloc")
    ac.check(ok, "pymalloc refused: %s" % payload)
    return key_values(payload)


def debugmallocstats():
    """sys._debugmallocstats() writes to C stderr: catch fd 2 in a file."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    figures = {}
    for line in text.splitlines():
        label, eq, value = line.partition("=")
        if not eq:
            continue
        label = label.strip()
        value = value.strip().replace(",", "")
        if not value.isdigit():
            continue  # "Small block threshold = 512, in 32 size classes."
        number = int(value)
        if label == "# arenas allocated current":
            figures["arenas"] = number
        elif label.endswith("bytes/arena"):
            figures["arena_bytes"] = number
        elif label == "# bytes in allocated blocks":
            figures["allocated_bytes"] = number
        elif label == "# bytes in available blocks":
            figures["available_bytes"] = number
        elif "unused pools" in label:
            figures["unused_pool_bytes"] = number
    return figures


def read_until_complete(agent, timeout=5.0):
    first = pymalloc(agent)
    wanted = int(first["pymalloc_requested"])
    deadline = time.time() + timeout
    while True:
        [object() for _ in range(100)]  # a GIL holder that allocates
        reply = pymalloc(agent)
        if int(reply["pymalloc_completed"]) >= wanted:
            return reply
        ac.check(time.time() < deadline, "pymalloc read %d not completed in %.0f s" % (wanted, timeout))
        time.sleep(0.01)


def check_gil_held_elsewhere(agent):
    """Another thread holds the GIL in C code (PyDLL keeps it across the
    call) for 1.5 s: a client in another process asks twice and must be
    answered at once each time, with the read still pending."""
    read_until_complete(agent)
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, agent.socket_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.2)  # the client starts; its first request comes during the hold
    libc = ctypes.PyDLL(None)
    libc.usleep(1500 * 1000)  # GIL held, no allocation
    out, err = client.communicate(timeout=30)
    ac.check(client.returncode == 0, "client failed: %s" % err.decode())
    rows = [[float(v) for v in line.split()] for line in out.decode().splitlines()]
    ac.check(len(rows) == 2, "client output %r" % out)
    for seconds, _, _ in rows:
        ac.check(seconds < 0.5, "a pymalloc request waited %.3f s while the GIL was held" % seconds)
    # The first request armed a read; 0.4 s later it was still armed (same
    # sequence number) and had not completed: nobody holding the GIL allocated.
    ac.check(rows[0][1] == rows[1][1] and rows[0][2] == rows[1][2] and rows[1][2] < rows[1][1],
             "a read completed while the GIL was held without allocating: %r" % rows)
    reply = read_until_complete(agent)
    ac.check(int(reply["pymalloc_completed"]) >= rows[1][1], "read did not complete after the GIL came back")


# The client: two requests 0.4 s apart, during the GIL hold; prints
# "SECONDS REQUESTED COMPLETED" per request.
CLIENT = r"""
import socket, sys, time
time.sleep(0.4)
for _ in range(2):
    t0 = time.time()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sys.argv[1])
    s.sendall(b"pymalloc\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    values = dict(l.split(" ", 1) for l in data.decode().split("\n")[1:] if l)
    print("%.3f %s %s" % (time.time() - t0, values["pymalloc_requested"], values["pymalloc_completed"]))
    sys.stdout.flush()
    time.sleep(0.4)
"""


def check_figures(agent, args):
    # Fragmentation: many small dicts, 1 in 500 kept.
    many = [{"i": i} for i in range(300000)]
    kept = many[::500]
    del many
    gc.collect()
    reply = read_until_complete(agent)
    # While any hook sits on top of the object domain, sys._debugmallocstats()
    # prints nothing (it looks for pymalloc there): the truth is read with
    # the agent detached, a few allocations later.
    agent.detach()
    truth = debugmallocstats()
    ac.check(agent.start(args) == ac.START_OK, "restart failed")
    ac.check(reply["pymalloc_result"] == "ok", "pymalloc_result %r" % reply["pymalloc_result"])
    ac.check(int(reply["pymalloc_read_unix_ms"]) > 0, "no read time")
    arenas = int(reply["pymalloc_arenas"])
    ac.check(abs(arenas - truth["arenas"]) <= 2, "arenas %d, sys._debugmallocstats %d" % (arenas, truth["arenas"]))
    for key in ("arena_bytes", "allocated_bytes", "available_bytes", "unused_pool_bytes"):
        got = int(reply["pymalloc_" + key])
        want = truth[key]
        # The two reads are a few allocations apart.
        ac.check(abs(got - want) <= max(0.03 * want, 1 * MiB),
                 "pymalloc_%s %d, sys._debugmallocstats %d" % (key, got, want))
    free = int(reply["pymalloc_available_bytes"]) + int(reply["pymalloc_unused_pool_bytes"])
    ac.check(free > 10 * int(reply["pymalloc_allocated_bytes"]) // 100,
             "the freed dicts should leave free space in arenas: %r" % reply)
    print("pymalloc: %d arenas, %d allocated, %d free (truth %r)" % (arenas, int(reply["pymalloc_allocated_bytes"]), free, truth))
    del kept


def check_detach_disarms(agent, args):
    """A client in another process arms a read and detaches while this
    thread holds the GIL without allocating: the read never ran, and it must
    not run at the allocations after the detach."""
    read_until_complete(agent)
    client = subprocess.Popen(
        [sys.executable, "-c", ARM_AND_DETACH, agent.socket_path], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    time.sleep(0.2)
    ctypes.PyDLL(None).usleep(1500 * 1000)  # GIL held, no allocation
    out, err = client.communicate(timeout=30)
    ac.check(client.returncode == 0, "client failed: %s" % err.decode())
    requested, completed = [int(v) for v in out.split()]
    ac.check(completed < requested, "the armed read ran during the GIL hold: %r" % out)
    [object() for _ in range(100000)]  # allocations after detach: no read may run
    ac.check(agent.start(args) == ac.START_OK, "restart failed")
    after = pymalloc(agent)
    ac.check(int(after["pymalloc_completed"]) == completed,
             "a read armed before detach ran after it (%d -> %s)" % (completed, after["pymalloc_completed"]))


# Arms a read, then detaches; prints "REQUESTED COMPLETED" of the arming reply.
ARM_AND_DETACH = r"""
import socket, sys, time
def ask(command):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sys.argv[1])
    s.sendall(command.encode() + b"\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, rest = data.decode().partition("\n")
    assert head.startswith("ok "), head
    return dict(l.split(" ", 1) for l in rest.split("\n") if l)
time.sleep(0.4)
values = ask("pymalloc")
ask("detach")
print(values["pymalloc_requested"], values["pymalloc_completed"])
"""


def check_trim(agent):
    # ~650-byte strings come from glibc malloc (over pymalloc's 512 bytes);
    # keeping 1 in 500 pins the heap's top, so only a trim returns the pages.
    lines = ["x" * 650 + str(i) for i in range(200000)]
    kept = lines[::500]
    del lines
    gc.collect()
    ok, payload = agent.request("malloc-trim")
    ac.check(ok, "malloc-trim refused: %s" % payload)
    values = key_values(payload)
    before, after = int(values["rss_before_bytes"]), int(values["rss_after_bytes"])
    ac.check(values["trim_result"] in ("0", "1"), "trim_result %r" % values["trim_result"])
    ac.check(before - after > 50 * MiB, "malloc-trim returned only %d bytes (%r)" % (before - after, values))
    print("malloc-trim: rss %d -> %d" % (before, after))
    del kept


def main():
    agent = ac.Agent(sys.argv[1])
    no_pymalloc = "--no-pymalloc" in sys.argv
    args = agent.make_args(mode=ac.MODE_SAMPLED, module=ac.libpython_path())
    ac.check(agent.start(args) == ac.START_OK, "start failed")
    status = agent.status()
    for key in ("malloc_heap_bytes", "malloc_mmap_bytes", "malloc_in_use_bytes", "malloc_releasable_bytes"):
        ac.check(key in status, "status lacks %s" % key)
    if no_pymalloc:
        reply = read_until_complete(agent)
        ac.check(reply["pymalloc_result"] == "disabled", "PYTHONMALLOC=malloc: result %r" % reply)
        agent.detach()
        print("ok (pymalloc disabled)")
        return
    check_gil_held_elsewhere(agent)
    check_figures(agent, args)
    check_detach_disarms(agent, args)
    check_trim(agent)
    agent.detach()
    # The same, with pymalloc off, in a child interpreter.
    env = dict(os.environ, PYTHONMALLOC="malloc")
    rc = subprocess.call([sys.executable, os.path.abspath(__file__), sys.argv[1], "--no-pymalloc"], env=env)
    ac.check(rc == 0, "PYTHONMALLOC=malloc run failed (%d)" % rc)
    print("ok")


if __name__ == "__main__":
    main()
