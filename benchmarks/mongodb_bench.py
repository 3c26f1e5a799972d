"""MongoDBConnector vs raw pymongo, side by side on the same server, in one run.

1. ``find_one`` by ``_id`` and ``insert_one`` at 1, 8 and 32 threads: the
   two contenders alternate for a fixed time each, over several rounds;
   printed are the median ops/s of each and the median of the per-round
   ratios connector / raw pymongo (target >= 0.95), and a control: raw
   pymongo through a second client against raw pymongo, whose ratio shows
   how much the server's own variation moves a ratio.
2. ``insert_many`` of 100,000 documents, the same three in turn
   (``--many-rounds``, default 15), the median ratio and its control.
3. Client CPU time per operation (``time.thread_time`` in the calling
   thread, one thread): the stand-in server is slower than mongod, so wall
   clock ratios hide the client's cost; the CPU difference is the
   connector's own cost per operation (target <= 10 µs), printed with a
   control (pymongo through the second client).
4. The connector's own path alone: the same verbs with pymongo's
   ``Collection`` replaced by a stub, against the bare stub call. No server,
   no network: the steadiest figure of the connector's cost on a busy box.

Both contenders use the same pool size and options (retryable reads and
writes on, the connector's default ``tz_aware`` and ``uuidRepresentation``);
raw pymongo reuses one ``Collection`` object, as a careful application does.

Usage: python benchmarks/mongodb_bench.py [--seconds 2] [--rounds 15] [--docs 100000] [--cpu-only]
       [--many-rounds 15] [--cpu-ops 200] [--cpu-batches 400]
Reads the server from DICTAMESH_TEST_MONGODB_URI (default: the local SecantusDB).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import bson
import pymongo
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from harness import run_threads

from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector

URI = os.environ.get(
    "DICTAMESH_TEST_MONGODB_URI", "mongodb://127.0.0.1:57017/?directConnection=true"
)
THREADS = (1, 8, 32)
POOL = 32


def median_ratio(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True) if b)


def alternate(
    contenders: list[tuple[str, Callable[[Any], Any]]],
    threads: int,
    seconds: float,
    rounds: int,
    each: Callable[[Callable[[Any], Any]], float] | None = None,
) -> dict[str, list[float]]:
    """Each contender's rate per round, in an order that turns each round.

    ``each`` measures one contender's round (default: ``threads`` threads
    for ``seconds``).
    """
    rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for r in range(rounds):
        # Turn who goes first, so none always meets a warmer server.
        shift = r % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        for name, op in order if r % 2 == 0 else order[::-1]:
            rates[name].append(each(op) if each else run_threads(op, threads, seconds))
    return rates


def _bulk_rate(op: Callable[[Any], Any], docs: int, bulk: Any) -> float:
    """Documents per second of one ``insert_many`` (the list built outside the
    timing), then the collection dropped so each starts empty."""
    batch = [{"n": i, "name": f"bulk {i}"} for i in range(docs)]
    start = time.perf_counter()
    op(batch)
    rate = docs / (time.perf_counter() - start)
    bulk.drop()
    return rate


def cpu_per_op(op: Callable[[int], Any], n: int) -> float:
    start = time.thread_time()
    for i in range(n):
        op(i)
    return (time.thread_time() - start) / n * 1e6


def client_cpu(
    pairs: tuple[tuple[str, Callable[[int], Any], Callable[[int], Any], Callable[[int], Any]], ...],
    ops: int,
    batches: int,
) -> None:
    """Print each verb's client CPU per operation: connector, pymongo, control.

    The three take turns in batches of ``ops`` (each batch another order):
    a load spike hits a batch's neighbours alike, so the per-batch
    differences stay meaningful on a busy machine. The control's difference
    (pymongo through a second client, minus pymongo) is what the timing
    itself strays by.
    """
    print(
        f"client CPU per operation, 1 thread (time.thread_time; batches of {ops} "
        "taking turns, medians):"
    )
    for label, ours, theirs, again in pairs:
        cpu: dict[str, list[float]] = {"ours": [], "raw": [], "control": []}
        sides = [("ours", ours), ("raw", theirs), ("control", again)]
        for batch in range(batches):
            shift = batch % 3
            for side, op in sides[shift:] + sides[:shift]:
                cpu[side].append(cpu_per_op(op, ops))

        diff = {
            side: [a - b for a, b in zip(cpu[side], cpu["raw"], strict=True)]
            for side in ("ours", "control")
        }
        low, high = median_interval(diff["ours"])
        print(
            f"  {label:<11} connector {statistics.median(cpu['ours']):7.1f} µs   "
            f"pymongo {statistics.median(cpu['raw']):7.1f} µs   "
            f"connector's own cost {statistics.median(diff['ours']):+6.1f} µs/op "
            f"(95% {low:+.1f} to {high:+.1f})   "
            f"control {statistics.median(diff['control']):+6.1f}"
        )


def median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free 95% confidence interval for the median of ``values``.

    The order statistics at ranks n/2 -+ 1.96 sqrt(n)/2 (the binomial's
    normal approximation): it assumes only that the batches are independent
    draws, not that their timings are normally distributed.
    """
    ordered = sorted(values)
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    return ordered[max(0, math.floor(n / 2 - half))], ordered[min(n - 1, math.ceil(n / 2 + half))]


class _StubCollection:
    """Stands in for pymongo's Collection: answers at once, no I/O."""

    def __init__(self, codec_options: Any) -> None:
        self.codec_options = codec_options

    def find_one(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"_id": 1}

    def insert_one(self, document: Any, session: Any = None) -> Any:
        # What pymongo's insert_one does before the socket: a document
        # without an _id gets one (a RawBSONDocument is sent as it is), and
        # the document is encoded into the message (a RawBSONDocument's
        # bytes copied).
        if not isinstance(document, RawBSONDocument) and "_id" not in document:
            document["_id"] = ObjectId()
        bson.encode(document, codec_options=self.codec_options)
        return _INSERTED


class _Inserted:
    inserted_id = 1


_INSERTED = _Inserted()


def own_path_cost(db: MongoDBConnector, client: Any, database: str, n: int = 100_000) -> None:
    stub = _StubCollection(client[database]["stub"].codec_options)
    handle = db._handle
    assert handle is not None
    handle.collections["stub"] = stub  # type: ignore[assignment]
    print(f"the connector's own path, pymongo replaced by a stub ({n} calls, 1 thread):")
    for label, ours, bare in (
        ("find_one", lambda: db.find_one("stub", {"_id": 1}),
         lambda: stub.find_one({"_id": 1}, session=None)),
        ("insert_one", lambda: db.insert_one("stub", {"n": 1, "name": "x"}),
         lambda: stub.insert_one({"n": 1, "name": "x"})),
    ):  # fmt: skip
        costs = []
        for _ in range(3):
            start = time.thread_time()
            for _ in range(n):
                ours()
            mid = time.thread_time()
            for _ in range(n):
                bare()
            costs.append(((mid - start) - (time.thread_time() - mid)) / n * 1e6)
        print(f"  {label:<11} {statistics.median(costs):5.2f} µs/op over the bare call")
    del handle.collections["stub"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=15,
        help="rounds of each contender (a ratio moves by about 2.5%% at 15)",
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument(
        "--many-rounds",
        type=int,
        default=15,
        help="insert_many rounds (one round's ratio strays by about 6%%)",
    )
    parser.add_argument("--cpu-ops", type=int, default=200, help="operations per CPU batch")
    parser.add_argument("--cpu-batches", type=int, default=400, help="CPU batches of each side")
    parser.add_argument(
        "--cpu-only", action="store_true", help="only the client CPU figures and the stub path"
    )
    args = parser.parse_args()

    database = f"bench_{uuid.uuid4().hex[:8]}"
    config = MongoDBConfig.from_url(URI, database=database, max_pool_size=POOL, app_name="bench")
    db = MongoDBConnector(config)
    db.connect()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        URI, maxPoolSize=POOL, tz_aware=True, uuidRepresentation="standard", appname="bench-raw"
    )
    raw = client[database]["items"]
    try:
        ids = db.insert_many("items", [{"n": i, "name": f"item {i}"} for i in range(1000)])

        def ours_find(i: int) -> None:
            assert db.find_one("items", {"_id": ids[i % 1000]}) is not None

        def raw_find(i: int) -> None:
            assert raw.find_one({"_id": ids[i % 1000]}) is not None

        def ours_insert(i: int) -> None:
            db.insert_one("writes", {"n": i, "name": "x"})

        raw_writes = client[database]["writes"]

        def raw_insert_reused(i: int) -> None:
            raw_writes.insert_one({"n": i, "name": "x"})

        # The control: raw pymongo against itself, through a second client
        # with the same options. Its ratio would be 1.000 on a steady
        # server; how far it strays is how far a ratio here can be trusted.
        control: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            URI, maxPoolSize=POOL, tz_aware=True, uuidRepresentation="standard", appname="bench-2"
        )
        control_items, control_writes = control[database]["items"], control[database]["writes"]

        def control_find(i: int) -> None:
            assert control_items.find_one({"_id": ids[i % 1000]}) is not None

        def control_insert(i: int) -> None:
            control_writes.insert_one({"n": i, "name": "x"})

        for op in (ours_find, raw_find, control_find, ours_insert, raw_insert_reused):
            run_threads(op, 4, 0.3)  # warm up pools and caches

        pairs = (
            ("find_one", ours_find, raw_find, control_find),
            ("insert_one", ours_insert, raw_insert_reused, control_insert),
        )
        print(f"MongoDB benchmark on {db.config.connection_string()}")
        if not args.cpu_only:  # throughput, then insert_many
            print(
                f"{'operation':<12} {'threads':>7} {'connector/s':>12} {'pymongo/s':>12}"
                f" {'ratio':>7}  {'control':>7}  ({args.rounds} rounds; control: pymongo"
                " / pymongo on a second client)"
            )
            for label, ours, theirs, again in pairs:
                for threads in THREADS:
                    rates = alternate(
                        [("ours", ours), ("raw", theirs), ("control", again)],
                        threads,
                        args.seconds,
                        args.rounds,
                    )
                    print(
                        f"{label:<12} {threads:>7} {statistics.median(rates['ours']):>12.0f} "
                        f"{statistics.median(rates['raw']):>12.0f} "
                        f"{median_ratio(rates['ours'], rates['raw']):>7.3f}"
                        f"  {median_ratio(rates['control'], rates['raw']):>7.3f}"
                    )

            docs = args.docs
            control_bulk = control[database]["bulk"]
            many = alternate(
                [
                    ("ours", lambda batch: db.insert_many("bulk", batch)),
                    ("raw", lambda batch: client[database]["bulk"].insert_many(batch)),
                    ("control", lambda batch: control_bulk.insert_many(batch)),
                ],
                0,
                0.0,
                args.many_rounds,
                each=lambda op: _bulk_rate(op, docs, client[database]["bulk"]),
            )
            print(
                f"{'insert_many':<12} {docs:>7} {statistics.median(many['ours']):>12.0f} "
                f"{statistics.median(many['raw']):>12.0f} "
                f"{median_ratio(many['ours'], many['raw']):>7.3f}"
                f"  {median_ratio(many['control'], many['raw']):>7.3f}  (documents/s)"
            )

        client_cpu(pairs, args.cpu_ops, args.cpu_batches)
        control.close()
        own_path_cost(db, client, database)
    finally:
        client.drop_database(database)
        client.close()
        db.disconnect()


if __name__ == "__main__":
    main()
