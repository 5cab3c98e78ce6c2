"""WSGI app for integration.refs.uwsgi_idle: GET /add keeps PER_REQUEST more
Entry objects, allocated at the SITE line, in the module-level list HELD;
GET /state only reports (pid, the module's name as uWSGI imported it, how
many entries HELD has, the SITE line) and keeps nothing."""
import json
import os

PER_REQUEST = 100
HELD = []


class Entry:
    def __init__(self, n):
        self.n = n


def _site_line():
    for n, line in enumerate(open(__file__), 1):
        if line.rstrip().endswith("# SITE entries"):
            return n
    return 0


SITE_LINE = _site_line()


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/add":
        for _ in range(PER_REQUEST):
            HELD.append(Entry(len(HELD)))  # SITE entries
    body = json.dumps({"pid": os.getpid(), "module": __name__, "held": len(HELD), "per_request": PER_REQUEST,
                       "site_line": SITE_LINE})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]
