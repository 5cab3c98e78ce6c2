#!/usr/bin/env python3
"""A job worker that leaks through reference cycles.

  worker.py [--seconds S] [--rate R]   prints "ready PID", then handles R jobs
                                       a second for S seconds (default 600, 50)

Every job gets a buffer from the same helper, `new_buffer`, on two paths:
  - `parse_job` uses it and drops it: freed at once by reference counting;
  - `run_job` builds a Task whose Step points back at the Task (a cycle).
The worker turned the cyclic garbage collector off "to avoid GC pauses", so
only reference counting frees memory, and a cycle's counts never reach zero:
every Task, its Step and its buffer stay forever.

Grouped by line, both paths show as the one `new_buffer` line; grouped by
traceback (`memtap diff PID OLD NEW --by traceback`), the leaking path is
the one through run_job.
"""
import argparse
import gc
import os
import time

gc.disable()  # the "optimisation" that turns every cycle into a leak


def new_buffer(size):
    return bytearray(size)  # where the bytes are allocated, on both paths


class Step:
    def __init__(self, task, name):
        self.task = task  # back-reference: Task -> Step -> Task is a cycle
        self.name = name


class Task:
    def __init__(self, job_id):
        self.job_id = job_id
        self.buffer = new_buffer(8192)
        self.steps = [Step(self, "fetch"), Step(self, "store")]


def parse_job(job_id):
    header = new_buffer(8192)  # temporary: freed when this function returns
    return len(header) + job_id


def run_job(job_id):
    task = Task(job_id)
    return task.steps[-1].name  # `task` goes out of scope, but the cycle keeps it


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600, help="exit after this long")
    parser.add_argument("--rate", type=float, default=50, help="jobs per second")
    args = parser.parse_args()
    print(f"ready {os.getpid()}", flush=True)
    start = time.monotonic()
    job_id = 0
    while time.monotonic() - start < args.seconds:
        parse_job(job_id)
        run_job(job_id)
        job_id += 1
        time.sleep(max(0.0, start + job_id / args.rate - time.monotonic()))


if __name__ == "__main__":
    main()
