"""The campaign's load: threads writing through our connectors, every outcome recorded.

Each thread picks operations at random across the four backends and writes
records with ids nobody else uses. The ``Ledger`` records, per backend,
which writes were acknowledged (the connector returned, or the Kafka
delivery future resolved OK), which failed with ``maybe_applied=False``
(the connector claims they did not happen), and which failed with
``maybe_applied=True``. The checker holds the servers to those claims.

Every failure must be a ``ConnectorError`` whose ``code`` is an
``ErrorCode``; anything else is kept, with its traceback, as unclassified.
"""

from __future__ import annotations

import collections
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from dictamesh_connectors.errors import ConnectorError, ErrorCode

PG_TABLE = "chaos_writes"
MONGO_INSERTS = "inserts"
MONGO_UPSERTS = "upserts"

# (backend, operation, weight): what a workload thread picks from.
OPERATIONS: tuple[tuple[str, str, int], ...] = (
    ("postgresql", "insert", 4),
    ("postgresql", "insert_batch", 1),
    ("postgresql", "transaction", 1),
    ("postgresql", "read", 2),
    ("mongodb", "insert", 3),
    ("mongodb", "upsert", 3),
    ("mongodb", "read", 2),
    ("kafka", "produce", 6),
    ("http", "post_keyed", 3),
    ("http", "post_auto_key", 2),
    ("http", "get", 1),
)

# A write's key in the ledger: (backend, kind) where kind names the store
# the checker reads: postgresql rows, mongodb inserts / upserts, kafka
# records, http applications.
Store = tuple[str, str]


class Ledger:
    """Thread-safe record of what the workload did and what it was told."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acked: dict[Store, set[str]] = collections.defaultdict(set)  # guarded by _lock
        self.not_applied: dict[Store, set[str]] = collections.defaultdict(set)  # guarded by _lock
        self.maybe_applied: dict[Store, set[str]] = collections.defaultdict(set)  # guarded
        self.operations: collections.Counter[tuple[str, str]] = collections.Counter()  # guarded
        self.errors: collections.Counter[tuple[str, str]] = collections.Counter()  # guarded
        self.unclassified: list[str] = []  # guarded by _lock
        self.pending = 0  # guarded by _lock: Kafka futures not resolved yet
        self.acked_at: dict[str, float] = {}  # guarded by _lock: id -> time.monotonic()
        self.failure_of: dict[str, str] = {}  # guarded by _lock: id -> what the error said

    def operation(self, backend: str, op: str) -> None:
        with self._lock:
            self.operations[(backend, op)] += 1

    def ack(self, store: Store, ids: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            self.acked[store].update(ids)
            for i in ids:
                self.acked_at[i] = now

    def failed(self, store: Store | None, ids: list[str], err: BaseException) -> None:
        """Record a failure: classified (a ConnectorError with an ErrorCode) or not."""
        backend = store[0] if store else "?"
        with self._lock:
            if isinstance(err, ConnectorError) and isinstance(err.code, ErrorCode):
                self.errors[(backend, err.code.value)] += 1
                if store is not None:
                    target = self.maybe_applied if err.maybe_applied else self.not_applied
                    target[store].update(ids)
                    said = f"{err.code.value} maybe_applied={err.maybe_applied}: {err.message}"
                    for i in ids:
                        self.failure_of[i] = said[:300]
                return
            text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
            self.unclassified.append(f"{backend}: {text}")
            if store is not None:
                self.maybe_applied[store].update(ids)

    def failed_read(self, backend: str, err: BaseException) -> None:
        self.failed((backend, "read"), [], err)

    def add_pending(self, n: int) -> None:
        with self._lock:
            self.pending += n


class Workload:
    """``threads`` threads running random operations on shared connectors until stopped.

    One connector per backend, shared by every thread (the way users run
    them). ``pause`` seconds between operations keep the CPU use modest on a
    shared machine while still keeping every connector busy from many
    threads at once.
    """

    def __init__(
        self,
        *,
        postgres: Any,
        mongo: Any,
        kafka: Any,
        http: Any,
        http_auto: Any,
        topic: str,
        ledger: Ledger,
        threads: int,
        seed: int,
        pause: float,
    ) -> None:
        self.pg, self.mongo, self.kafka, self.http = postgres, mongo, kafka, http
        self.http_auto = http_auto
        self.topic = topic
        self.ledger = ledger
        self.threads = threads
        self.seed = seed
        self.pause = pause
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._acked_mongo: list[str] = []  # appended by workers (list.append is atomic)
        names = [(b, o) for b, o, _ in OPERATIONS]
        weights = [w for _, _, w in OPERATIONS]
        self._choices = (names, weights)

    def start(self) -> None:
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), name=f"chaos-worker-{n}")
            self._workers.append(worker)
            worker.start()

    def stop(self, timeout: float = 120.0) -> dict[str, str]:
        """Stop every thread; those still running after ``timeout``: name -> where it is stuck."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        frames = sys._current_frames()
        return {
            w.name: "".join(traceback.format_stack(frames[w.ident]))
            if w.ident in frames
            else "(no frame)"
            for w in self._workers
            if w.is_alive() and w.ident is not None
        }

    def _run(self, n: int) -> None:
        rng = random.Random(f"{self.seed}-worker-{n}")
        names, weights = self._choices
        counter = 0
        while not self._stop.is_set():
            backend, op = rng.choices(names, weights)[0]
            counter += 1
            base = f"{backend[0]}{n}-{counter}"
            self.ledger.operation(backend, op)
            try:
                self._dispatch(backend, op, base, rng)
            except Exception as exc:  # recorded; the checker fails the run on it
                self.ledger.failed((backend, "?"), [], exc)
            self._stop.wait(self.pause * rng.random() * 2)

    def _dispatch(self, backend: str, op: str, base: str, rng: random.Random) -> None:
        call: Callable[[str, random.Random], None] = getattr(self, f"_{backend}_{op}")
        call(base, rng)

    # ---------------------------------------------------------- PostgreSQL

    def _postgresql_insert(self, base: str, rng: random.Random) -> None:
        store = ("postgresql", "rows")
        try:
            self.pg.execute(f"INSERT INTO {PG_TABLE} (id) VALUES (%s)", [base])
        except Exception as err:
            self.ledger.failed(store, [base], err)
        else:
            self.ledger.ack(store, [base])

    def _postgresql_insert_batch(self, base: str, rng: random.Random) -> None:
        store = ("postgresql", "rows")
        ids = [f"{base}.{i}" for i in range(4)]
        try:
            self.pg.executemany(f"INSERT INTO {PG_TABLE} (id) VALUES (%s)", [[i] for i in ids])
        except Exception as err:
            self.ledger.failed(store, ids, err)
        else:
            self.ledger.ack(store, ids)

    def _postgresql_transaction(self, base: str, rng: random.Random) -> None:
        # Serializable, with a read of the table: concurrent ones conflict,
        # and run_in_transaction reruns the whole function.
        store = ("postgresql", "rows")
        ids = [f"{base}.t{i}" for i in range(2)]

        def body(tx: Any) -> None:
            tx.execute(f"INSERT INTO {PG_TABLE} (id) VALUES (%s)", [ids[0]])
            tx.query(f"SELECT count(*) FROM {PG_TABLE} WHERE id = %s", [ids[0]])
            tx.execute(f"INSERT INTO {PG_TABLE} (id) VALUES (%s)", [ids[1]])

        try:
            self.pg.run_in_transaction(body)
        except Exception as err:
            self.ledger.failed(store, ids, err)
        else:
            self.ledger.ack(store, ids)

    def _postgresql_read(self, base: str, rng: random.Random) -> None:
        try:
            self.pg.query(f"SELECT count(*) AS n FROM {PG_TABLE}").scalar()
        except Exception as err:
            self.ledger.failed_read("postgresql", err)

    # ------------------------------------------------------------- MongoDB

    def _mongodb_insert(self, base: str, rng: random.Random) -> None:
        store = ("mongodb", MONGO_INSERTS)
        try:
            self.mongo.insert_one(MONGO_INSERTS, {"_id": base})
        except Exception as err:
            self.ledger.failed(store, [base], err)
        else:
            self.ledger.ack(store, [base])
            self._acked_mongo.append(base)

    def _mongodb_upsert(self, base: str, rng: random.Random) -> None:
        # Not keyed on _id, so a retried upsert that inserted twice would
        # leave two documents; "applied" counts how often it took effect.
        store = ("mongodb", MONGO_UPSERTS)
        try:
            self.mongo.update_one(
                MONGO_UPSERTS,
                {"uid": base},
                {"$set": {"uid": base}, "$inc": {"applied": 1}},
                upsert=True,
            )
        except Exception as err:
            self.ledger.failed(store, [base], err)
        else:
            self.ledger.ack(store, [base])

    def _mongodb_read(self, base: str, rng: random.Random) -> None:
        acked = self._acked_mongo
        wanted = acked[rng.randrange(len(acked))] if acked else base
        try:
            self.mongo.find_one(MONGO_INSERTS, {"_id": wanted})
        except Exception as err:
            self.ledger.failed_read("mongodb", err)

    # --------------------------------------------------------------- Kafka

    def _kafka_produce(self, base: str, rng: random.Random) -> None:
        store = ("kafka", "records")
        try:
            future = self.kafka.produce(self.topic, base.encode(), key=base.encode())
        except Exception as err:
            self.ledger.failed(store, [base], err)
            return
        self.ledger.add_pending(1)

        def done(f: Any) -> None:
            try:
                exc = f.exception(0)
                if exc is None:
                    self.ledger.ack(store, [base])
                else:
                    self.ledger.failed(store, [base], exc)
            finally:
                self.ledger.add_pending(-1)

        future.add_done_callback(done)

    # ---------------------------------------------------------------- HTTP

    def _http_post_keyed(self, base: str, rng: random.Random) -> None:
        store = ("http", "keyed")
        base = f"{base}k"
        try:
            self.http.post("/writes", json={"id": base}, idempotency_key=f"key-{base}")
        except Exception as err:
            self.ledger.failed(store, [base], err)
        else:
            self.ledger.ack(store, [base])

    def _http_post_auto_key(self, base: str, rng: random.Random) -> None:
        # This connector has auto_idempotency_key on: it makes the key, and
        # must send the same one on every retry of this call.
        store = ("http", "auto_key")
        base = f"{base}a"
        try:
            self.http_auto.post("/writes", json={"id": base})
        except Exception as err:
            self.ledger.failed(store, [base], err)
        else:
            self.ledger.ack(store, [base])

    def _http_get(self, base: str, rng: random.Random) -> None:
        try:
            self.http.get("/health")
        except Exception as err:
            self.ledger.failed_read("http", err)
