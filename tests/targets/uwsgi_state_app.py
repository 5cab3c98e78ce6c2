"""WSGI app for memtap's uWSGI integration test: per-worker state that must
survive attach/detach untouched. GET / counts and caches; GET /state reports."""
import hashlib
import json
import os

COUNTER = [0]
CACHE = {}


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/state":
        digest = hashlib.sha1(repr(sorted(CACHE.items())).encode()).hexdigest()
        body = json.dumps({"pid": os.getpid(), "counter": COUNTER[0], "cache": digest, "size": len(CACHE)})
    else:
        COUNTER[0] += 1
        CACHE["k%d" % (COUNTER[0] % 500)] = "v" * (COUNTER[0] % 97)
        body = json.dumps({"pid": os.getpid(), "n": COUNTER[0], "junk": [str(i) for i in range(200)][-1]})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]
