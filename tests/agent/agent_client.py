"""Shared helpers for the agent tests: the agent loaded with ctypes into the
interpreter running the test, no ptrace. Mirrors src/agent/protocol.h; keep
this file runnable by every CPython from 3.6 on (no walrus, no dataclasses).
"""
import ctypes
import os
import socket
import sys
import sysconfig
import tempfile
import time

PROTOCOL_VERSION = 3
MODE_SAMPLED = 0
MODE_EXACT = 1

START_PENDING = -1
START_OK = 0
START_ALREADY_RUNNING = 1
START_BAD_ARGS = 2
START_NO_PYTHON = 3
START_NOT_INITIALIZED = 4
START_FINALIZING = 5
START_THREAD_FAILED = 7
START_SOCKET_FAILED = 8

PEER_UNMAPPED = 1
MAX_CONNECTIONS = 16
REQUEST_TIMEOUT_MS = 2000
REPLY_TIMEOUT_MS = 10000

SKIP = 77


class StartArgs(ctypes.Structure):
    # struct memtap_start_args, src/agent/protocol.h
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("protocol_version", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("frames", ctypes.c_uint32),
        ("sample_bytes", ctypes.c_uint64),
        ("peer_uid", ctypes.c_uint32),
        ("peer_flags", ctypes.c_uint32),
        ("scratch_addr", ctypes.c_uint64),
        ("scratch_size", ctypes.c_uint64),
        ("start_status_addr", ctypes.c_uint64),
        ("socket_path", ctypes.c_char * 108),
        ("python_module", ctypes.c_char * 4096),
        ("features", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class PyMemAllocatorEx(ctypes.Structure):
    # Include/cpython/pymem.h
    _fields_ = [
        ("ctx", ctypes.c_void_p),
        ("malloc", ctypes.c_void_p),
        ("calloc", ctypes.c_void_p),
        ("realloc", ctypes.c_void_p),
        ("free", ctypes.c_void_p),
    ]

    def key(self):
        return (self.ctx, self.malloc, self.calloc, self.realloc, self.free)


def fail(message):
    sys.stderr.write("FAIL: %s\n" % message)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def get_allocators():
    get = ctypes.pythonapi.PyMem_GetAllocator
    get.restype = None
    get.argtypes = [ctypes.c_int, ctypes.POINTER(PyMemAllocatorEx)]
    out = []
    for domain in range(3):
        a = PyMemAllocatorEx()
        get(domain, ctypes.byref(a))
        out.append(a.key())
    return out


def libpython_path():
    """The loaded libpython of a shared build (pyenv), "" for a static one."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return ""
    name = sysconfig.get_config_var("LDLIBRARY")
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and os.path.basename(parts[5]).startswith(name):
                return parts[5]
    # Debian's python3.11 reports Py_ENABLE_SHARED (it ships a libpython
    # too) but its executable links libpython statically.
    return ""


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def thread_count():
    return len(os.listdir("/proc/self/task"))


class Agent(object):
    def __init__(self, path):
        # CDLL releases the GIL around calls, like a host that hijacks a
        # thread which does not hold it.
        self.lib = ctypes.CDLL(path)
        self.start_fn = self.lib.memtap_agent_start
        self.start_fn.restype = ctypes.c_int
        self.start_fn.argtypes = [ctypes.POINTER(StartArgs)]
        self.dir = tempfile.mkdtemp(prefix="memtap-agent-test-")
        self.socket_path = os.path.join(self.dir, "control.sock")

    def make_args(self, mode=MODE_EXACT, frames=8, sample_bytes=512 * 1024, module=""):
        args = StartArgs()
        args.struct_size = ctypes.sizeof(StartArgs)
        args.protocol_version = PROTOCOL_VERSION
        args.mode = mode
        args.frames = frames
        args.sample_bytes = sample_bytes
        args.peer_uid = os.getuid()
        args.socket_path = self.socket_path.encode()
        args.python_module = module.encode()
        return args

    def start_entry(self, args):
        """The entry alone, as the borrowed thread runs it."""
        return self.start_fn(ctypes.byref(args))

    @staticmethod
    def status_word(args):
        """The start-status word the entry pointed args.start_status_addr at
        (the host reads it through /proc/PID/mem)."""
        check(args.start_status_addr != 0, "entry did not fill start_status_addr")
        return ctypes.c_int32.from_address(args.start_status_addr).value

    def wait_started(self, args, timeout=10.0):
        """Polls the start-status word as the host does: the final status."""
        deadline = time.time() + timeout
        while True:
            word = self.status_word(args)
            if word != START_PENDING:
                return word
            check(time.time() < deadline, "start-status word still PENDING after %.0f s" % timeout)
            time.sleep(0.001)

    def start(self, args):
        """The whole start protocol: the entry's answer, or once it started
        the agent thread, the outcome that thread put in the word."""
        rc = self.start_entry(args)
        if rc != START_OK:
            return rc
        return self.wait_started(args)

    def connect(self, timeout):
        """A connected socket. A socket with a timeout gets EAGAIN at once
        when the listen backlog is full (agent.control's idle clients fill
        it); a blocking connect, as memtap's, would wait: so retry until
        timeout."""
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(self.socket_path)
                return s
            except BlockingIOError:
                s.close()
                check(time.monotonic() < deadline, "connect: backlog still full after %.0f s" % timeout)
                time.sleep(0.005)
            except BaseException:
                s.close()
                raise

    def request(self, command, timeout=10.0):
        s = self.connect(timeout)
        try:
            s.sendall((command + "\n").encode())
            data = b""
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head, _, rest = data.partition(b"\n")
        head = head.decode()
        if head.startswith("err "):
            return False, head[4:]
        check(head.startswith("ok "), "bad reply head %r" % head)
        size = int(head[3:])
        check(len(rest) == size, "payload %d bytes, announced %d" % (len(rest), size))
        return True, rest.decode("utf-8", "replace")

    def status(self):
        ok, payload = self.request("status")
        check(ok, "status refused: %s" % payload)
        values = {}
        for line in payload.splitlines():
            key, _, value = line.partition(" ")
            values[key] = value
        return values

    def detach(self):
        ok, payload = self.request("detach")
        check(ok and payload == "", "detach reply %r %r" % (ok, payload))


def wait_until(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def unescape(name):
    """protocol.h: '\\', '\n' and '\t' in names are written escaped."""
    out = []
    i = 0
    while i < len(name):
        c = name[i]
        if c == "\\" and i + 1 < len(name):
            out.append({"\\": "\\", "n": "\n", "t": "\t"}.get(name[i + 1], name[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_snapshot(text):
    """[(size, count, [(line, file, function), ...])], header dict."""
    header, traces, _ = parse_snapshot_threads(text)
    return header, [(size, count, frames) for size, count, frames, _ in traces]


def parse_snapshot_threads(text):
    """header dict, [(size, count, frames, tid)], {tid: (state, name)}."""
    lines = text.split("\n")
    check(lines[0] == "memtap-snapshot 4", "snapshot magic %r" % lines[0])
    header = {}
    traces = []
    threads = {}
    i = 1
    while i < len(lines):
        line = lines[i]
        i += 1
        if line == "end":
            break
        if line.startswith("T "):
            _, size, count, nframes, samples, tid, domain = line.split(" ")
            check(int(samples) >= 0, "sample count %r" % samples)
            check(int(domain) == 0, "no PyTraceMalloc_Track caller in these tests: domain %r" % domain)
            # In exact mode each live record is one allocation.
            if header.get("mode") == "exact":
                check(int(samples) == int(count), "exact mode: samples %s != count %s" % (samples, count))
            frames = []
            for _ in range(int(nframes)):
                f = lines[i]
                i += 1
                check(f.startswith("F "), "expected F line, got %r" % f)
                lineno, _, rest = f[2:].partition(" ")
                filename, _, function = rest.partition("\t")
                frames.append((int(lineno), unescape(filename), unescape(function)))
            traces.append((int(size), int(count), frames, int(tid)))
        elif line.startswith("thread "):
            _, tid, state, name = line.split(" ", 3)
            check(state in ("running", "exited", "unknown"), "thread state %r" % state)
            check(int(tid) not in threads, "thread %s listed twice" % tid)
            threads[int(tid)] = (state, unescape(name))
        else:
            key, _, value = line.partition(" ")
            header[key] = value
    check(lines[i - 1] == "end", "snapshot not terminated by end")
    for _, _, _, tid in traces:
        check(tid == 0 or tid in threads, "trace of thread %d has no thread line" % tid)
    return header, traces, threads
