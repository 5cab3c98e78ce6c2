#!/usr/bin/python3
"""A feature service that keeps memory outside Python's allocators.

Each request computes an embedding (a numpy array) for a user and caches it
"for the next request" in a dict nobody ever trims, and writes an audit row
into an in-memory SQLite database nobody ever prunes. numpy's array data is
malloc'd by numpy (not PyMem) and reported through PyTraceMalloc_Track;
SQLite's pages are malloc'd by libsqlite3 itself. tracemalloc would need a
restart to see the first and never sees the second.

Runs under Debian's python3 with python3-numpy. Prints "ready PID", then
serves 20 requests a second until killed.
"""
import os
import sqlite3
import time

import numpy

EMBEDDINGS = {}  # user -> array; the leak: one 64 KiB array per new user
AUDIT = sqlite3.connect(":memory:")  # the other one: rows nobody deletes
AUDIT.execute("create table audit (user integer, payload blob)")


def embedding_for(user):
    vector = numpy.random.default_rng(user).standard_normal(8192)  # 64 KiB of float64
    EMBEDDINGS[user] = vector
    return vector


def respond(user):
    vector = embedding_for(user)
    AUDIT.execute("insert into audit values (?, ?)", (user, vector[:1024].tobytes()))
    return float(vector.sum())


def main():
    print("ready %d" % os.getpid(), flush=True)
    user = 0
    while True:
        user += 1
        respond(user)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
