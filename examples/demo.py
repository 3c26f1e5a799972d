"""dictamesh-connectors, the full story: `make demo`.

On the local services that `make demo` starts:

1. an HTTP API (a local server) serves orders, page by page; one page
   answers 503 first, and the HTTP connector retries it;
2. a thread pool stores each order in PostgreSQL (one transaction: the order
   and its outbox row) and publishes an event to Kafka;
3. a consumer reads the events (at-least-once: offsets committed after the
   work) and writes each to MongoDB and to a JSON-lines file;
4. along the way, a classified error (a duplicate order: CONSTRAINT_VIOLATION,
   permanent) and a retry (the 503: UNAVAILABLE, transient);
5. the end: every connector's health, counters and pool statistics.

Point it at other servers with DICTAMESH_TEST_POSTGRES_DSN,
DICTAMESH_TEST_KAFKA_BOOTSTRAP and DICTAMESH_TEST_MONGODB_URI.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import dictamesh_connectors
from dictamesh_connectors import ConnectorError, RetryPolicy
from dictamesh_connectors.file import FileConfig, FileConnector
from dictamesh_connectors.observability import Listener

DSN = os.environ.get(
    "DICTAMESH_TEST_POSTGRES_DSN",
    "postgresql://dictamesh:dictamesh-test-pw@127.0.0.1:55432/dictamesh_test",
)
KAFKA = os.environ.get("DICTAMESH_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:59092")
MONGODB = os.environ.get(
    "DICTAMESH_TEST_MONGODB_URI", "mongodb://127.0.0.1:57017/?directConnection=true"
)
ORDERS = int(os.environ.get("DEMO_ORDERS", "200"))
PAGE = 25
THREADS = 8


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def show_error(what: str, err: ConnectorError) -> None:
    kind = "transient" if err.transient else "permanent"
    print(
        f"   {what}: {type(err).__name__} code={err.code.value} {kind} hint={err.retry_hint.value}"
    )
    print(f"     message: {err}")


class Progress:
    """A progress bar on a terminal; a line every 25% otherwise (CI logs)."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.tty = sys.stdout.isatty()
        self._lock = threading.Lock()
        self._shown = -1

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            done, total = self.done, self.total
            if self.tty:
                filled = int(30 * done / total)
                bar = "#" * filled + "." * (30 - filled)
                line = f"\r   {self.label:<22} [{bar}] {done}/{total}"
                end = "\n" if done >= total else ""
                print(line, end=end, flush=True)
            else:
                quarter = 4 * done // total
                if quarter != self._shown:
                    self._shown = quarter
                    print(f"   {self.label:<22} {done}/{total}", flush=True)


class RetryReporter(Listener):
    """Prints each retry as it happens (an observability listener)."""

    def on_retry(self, connector, operation, attempt, wait, error):
        print(
            f"\n   retry: {connector.name} {operation.split('?')[0]} attempt {attempt} failed with "
            f"{error.code.value} ({'transient' if error.transient else 'permanent'}); "
            f"again in {wait:.2f}s",
            flush=True,
        )


# ------------------------------------------------------------- the orders API


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_api(run: str) -> _ThreadingServer:
    """GET /orders?page=N: PAGE orders per page; page 2 answers 503 once."""
    failed_once: set[int] = set()
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if p)
        page = int(query.get("page", "1"))
        with lock:
            flaky = page == 2 and page not in failed_once
            failed_once.add(page)
        if flaky:
            start_response("503 Service Unavailable", [("Retry-After", "0.2")])
            return [b'{"error": "busy"}']
        first = (page - 1) * PAGE + 1
        orders = [
            {"id": f"{run}-{n}", "sku": f"sku-{n % 17}", "qty": 1 + n % 5, "cents": 199 * n}
            for n in range(first, min(first + PAGE, ORDERS + 1))
        ]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"orders": orders}).encode()]

    server = make_server("127.0.0.1", 0, app, _ThreadingServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ------------------------------------------------------------------ the story


def main() -> int:
    run = uuid.uuid4().hex[:8]
    table, topic, collection = f"demo_orders_{run}", f"demo-orders-{run}", f"demo_orders_{run}"
    outdir = tempfile.mkdtemp(prefix="dictamesh-demo-")
    started = time.monotonic()
    api_server = start_api(run)
    reporter = RetryReporter()

    step("1. Five connectors, each from a URL (passwords never show)")
    api = dictamesh_connectors.connect(
        f"http://127.0.0.1:{api_server.server_port}",
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.1, max_backoff=1.0),
        max_idle_conns_per_host=THREADS,
    )
    db = dictamesh_connectors.connect(DSN, max_open_conns=THREADS, min_open_conns=2)
    kafka = dictamesh_connectors.connect(f"kafka://{KAFKA}", linger_ms=5)
    mongo = dictamesh_connectors.connect(MONGODB, database="dictamesh_demo")
    files = FileConnector(FileConfig(root=outdir))
    files.connect()
    connectors = {"http": api, "postgresql": db, "kafka": kafka, "mongodb": mongo, "file": files}
    for connector in connectors.values():
        connector.add_listener(reporter)
        print(f"   {connector!r}")
    db.execute(
        f"CREATE TABLE {table} (id text PRIMARY KEY, sku text NOT NULL, qty int NOT NULL, "
        "cents bigint NOT NULL)"
    )
    db.execute(f"CREATE TABLE {table}_outbox (order_id text PRIMARY KEY, sent boolean NOT NULL)")
    kafka.create_topic(topic, partitions=3)

    try:
        step(f"2. {THREADS} threads: HTTP pages -> PostgreSQL transactions -> Kafka events")
        pages = (ORDERS + PAGE - 1) // PAGE
        stored = Progress("orders stored", ORDERS)
        futures: list[Any] = []
        futures_lock = threading.Lock()

        def import_page(page: int) -> int:
            orders = api.get("/orders", params={"page": page}).json()["orders"]
            for order in orders:
                with db.transaction() as tx:
                    tx.execute(
                        f"INSERT INTO {table} (id, sku, qty, cents) VALUES (%s, %s, %s, %s)",
                        [order["id"], order["sku"], order["qty"], order["cents"]],
                    )
                    tx.execute(f"INSERT INTO {table}_outbox VALUES (%s, false)", [order["id"]])
                future = kafka.produce(topic, json.dumps(order).encode(), key=order["id"].encode())
                with futures_lock:
                    futures.append(future)
                stored.advance()
            return len(orders)

        with ThreadPoolExecutor(THREADS) as pool:
            imported = sum(pool.map(import_page, range(1, pages + 1)))
        delivered = sum(1 for f in futures if f.result(60).offset >= 0)
        print(f"   {imported} orders stored, {delivered} events delivered to Kafka")

        step("3. Classified errors, the same way whatever the driver")
        try:
            db.execute(
                f"INSERT INTO {table} (id, sku, qty, cents) VALUES (%s, 'x', 1, 1)", [f"{run}-1"]
            )
        except ConnectorError as err:
            show_error("the same order twice", err)
        parts = urllib.parse.urlsplit(DSN)
        wrong = parts._replace(
            netloc=f"{parts.username}:wrong-password@{parts.hostname}:{parts.port}"
        )
        try:
            dictamesh_connectors.connect(urllib.parse.urlunsplit(wrong))
        except ConnectorError as err:
            show_error("a wrong password", err)
        try:
            api.get("/orders", params={"page": 10_000}).json()["orders"][0]
        except IndexError:
            print("   past the last page: an empty page, not an error")

        step("4. A consumer: Kafka -> MongoDB and a JSON-lines file (at least once)")
        written = Progress("events consumed", delivered)
        stop = threading.Event()

        def handle(message: Any) -> None:
            order = json.loads(message.value)
            mongo.update_one(collection, {"_id": order["id"]}, {"$set": order}, upsert=True)
            files.append("orders.jsonl", message.value + b"\n")
            written.advance()
            if written.done >= delivered:
                stop.set()

        consumer = kafka.consumer(f"demo-{run}", [topic])
        result = consumer.run(handle, stop_event=stop)
        print(f"   {result}")
        in_mongo = mongo.count(collection, {})
        lines = files.read_text("orders.jsonl").count("\n")
        print(f"   MongoDB has {in_mongo} orders; {outdir}/orders.jsonl has {lines} lines")
        outbox = db.query(f"SELECT count(*) FROM {table}_outbox").scalar()
        print(f"   PostgreSQL has {outbox} outbox rows")

        step("5. Every connector: health, counters, pool statistics")
        print(f"   {'connector':<11} {'health':<7} {'ops':>6} {'errors':<28} {'retries':>7}  pool")
        for name, connector in connectors.items():
            try:
                connector.ping(timeout=5)
                health = "ok"
            except ConnectorError as err:
                health = err.code.value
            stats = connector.stats()
            errors = ", ".join(f"{code}={n}" for code, n in sorted(stats.errors.items())) or "-"
            pool = " ".join(
                f"{key}={stats.pool[key]}"
                for key in ("in_use", "idle", "waiting", "size", "max")
                if key in stats.pool
            )
            print(
                f"   {name:<11} {health:<7} {stats.operations:>6} {errors:<28} "
                f"{stats.retries:>7}  {pool or '-'}"
            )
    finally:
        step("6. Clean shutdown: in-flight work finishes, new work is refused, nothing is lost")
        with db.transaction() as tx:
            tx.execute(f"DROP TABLE {table}_outbox")
            tx.execute(f"DROP TABLE {table}")
        mongo.drop_collection(collection)
        finished: list[int] = []
        running = threading.Barrier(7)

        def slow_report(i: int) -> None:
            running.wait(10)
            db.query("SELECT pg_sleep(0.3), %s::int", [i])
            finished.append(i)

        reports = [threading.Thread(target=slow_report, args=(i,)) for i in range(6)]
        for t in reports:
            t.start()
        running.wait(10)
        time.sleep(0.05)  # let the six queries start before disconnecting
        db.disconnect(timeout=30)  # waits for them
        for t in reports:
            t.join()
        print(f"   {len(finished)} of 6 in-flight reports completed before the pool closed")
        print(f"   state after disconnect(): {db.state.value}")
        try:
            db.query("SELECT 1")
        except ConnectorError as err:
            show_error("a query after disconnect()", err)
        undelivered = kafka.disconnect(timeout=30)
        for connector in (api, mongo, files):
            connector.disconnect(timeout=10)
        api_server.shutdown()
        print(f"   all disconnected ({undelivered or 0} Kafka records undelivered)")
    print(f"\n== Done. The whole story took {time.monotonic() - started:.1f}s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
