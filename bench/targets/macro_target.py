#!/usr/bin/env python3
"""A dozen workloads of the kinds pyperformance has, written for memtap's
macro benchmark (bench/macro.py), timed inside this one process.

Prints "ready PID", then on stdin:
  list               -> "workloads NAME NAME ..." (those this interpreter can run)
  run NAME REPS [K]  -> "time NAME WALL CPU": the best of K (default 1) timings
                        of REPS runs each, by the wall clock (perf_counter) and
                        by this process's CPU time (process_time: every thread,
                        memtap's agent thread included)
  passthrough on LIB -> "passthrough on": hooks that only forward
                        (passthrough_hooks.c built as LIB) over every domain
  passthrough off    -> "passthrough off": the allocators put back
Runs on CPython 3.6+ (no walrus, no f-string '=' specifiers).
"""
import copy
import io
import json
import logging
import os
import pickle
import random
import re
import sys
import time
import xml.etree.ElementTree as ET

import passthrough  # bench/targets: hooks that only forward

RNG = random.Random(1234)
RECORDS = [{"id": i, "name": "user%d" % i, "tags": ["a", "b", str(i % 7)], "score": i * 0.5,
            "active": i % 3 == 0, "nested": {"x": i, "y": [i, i + 1]}} for i in range(2000)]
RECORDS_JSON = json.dumps(RECORDS)
TEXT = " ".join("word%d user%d@example.com 2024-%02d-%02d" % (i, i % 50, i % 12 + 1, i % 28 + 1)
                for i in range(3000))


def json_dumps():
    json.dumps(RECORDS)


def json_loads():
    json.loads(RECORDS_JSON)


def pickle_roundtrip():
    pickle.loads(pickle.dumps(RECORDS, protocol=pickle.HIGHEST_PROTOCOL))


def deepcopy():
    copy.deepcopy(RECORDS[:600])


EMAIL = re.compile(r"(\w+)@(\w+)\.com")
DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def regex():
    found = EMAIL.findall(TEXT)
    dates = [m.groups() for m in DATE.finditer(TEXT)]
    re.sub(r"user(\d+)", lambda m: "u" + m.group(1), TEXT)
    return len(found) + len(dates)


LOGGER = logging.getLogger("macro")
LOGGER.propagate = False
LOG_STREAM = io.StringIO()
_handler = logging.StreamHandler(LOG_STREAM)
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
LOGGER.addHandler(_handler)
LOGGER.setLevel(logging.INFO)


def logging_work():
    for i in range(2000):
        LOGGER.info("request %d from %s took %.3f ms", i, "10.0.0.%d" % (i % 255), i * 0.01)
    LOG_STREAM.seek(0)
    LOG_STREAM.truncate()


def xml_etree():
    root = ET.Element("catalog")
    for i in range(800):
        item = ET.SubElement(root, "item", id=str(i), kind="k%d" % (i % 5))
        ET.SubElement(item, "title").text = "Title %d" % i
        ET.SubElement(item, "price").text = "%.2f" % (i * 1.25)
    data = ET.tostring(root)
    parsed = ET.fromstring(data)
    return sum(1 for _ in parsed.iter("item"))


class Task(object):
    """A richards-like scheduler: tasks hold packets and pass them on."""

    def __init__(self, ident, priority, work):
        self.ident = ident
        self.priority = priority
        self.work = work
        self.queue = []
        self.done = 0

    def run(self, scheduler):
        if self.queue:
            packet = self.queue.pop(0)
            packet.hops += 1
            target = scheduler.tasks[(self.ident + packet.hops) % len(scheduler.tasks)]
            if packet.hops < self.work:
                target.queue.append(packet)
            else:
                self.done += 1
                scheduler.finished.append(Packet(packet.kind))


class Packet(object):
    def __init__(self, kind):
        self.kind = kind
        self.hops = 0
        self.data = [0] * 4


class Scheduler(object):
    def __init__(self):
        self.tasks = [Task(i, i % 3, 8 + i % 5) for i in range(10)]
        self.finished = []

    def run(self, packets):
        for i in range(packets):
            self.tasks[i % len(self.tasks)].queue.append(Packet(i % 3))
        for _ in range(200):
            for task in sorted(self.tasks, key=lambda t: t.priority):
                task.run(self)
        return len(self.finished)


def richards():
    Scheduler().run(400)


def generators():
    def numbers(n):
        for i in range(n):
            yield i

    def squares(it):
        for x in it:
            yield (x, x * x)

    def evens(it):
        for pair in it:
            if pair[0] % 2 == 0:
                yield pair

    return sum(b for _, b in evens(squares(numbers(60000))))


def string_build():
    parts = []
    for i in range(20000):
        parts.append("%s=%d;" % ("key" + str(i % 100), i))
        parts.append("{0}:{1}".format(i, i * 2))
    text = "".join(parts)
    return len(text.upper().split(";"))


def churn():
    """Pure allocation churn, the worst case: small dicts and lists."""
    for i in range(60000):
        d = {"a": i, "b": [i, i]}
        del d


def churn_strings():
    """inprocess_churn.py's loop, where the issue's churn figures came from:
    a string, a dict and a list each round, kept only until the next."""
    for i in range(30000):
        s = str(i) * 3
        d = {"a": s, "b": [s, i]}
    del s, d


WORKLOADS = [("json_dumps", json_dumps), ("json_loads", json_loads), ("pickle", pickle_roundtrip),
             ("deepcopy", deepcopy), ("regex", regex), ("logging", logging_work), ("xml_etree", xml_etree),
             ("richards", richards), ("generators", generators), ("string_build", string_build),
             ("churn", churn), ("churn_strings", churn_strings)]

try:
    import flask

    APP = flask.Flask("macro")

    @APP.route("/items/<int:item>")
    def _item(item):
        return flask.jsonify({"item": item, "tags": ["x", "y"], "price": item * 1.5})

    CLIENT = APP.test_client()

    def flask_requests():
        for i in range(60):
            CLIENT.get("/items/%d" % i)

    WORKLOADS.append(("flask", flask_requests))
except ImportError:
    pass

BY_NAME = dict(WORKLOADS)


def main():
    installed = None
    print("ready %d" % os.getpid(), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "list":
            print("workloads " + " ".join(name for name, _ in WORKLOADS), flush=True)
        elif words[0] == "passthrough":
            # "passthrough on LIB" / "passthrough off": macro.py's floor phase.
            if words[1] == "on":
                installed = passthrough.install(words[2])
            else:
                passthrough.remove(installed)
            print("passthrough %s" % words[1], flush=True)
        elif words[0] == "run":
            fn, reps = BY_NAME[words[1]], int(words[2])
            best_wall = best_cpu = float("inf")
            for _ in range(int(words[3]) if len(words) > 3 else 1):
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(reps):
                    fn()
                best_wall = min(best_wall, time.perf_counter() - wall)
                best_cpu = min(best_cpu, time.process_time() - cpu)
            print("time %s %.6f %.6f" % (words[1], best_wall, best_cpu), flush=True)


if __name__ == "__main__":
    main()
