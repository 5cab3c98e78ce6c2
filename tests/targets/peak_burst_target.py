"""A threaded request server where one rare request builds a large working set
for about a second and frees it again, for memtap's peak test (issue 8).

  python peak_burst_target.py    prints "ready", then obeys stdin lines:
    "burst MB"   the next request builds MB megabytes of bytes objects at the
                 line marked PEAK-BURST, holds them HOLD seconds, drops them;
                 answered "burst-done TRUE_BYTES" once they are freed, where
                 TRUE_BYTES is the working set's true size (what the
                 allocator was asked for at that line: every bytes object
                 plus the list holding them, measured with sys.getsizeof)
    "quit"       stops
Meanwhile 8 worker threads keep serving small requests (a few KiB each,
allocated and freed), like a server between incidents.
"""
import concurrent.futures
import gc
import sys
import threading
import time

HOLD = 1.0
CHUNK = 64 * 1024
OUT = threading.Lock()
STOP = threading.Event()


def say(text):
    with OUT:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def small_request(i):
    # A request's worth of short-lived objects.
    reply = {"id": i, "items": [str(i * k) for k in range(50)]}
    return len(reply["items"])


def big_request(megabytes):
    n = megabytes * 1024 * 1024 // CHUNK
    working = [bytes(CHUNK) for _ in range(n)]  # PEAK-BURST
    true_bytes = sys.getsizeof(working) + sum(sys.getsizeof(b) for b in working)
    time.sleep(HOLD)
    del working
    gc.collect()
    say("burst-done %d" % true_bytes)


def serve(pool):
    i = 0
    while not STOP.is_set():
        futures = [pool.submit(small_request, i + k) for k in range(8)]
        for f in futures:
            f.result()
        i += 8
        time.sleep(0.005)


pool = concurrent.futures.ThreadPoolExecutor(8)
server = threading.Thread(target=serve, args=(pool,), daemon=True)
server.start()
say("ready")
for command in sys.stdin:
    words = command.split()
    if words and words[0] == "burst":
        pool.submit(big_request, int(words[1]))
    elif words and words[0] == "quit":
        break
STOP.set()
server.join()
pool.shutdown()
