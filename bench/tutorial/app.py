"""bench/tutorial/app.py: the app of Aiven's tutorial "Add caching to your
PostgreSQL app using Redis" in its final form, on this project's table and
URLs, so that make bench can measure it beside the service with the same
wrk scripts (issue 6: "at least 3 times faster on every kind of request";
2.5 times for POST /orders).

What it keeps of the tutorial, on purpose, so that the figure is its own:

- FastAPI with plain (sync) handlers: FastAPI runs them on its thread pool.
- psycopg2 and redis-py, and a new connection to each for every request
  that needs it (connect, use, close; redis.from_url in the decorator),
  no pool: the tutorial's connect_to_postgres() / connect_to_redis().
- The cache is a simple decorator around the read handlers: GET the key;
  on a hit, json.loads of it is the answer; on a miss, the handler runs and
  its result is SET with json.dumps and a TTL. No lock, no generation, no
  header: a stampede and a stale fill are possible, as in the tutorial.
- A write inserts, commits, and deletes the one cache entry it changed.

What it adapts:

- The tutorial counts orders matching one criterion; here the criterion is
  customerid, and an optional to= (last orderdate, inclusive), because
  bench/miss.lua asks for a count nobody asked before that way. The key is
  built from the handler's arguments, as the decorator has no other way to
  tell two requests apart.
- The tutorial's decorator is there "for when more methods are added": GET
  /orders/{orderid} is such a method, cached the same way.
- POST /orders takes what bench/post.lua sends (customerid, netamount,
  tax); totalamount is their sum, orderdate today.

TUTORIAL_CONNECT=process (what make bench measures, unless told
otherwise) keeps one Postgres connection (autocommit, used by one thread at
a time) and one Redis client per process instead: the tutorial's code with
its connections kept, the strongest version of it, and the one the issue's
figure for it (about 1,200 POSTs a second) can only have come from: a new
connection with its password exchange costs about 25 ms here, which holds
the per-request version to a few dozen misses or POSTs a second.
TUTORIAL_CONNECT=request: a connection per request, as above.

Settings (environment): DATABASE_URL, REDIS_URL (required);
TUTORIAL_PREFIX (tutorial:), put before every key so that no key can be
one of the service's; CACHE_TTL (60 s, the service's default).

Run: /usr/bin/python3 -m uvicorn --app-dir bench/tutorial app:app --port N
(bench/run-bench.sh does, with as many --workers as the service's pool).
"""

import datetime
import json
import logging
import os
import threading
from decimal import Decimal
from functools import wraps
from typing import Optional

import psycopg2
import redis
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

DATABASE_URL = os.environ["DATABASE_URL"]
REDIS_URL = os.environ["REDIS_URL"]
CACHE_PREFIX = os.getenv("TUTORIAL_PREFIX", "tutorial:")
CACHE_TTL_SECONDS = int(os.getenv("CACHE_TTL", "60"))
KEEP = os.getenv("TUTORIAL_CONNECT", "process") == "process"

ORDER_COLUMNS = ("orderid", "orderdate", "customerid", "netamount", "tax",
                 "totalamount")

app = FastAPI()


class KeptConnection:
    """TUTORIAL_CONNECT=process: the process's one Postgres connection, in
    autocommit, lent to one thread at a time (like one worker's one
    connection in the service); close() gives it back."""
    lock = threading.Lock()
    conn = None

    def __init__(self):
        KeptConnection.lock.acquire()
        try:
            if KeptConnection.conn is None or KeptConnection.conn.closed:
                KeptConnection.conn = psycopg2.connect(DATABASE_URL)
                KeptConnection.conn.autocommit = True
        except BaseException:
            KeptConnection.lock.release()
            raise

    def cursor(self):
        return KeptConnection.conn.cursor()

    def commit(self):
        pass

    def close(self):
        KeptConnection.lock.release()


KEPT_REDIS = redis.from_url(REDIS_URL) if KEEP else None


def connect_to_postgres():
    """A new connection, for this request only (the caller closes it); or,
    TUTORIAL_CONNECT=process, the process's kept one."""
    try:
        return KeptConnection() if KEEP else psycopg2.connect(DATABASE_URL)
    except psycopg2.Error as e:
        logging.error("cannot connect to Postgres: %s", e)
        raise HTTPException(status_code=503, detail="database unavailable")


def connect_to_redis():
    """A new client, for this request only: redis.from_url makes a client
    with a pool of its own, which connects (and AUTHs) on its first
    command and is closed when the client is dropped; or, with
    TUTORIAL_CONNECT=process, the process's one client (its pool)."""
    return KEPT_REDIS if KEEP else redis.from_url(REDIS_URL)


def cache_key(name, **criteria):
    """'<prefix><name>:<k>=<v>&...', the criteria sorted, None left out."""
    parts = "&".join(f"{k}={v}" for k, v in sorted(criteria.items())
                     if v is not None)
    return f"{CACHE_PREFIX}{name}:{parts}"


def redis_cache(name):
    """The tutorial's decorator: the handler's result, cached under a key
    made of name and the handler's arguments, for CACHE_TTL_SECONDS."""
    def decorator(func):
        @wraps(func)
        def wrapper(**kwargs):
            redis_conn = connect_to_redis()
            key = cache_key(name, **kwargs)
            cached = redis_conn.get(key)
            if cached is not None:
                return json.loads(cached)
            result = func(**kwargs)
            redis_conn.set(key, json.dumps(result), ex=CACHE_TTL_SECONDS)
            return result
        return wrapper
    return decorator


def as_json(row):
    """An orders row as a dict json.dumps can take."""
    order = dict(zip(ORDER_COLUMNS, row))
    order["orderdate"] = order["orderdate"].isoformat()
    for k in ("netamount", "tax", "totalamount"):
        order[k] = float(order[k])
    return order


# Before /orders/{orderid}: FastAPI tries the routes in order.
@app.get("/orders/count")
@redis_cache("count")
def read_count(customerid: int, to: Optional[datetime.date] = None):
    sql = "SELECT count(*) FROM orders WHERE customerid = %s"
    args = [customerid]
    if to is not None:
        sql += " AND orderdate <= %s"
        args.append(to)
    conn = connect_to_postgres()
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, args)
            count = cursor.fetchone()[0]
    finally:
        conn.close()
    return {"count": count}


@app.get("/orders/{orderid}")
@redis_cache("order")
def read_order(orderid: int):
    conn = connect_to_postgres()
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT " + ", ".join(ORDER_COLUMNS)
                + " FROM orders WHERE orderid = %s", (orderid,))
            row = cursor.fetchone()
    finally:
        conn.close()
    if row is None:
        raise HTTPException(status_code=404, detail="no such order")
    return as_json(row)


class NewOrder(BaseModel):
    customerid: int
    netamount: Decimal
    tax: Decimal


@app.post("/orders", status_code=201)
def create_order(order: NewOrder):
    conn = connect_to_postgres()
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO orders (orderdate, customerid, netamount, tax,"
                " totalamount) VALUES (%s, %s, %s, %s, %s) RETURNING "
                + ", ".join(ORDER_COLUMNS),
                (datetime.date.today(), order.customerid, order.netamount,
                 order.tax, order.netamount + order.tax))
            row = cursor.fetchone()
        conn.commit()
    finally:
        conn.close()
    # The count this order changed; the tutorial's one DEL after a write.
    # (A count with to= before today is not changed by an order of today.)
    connect_to_redis().delete(cache_key("count", customerid=order.customerid))
    return as_json(row)
