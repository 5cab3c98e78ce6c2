#!/usr/bin/env python3
"""Bounded traffic for the example, on loopback only.

  drive.py --port P traffic N [--worker PID] [--rate R]   POST N orders, then stop
  drive.py --port P state [--worker PID]       print a worker's /state (JSON)

uWSGI workers share one listening socket, so any worker may answer. With
--worker, `traffic` keeps going until that worker has answered N orders and
`state` asks until that worker answers (both give up after a fixed number of
tries). The answering worker is read from the X-Worker-Pid header.
"""
import argparse
import collections
import http.client
import json
import sys
import time

BODY = b'{"customer": "c-1042", "items": ["' + b"x" * 16000 + b'"]}'  # ~16 KB, a largish order
MAX_TRIES_PER_WANTED = 50  # for --worker: at most 50 requests per wanted answer
TIMEOUT = 5  # seconds per request


def request(port, method, path, body=None):
    # One connection per request: uWSGI's http-socket closes after each answer.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}")
        return int(response.getheader("X-Worker-Pid", "0")), data
    finally:
        conn.close()


def traffic(port, wanted, worker, rate):
    answered = collections.Counter()
    tries = 0
    limit = wanted * (MAX_TRIES_PER_WANTED if worker else 1)
    start = time.monotonic()
    while tries < limit:
        got = answered[worker] if worker else sum(answered.values())
        if got >= wanted:
            break
        if rate:
            # Paced, so a `memtap watch` running meanwhile sees steady growth.
            time.sleep(max(0.0, start + tries / rate - time.monotonic()))
        pid, _ = request(port, "POST", f"/orders?product={tries % 8}", BODY)
        answered[pid] += 1
        tries += 1
    by_worker = ", ".join(f"{pid}: {n}" for pid, n in sorted(answered.items()))
    print(f"sent {tries} orders; answered by worker {by_worker}")
    if worker and answered[worker] < wanted:
        sys.exit(f"drive.py: worker {worker} answered only {answered[worker]} of {wanted} orders")


def state(port, worker):
    for _ in range(MAX_TRIES_PER_WANTED):
        pid, data = request(port, "GET", "/state")
        if not worker or pid == worker:
            print(json.dumps(json.loads(data), sort_keys=True))
            return
        time.sleep(0.01)
    sys.exit(f"drive.py: worker {worker} did not answer /state")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    # --worker goes after the subcommand, as in `traffic 300 --worker PID`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--worker", type=int, default=0, help="target this worker PID")
    sub = parser.add_subparsers(dest="command", required=True)
    traffic_parser = sub.add_parser("traffic", parents=[common])
    traffic_parser.add_argument("requests", type=int)
    traffic_parser.add_argument("--rate", type=float, default=0, help="requests per second (default: no pause)")
    sub.add_parser("state", parents=[common])
    args = parser.parse_args()
    if args.command == "traffic":
        traffic(args.port, args.requests, args.worker, args.rate)
    else:
        state(args.port, args.worker)


if __name__ == "__main__":
    main()
