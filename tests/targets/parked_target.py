"""A real CPython process for memtap's integration tests.

Usage: python parked_target.py MODE

It prints one line "ready <facts>" on stdout, then parks its threads in the
state MODE names and keeps a counter and a dict moving. On SIGUSR1 it prints
"check <facts>" (the signal handler runs in the main thread between
bytecodes, so this works whatever state the threads are in). <facts> are
space-separated key=value pairs:
  alloc=...      the three PyMem allocator structs (PyMem_GetAllocator), as
                 seen from inside the process: after detach they must equal
                 the ones printed at ready
  threads=N fds=N
  counter=N      keeps growing while the process runs
  state=HEX      checksum of the program's own data, which must not change
Runs on CPython 3.6 to 3.13. Nothing here is memtap-specific.
"""
import ctypes
import hashlib
import os
import select
import signal
import socket
import sys
import threading
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "sleep"


class PyMemAllocatorEx(ctypes.Structure):
    # Include/cpython/pymem.h (3.6-3.13): ctx, malloc, calloc, realloc, free.
    _fields_ = [(name, ctypes.c_void_p) for name in ("ctx", "malloc", "calloc", "realloc", "free")]


def allocators():
    get = ctypes.pythonapi.PyMem_GetAllocator
    get.argtypes = [ctypes.c_int, ctypes.POINTER(PyMemAllocatorEx)]
    get.restype = None
    parts = []
    for domain in (0, 1, 2):  # RAW, MEM, OBJ
        a = PyMemAllocatorEx()
        get(domain, ctypes.byref(a))
        parts.append(",".join("%x" % (getattr(a, f[0]) or 0) for f in a._fields_))
    return "/".join(parts)


STATE = {"k%d" % i: ("v%d" % i) * (i % 7 + 1) for i in range(2000)}
COUNTER = [0]
# The check runs ctypes, which is not async-signal-safe from the OS's point
# of view, but Python runs this handler later, in the main thread.
def facts():
    digest = hashlib.sha1(repr(sorted(STATE.items())).encode()).hexdigest()[:16]
    return "alloc=%s threads=%d fds=%d counter=%d state=%s" % (
        allocators(), len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd")),
        COUNTER[0], digest)


def on_usr1(signum, frame):
    # The test writes a nonce before signalling, and may signal again if an
    # answer is slow (3.6 can lose a signal that races with its pending-call
    # lock); the nonce tells the answers apart.
    try:
        with open("/tmp/memtap-check-%d" % os.getpid()) as f:
            nonce = f.read().strip()
    except OSError:
        nonce = "-"
    sys.stdout.write("check nonce=%s %s\n" % (nonce, facts()))
    sys.stdout.flush()


signal.signal(signal.SIGUSR1, on_usr1)


def ticker():
    while True:
        COUNTER[0] += 1
        time.sleep(0.01)


def sleeper():
    while True:
        time.sleep(0.05)


def allocating():
    keep = []
    while True:
        keep.append([str(i) for i in range(100)])
        if len(keep) > 200:
            del keep[:100]


def busy_c_no_gil():
    data = b"x" * (1 << 20)
    while True:
        hashlib.sha256(data).digest()  # releases the GIL for large inputs


def start(fn):
    t = threading.Thread(target=fn)
    t.daemon = True
    t.start()


def park():
    if MODE == "sleep":  # main thread asleep in time.sleep
        start(ticker)
        print_ready()
        while True:
            time.sleep(1)
    elif MODE == "read":  # main thread blocked in read() on a pipe nobody writes
        start(ticker)
        r, w = os.pipe()
        print_ready()
        while True:
            os.read(r, 1)
    elif MODE == "select":
        start(ticker)
        r, w = os.pipe()
        print_ready()
        while True:
            select.select([r], [], [], 5.0)
    elif MODE == "accept":
        start(ticker)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        print_ready()
        while True:
            s.accept()
    elif MODE == "lockwait":  # main thread in a futex wait (never borrowable); a sleeper is
        start(ticker)
        lock = threading.Lock()
        lock.acquire()
        start(sleeper)
        print_ready()
        lock.acquire()
    elif MODE == "futexonly":  # every thread in a futex wait: no safe point, ever
        lock = threading.Lock()
        lock.acquire()
        print_ready()
        lock.acquire()
    elif MODE == "busy_c":  # threads busy in C with the GIL released
        start(ticker)
        start(busy_c_no_gil)
        start(busy_c_no_gil)
        print_ready()
        while True:
            time.sleep(1)
    elif MODE == "allocating":  # threads allocating hard, main thread in pure Python
        start(ticker)
        start(allocating)
        print_ready()
        allocating()
    elif MODE == "spin":  # single thread spinning in pure Python, no syscalls for seconds
        print_ready()
        x = 0
        while True:
            x += 1
            if x % 1000 == 0:
                COUNTER[0] += 1
    else:
        sys.exit("unknown mode %s" % MODE)


def print_ready():
    sys.stdout.write("ready %s\n" % facts())
    sys.stdout.flush()


park()
