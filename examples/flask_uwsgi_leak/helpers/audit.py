"""Per-request audit trail: the leak this example is about.

`entries` is a class attribute, so it lives as long as the class does (the
whole life of the worker). Every call to `record` adds one more tuple to it
and nothing ever removes one: memory grows by about the size of each
request body.
"""
import time


class AuditLog:
    entries = []  # shared by every AuditLog() and never trimmed

    @classmethod
    def record(cls, method, path, body):
        # The record and its text copy of the body are made on this one line,
        # so memtap (like tracemalloc) charges the leaked bytes to it.
        cls.entries.append((time.time(), method, path, body.decode("utf-8", "replace")))

    @classmethod
    def size(cls):
        return len(cls.entries)
