"""PostgreSQLConnector vs raw psycopg_pool vs SQLAlchemy Core vs connection-per-call.

One run, side by side, on the same server:

1. ``SELECT %s`` round trips at 1, 8 and 32 threads, for a fixed time per
   contender, interleaved over several rounds: median ops/s and the median
   per-round ratio connector / raw psycopg_pool (target >= 0.95).
   * connector: ``db.query("SELECT %s", [i]).scalar()`` (default config:
     checkout health check on, in-flight accounting, error translation)
   * connector with ``health_check="off"``, to show what the check costs
   * raw pool: ``psycopg_pool.ConnectionPool`` (autocommit connections, no
     checkout check, the fastest idiomatic raw setup),
     ``with pool.connection() as c: c.execute(...).fetchone()``
   * SQLAlchemy: Core engine, ``QueuePool``, ``pool_pre_ping=True``
   * new connection per call (what Airflow's PostgresHook does per task call)
2. Bulk load of 1,000,000 rows (id, name, amount): ``copy_in`` vs
   ``executemany`` (pipelined) vs row-by-row ``execute`` (measured on a
   sample and extrapolated; the output says so).

Usage: python benchmarks/postgresql_bench.py [--seconds 3] [--rows 1000000]
Reads the server from DICTAMESH_TEST_POSTGRES_DSN (default: the local test server).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg_pool
import sqlalchemy

from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector

DSN = os.environ.get(
    "DICTAMESH_TEST_POSTGRES_DSN",
    "postgresql://dictamesh:dictamesh-test-pw@127.0.0.1:55432/dictamesh_test",
)
THREADS = (1, 8, 32)
POOL_SIZE = 32
ROUNDS = 10
SETTLE = 0.05


def run_threads(op: Callable[[int], Any], threads: int, seconds: float) -> float:
    """Call op(i) in a loop from ``threads`` threads for ``seconds``; return ops/s."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        start.wait()
        i = 0
        try:
            while not stop.is_set():
                op(i)
                i += 1
        except BaseException as exc:  # surface failures, never hide them in a figure
            errors.append(exc)
        counts[n] = i

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts) / elapsed


def bench_round_trips(seconds: float) -> None:
    print(f"== SELECT %s round trips ({seconds:.0f}s per contender and thread count)")
    db = PostgreSQLConnector(
        PostgreSQLConfig.from_url(
            DSN, max_open_conns=POOL_SIZE, max_idle_conns=POOL_SIZE, application_name="bench"
        )
    )
    db.connect()
    unchecked = PostgreSQLConnector(
        db.config.evolve(health_check="off", application_name="bench-unchecked")
    )
    unchecked.connect()
    raw = psycopg_pool.ConnectionPool(
        DSN, min_size=POOL_SIZE, max_size=POOL_SIZE, kwargs={"autocommit": True}, open=True
    )
    raw.wait()
    engine = sqlalchemy.create_engine(
        DSN.replace("postgresql://", "postgresql+psycopg://"),
        pool_size=POOL_SIZE,
        max_overflow=0,
        pool_pre_ping=True,
    )
    select = sqlalchemy.text("SELECT :v")

    def connector_op(i: int) -> None:
        assert db.query("SELECT %s", [i]).scalar() == i

    def unchecked_op(i: int) -> None:
        assert unchecked.query("SELECT %s", [i]).scalar() == i

    def raw_op(i: int) -> None:
        with raw.connection() as conn:
            row = conn.execute("SELECT %s", [i]).fetchone()
            assert row is not None and row[0] == i

    def sqlalchemy_op(i: int) -> None:
        with engine.connect() as conn:
            assert conn.execute(select, {"v": i}).scalar() == i

    def per_call_op(i: int) -> None:
        with psycopg.connect(DSN, autocommit=True) as conn:
            row = conn.execute("SELECT %s", [i]).fetchone()
            assert row is not None and row[0] == i

    contenders = [
        ("connector", connector_op),
        ("conn. check=off", unchecked_op),
        ("raw psycopg_pool", raw_op),
        ("sqlalchemy core", sqlalchemy_op),
        ("new conn per call", per_call_op),
    ]
    for _name, op in contenders:  # warm up every pool and prepared statement
        run_threads(op, 4, 0.3)
    header = f"{'threads':>7} " + " ".join(f"{n:>17}" for n, _ in contenders)
    print(header + f" {'connector/raw':>14} {'(IQR)':>13} {'check=off/raw':>14}")
    for threads in THREADS:
        # Interleave the contenders over several short rounds so that noise
        # from other processes on the machine hits them all alike; report
        # medians, and the ratio's median over the rounds.
        rates: dict[str, list[float]] = {n: [] for n, _ in contenders}
        pooled = contenders[:-1]
        for round_ in range(ROUNDS):
            # Rotate the order: no contender always runs first (or right
            # after another's burst of server work).
            shift = round_ % len(pooled)
            for name, op in pooled[shift:] + pooled[:shift]:
                rates[name].append(run_threads(op, threads, seconds / ROUNDS))
                time.sleep(SETTLE)
        # A new server process per call loads the server long after the
        # last call: measured apart, after the pooled contenders.
        name, op = contenders[-1]
        rates[name].append(run_threads(op, threads, max(0.5, seconds / 3)))
        time.sleep(SETTLE * 10)
        raw_rates = rates["raw psycopg_pool"]
        ratios = sorted(c / r for c, r in zip(rates["connector"], raw_rates, strict=True))
        off = [c / r for c, r in zip(rates["conn. check=off"], raw_rates, strict=True)]
        cells = " ".join(f"{statistics.median(rates[n]):>11.0f} ops/s" for n, _ in contenders)
        quartile = len(ratios) // 4
        spread = f"{ratios[quartile]:.2f}-{ratios[-1 - quartile]:.2f}"
        print(
            f"{threads:>7} {cells} {statistics.median(ratios):>13.3f}x {spread:>13} "
            f"{statistics.median(off):>13.3f}x"
        )
    db.disconnect()
    unchecked.disconnect()
    raw.close()
    engine.dispose()


def bench_bulk_load(rows: int, sample: int) -> None:
    print(f"\n== bulk load of {rows:,} rows (id bigint, name text, amount numeric)")
    db = PostgreSQLConnector(PostgreSQLConfig.from_url(DSN, application_name="bench"))
    db.connect()
    table = f"bench_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE UNLOGGED TABLE {table} (id bigint, name text, amount numeric)")
    insert = f"INSERT INTO {table} (id, name, amount) VALUES (%s, %s, %s)"

    def data(n: int) -> Any:
        return ((i, f"name-{i}", i * 0.01) for i in range(n))

    try:
        t0 = time.perf_counter()
        copied = db.copy_in(table, ["id", "name", "amount"], data(rows))
        copy_rate = copied / (time.perf_counter() - t0)
        db.execute(f"TRUNCATE {table}")

        t0 = time.perf_counter()
        many = db.executemany(insert, data(rows)).rows_affected
        many_rate = many / (time.perf_counter() - t0)
        db.execute(f"TRUNCATE {table}")

        t0 = time.perf_counter()
        for row in data(sample):
            db.execute(insert, row)
        single_rate = sample / (time.perf_counter() - t0)
    finally:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.disconnect()
    print(f"  copy_in          {copy_rate:>12,.0f} rows/s   ({rows / copy_rate:6.1f} s)")
    print(f"  executemany      {many_rate:>12,.0f} rows/s   ({rows / many_rate:6.1f} s)")
    print(
        f"  row-by-row       {single_rate:>12,.0f} rows/s   ({rows / single_rate:6.1f} s, "
        f"extrapolated from {sample:,} rows)"
    )
    print(f"  copy_in / row-by-row = {copy_rate / single_rate:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per contender and thread count")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="row-by-row sample size")
    parser.add_argument("--skip-bulk", action="store_true")
    args = parser.parse_args()
    print(f"server: {PostgreSQLConfig.from_url(DSN).connection_string()}")
    print(
        f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), psycopg_pool "
        f"{psycopg_pool.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
        f"{os.cpu_count()} CPUs\n"
    )
    bench_round_trips(args.seconds)
    if not args.skip_bulk:
        bench_bulk_load(args.rows, args.sample)


if __name__ == "__main__":
    main()
