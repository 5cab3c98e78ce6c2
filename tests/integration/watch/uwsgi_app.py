"""A WSGI app whose workers each grow a list at one line, for
`memtap watch --all-workers`. Loaded per worker (--lazy-apps), so each worker
has its own growing thread."""
import threading
import time

HELD = []


def grow():
    while True:
        HELD.append(bytearray(64 * 1024))  # WORKER-GROWTH
        time.sleep(0.02)


_grower = threading.Thread(target=grow)
_grower.daemon = True
_grower.start()


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
