"""dictamesh-connectors in two minutes: `make demo`.

What it shows, on the local services that `make demo` starts:

1. Connectors built from URLs with ``dictamesh_connectors.connect``.
2. One connector shared by a thread pool (PostgreSQL and HTTP).
3. Errors classified the same way whatever the driver: a wrong password, a
   constraint violation, a server that is down, an HTTP 404, a 503 whose
   ``Retry-After`` is honoured.
4. A clean shutdown: ``disconnect()`` lets in-flight work finish, then closes.

Point it at other servers with DICTAMESH_TEST_POSTGRES_DSN.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import dictamesh_connectors
from dictamesh_connectors import ConnectorError, NotConnectedError, RetryPolicy

DSN = os.environ.get(
    "DICTAMESH_TEST_POSTGRES_DSN",
    "postgresql://dictamesh:dictamesh-test-pw@127.0.0.1:55432/dictamesh_test",
)


def step(title: str) -> None:
    print(f"\n== {title}")


def show_error(what: str, err: ConnectorError) -> None:
    kind = "transient" if err.transient else "permanent"
    print(
        f"   {what}: {type(err).__name__} code={err.code.value} {kind} hint={err.retry_hint.value}"
    )
    print(f"     message: {err}")


# --------------------------------------------------------------- a tiny API server


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_api(db: Any, table: str) -> tuple[_ThreadingServer, list[float]]:
    """A JSON API over the orders table, with a flaky endpoint for the retry demo."""
    flaky_hits: list[float] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/flaky":
            flaky_hits.append(time.monotonic())
            if len(flaky_hits) == 1:
                start_response("503 Service Unavailable", [("Retry-After", "1")])
                return [b"busy"]
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status": "recovered"}']
        if path.startswith("/orders/"):
            order_id = path.rsplit("/", 1)[-1]
            row = db.query(
                f"SELECT id, sku, qty FROM {table} WHERE id = %s", [int(order_id)]
            ).first()
            if row is None:
                start_response("404 Not Found", [("Content-Type", "application/json")])
                return [b'{"error": "no such order"}']
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(row).encode()]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = make_server("127.0.0.1", 0, app, _ThreadingServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, flaky_hits


def main() -> int:
    table = f"demo_orders_{uuid.uuid4().hex[:8]}"

    step("1. Connect to PostgreSQL from a URL (the password never shows)")
    db = dictamesh_connectors.connect(DSN, max_open_conns=8)
    print(f"   {db!r}")
    db.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, sku text UNIQUE, qty int NOT NULL)")

    try:
        step("2. One connector, 16 threads, 400 transactional inserts")

        def place_order(n: int) -> int:
            with db.transaction() as tx:
                return int(
                    tx.execute(
                        f"INSERT INTO {table} (sku, qty) VALUES (%s, %s) RETURNING id",
                        [f"SKU-{n:04d}", n % 7 + 1],
                    ).rows[0]["id"]
                )

        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            ids = list(pool.map(place_order, range(400)))
        elapsed = time.perf_counter() - started
        total = db.query(f"SELECT count(*) FROM {table}").scalar()
        print(f"   inserted {len(ids)} orders in {elapsed:.2f}s; the table now holds {total}")

        step("3. Errors, classified the same way whatever the driver")
        try:
            db.execute(f"INSERT INTO {table} (sku, qty) VALUES (%s, %s)", ["SKU-0001", 1])
        except ConnectorError as err:
            show_error("duplicate SKU", err)
        wrong = DSN.replace(urllib.parse.urlsplit(DSN).password or "", "not-the-password")
        try:
            dictamesh_connectors.connect(wrong, retry=RetryPolicy.no_retry())
        except ConnectorError as err:
            show_error("wrong password", err)
        try:
            dictamesh_connectors.connect(
                "postgresql://nobody:pw@127.0.0.1:1/none", connect_timeout=2, retry=1
            )
        except ConnectorError as err:
            show_error("server down", err)

        step("4. An HTTP connector over the same data, shared by 32 threads")
        server, flaky_hits = start_api(db, table)
        port = server.server_address[1]
        api = dictamesh_connectors.connect(
            f"http://127.0.0.1:{port}", retry={"max_attempts": 3, "max_backoff": 5}
        )
        try:
            with ThreadPoolExecutor(32) as pool:
                orders = list(pool.map(lambda i: api.get(f"/orders/{i}").json(), ids[:200]))
            assert [o["id"] for o in orders] == ids[:200]
            print(f"   fetched {len(orders)} orders concurrently, each the right one")
            try:
                api.get("/orders/999999")
            except ConnectorError as err:
                show_error("GET a missing order", err)
            answer = api.get("/flaky").json()
            gap = flaky_hits[1] - flaky_hits[0]
            print(f"   /flaky answered 503 Retry-After: 1, then {answer}; waited {gap:.2f}s")
        finally:
            api.disconnect()
            server.shutdown()

        step("5. Clean shutdown: in-flight queries finish, new ones are refused")
        results: list[str] = []

        def slow_report(i: int) -> None:
            db.query("SELECT pg_sleep(0.5)")
            results.append(f"report {i}")

        workers = [threading.Thread(target=slow_report, args=(i,)) for i in range(6)]
        for w in workers:
            w.start()
        time.sleep(0.2)
        closer = threading.Thread(target=db.disconnect, kwargs={"timeout": 30})
        closer.start()
        time.sleep(0.05)
        try:
            db.query("SELECT 1")
        except NotConnectedError as err:
            show_error("a query after disconnect() started", err)
        for w in workers:
            w.join()
        closer.join()
        print(f"   {len(results)} of 6 in-flight reports completed before the pool closed")
        print(f"   state after disconnect(): {db.state.value}")
    finally:
        cleanup = dictamesh_connectors.connect(DSN)
        cleanup.execute(f"DROP TABLE IF EXISTS {table}")
        cleanup.disconnect()
        db.disconnect()

    print("\nDone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
