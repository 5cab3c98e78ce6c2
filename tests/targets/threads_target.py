"""Named OS threads that each allocate a known, different amount, and an
application line whose memory is allocated inside the standard library, for
memtap's per-thread and by-user tests (issue 8 item 5).

  python threads_target.py   starts WORKERS threads, names each one
                             "mt-worker-I" with prctl(PR_SET_NAME) (CPython
                             before 3.14 gives Thread.name to no one), prints
                             "ready TID0 TID1 ..." (native ids, in worker
                             order), then obeys stdin lines:
    "alloc MB"   worker I builds (I + 1) * MB MiB of bytes objects at the
                 line marked THREAD-ALLOC and keeps them; answered
                 "alloc-done TID:BYTES ..." with each worker's true bytes
                 (sys.getsizeof of every object and the list)
    "report MB"  the main thread builds a JSON document of about MB MiB
                 with json.dumps at the line marked USER-LINE and keeps it:
                 the big string is allocated inside json/encoder.py;
                 answered "report-done BYTES"
    "quit"       stops
"""
import ctypes
import json
import os
import sys
import threading

WORKERS = 4
CHUNK = 100000
PR_SET_NAME = 15  # linux/prctl.h
SYS_GETTID = 186  # x86-64 syscall table
libc = ctypes.CDLL(None)
kept = []


def native_id():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()  # 3.8+
    return libc.syscall(SYS_GETTID)


def build(megabytes):
    working = [bytes(CHUNK) for _ in range(megabytes * 1024 * 1024 // CHUNK)]  # THREAD-ALLOC
    return working, sys.getsizeof(working) + sum(sys.getsizeof(b) for b in working)


class Worker(threading.Thread):
    def __init__(self, index):
        threading.Thread.__init__(self, daemon=True)
        self.index = index
        self.tid = None
        self.started_up = threading.Event()
        self.orders = []
        self.wake = threading.Condition()
        self.done = threading.Event()
        self.true_bytes = 0

    def run(self):
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(("mt-worker-%d" % self.index).encode()), 0, 0, 0)
        self.tid = native_id()
        self.started_up.set()
        while True:
            with self.wake:
                while not self.orders:
                    self.wake.wait()
                megabytes = self.orders.pop(0)
            data, true_bytes = build(megabytes)
            kept.append(data)
            self.true_bytes = true_bytes
            self.done.set()

    def order(self, megabytes):
        self.done.clear()
        with self.wake:
            self.orders.append(megabytes)
            self.wake.notify()


def make_report(megabytes):
    rows = [{"id": i, "text": "x" * 240} for i in range(megabytes * 4096)]
    text = json.dumps(rows)  # USER-LINE
    del rows
    return text


def main():
    workers = [Worker(i) for i in range(WORKERS)]
    for w in workers:
        w.start()
        w.started_up.wait()
    print("ready " + " ".join(str(w.tid) for w in workers))
    sys.stdout.flush()
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "alloc":
            for w in workers:
                w.order((w.index + 1) * int(words[1]))
            for w in workers:
                w.done.wait()
            print("alloc-done " + " ".join("%d:%d" % (w.tid, w.true_bytes) for w in workers))
        elif words[0] == "report":
            text = make_report(int(words[1]))
            kept.append(text)
            print("report-done %d" % sys.getsizeof(text))
        elif words[0] == "quit":
            break
        sys.stdout.flush()


if __name__ == "__main__":
    main()
