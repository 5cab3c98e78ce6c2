"""A small order service that leaks through helpers/audit.py.

Per-worker state lives in module globals (each uWSGI worker is its own
process with its own copy): a counter of orders served and a small price
cache. GET /state shows both, so one can check they are intact after memtap
detaches.
"""
import os

from flask import Flask, jsonify, request

from helpers.audit import AuditLog

app = Flask(__name__)

ORDERS_SERVED = 0
PRICE_CACHE = {}  # bounded: one entry per product, 8 products


def price_of(product):
    # Filled once per product; a cache that stops growing, unlike the audit log.
    if product not in PRICE_CACHE:
        PRICE_CACHE[product] = round(9.5 + 1.25 * product, 2)
    return PRICE_CACHE[product]


@app.post("/orders")
def create_order():
    global ORDERS_SERVED
    body = request.get_data()
    product = int(request.args.get("product", "0")) % 8
    AuditLog.record(request.method, request.path, body)
    ORDERS_SERVED += 1
    return jsonify(worker=os.getpid(), order=ORDERS_SERVED, price=price_of(product))


@app.get("/state")
def state():
    return jsonify(
        worker=os.getpid(),
        orders_served=ORDERS_SERVED,
        price_cache={str(k): v for k, v in sorted(PRICE_CACHE.items())},
        audit_entries=AuditLog.size(),
    )


@app.after_request
def name_worker(response):
    # Lets the traffic driver tell which worker answered.
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response
