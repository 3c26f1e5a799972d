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
3. A paired measurement: each thread alternates connector and raw pool
   call by call, so both see the same instants of load (the most robust
   ratio on a shared machine), with and without the checkout check.
4. Client CPU time per call at 1 thread, connector vs raw pool: the
   connector's own overhead, steadier than wall-clock rates on a busy box.

Fairness: the default connector checks each connection on checkout (a
non-blocking read, skipped for a connection returned < 25 ms earlier); the
raw pool checks nothing. Both ratios are printed: ``connector/raw`` (more
safety on the connector's side) and ``check=off/raw`` (equal safety).

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
from harness import run_threads

from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector

DSN = os.environ.get(
    "DICTAMESH_TEST_POSTGRES_DSN",
    "postgresql://dictamesh:dictamesh-test-pw@127.0.0.1:55432/dictamesh_test",
)
THREADS = (1, 8, 32)
POOL_SIZE = 32
ROUNDS = 20
SETTLE = 0.05


def bench_round_trips(seconds: float) -> None:
    print(f"== SELECT %s round trips ({seconds:.0f}s per contender and thread count)")
    db = PostgreSQLConnector(
        PostgreSQLConfig.from_url(
            DSN, max_open_conns=POOL_SIZE, min_open_conns=POOL_SIZE, application_name="bench"
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
    print(
        header + f" {'connector/raw':>14} {'(IQR)':>13} {'check=off/raw':>14}"
        f" {'paired c/raw':>13} {'paired off/raw':>15}"
    )
    for threads in THREADS:
        # Interleave the contenders over several short rounds so that noise
        # from other processes on the machine hits them all alike; report
        # medians, and the ratio's median over the rounds.
        rates: dict[str, list[float]] = {n: [] for n, _ in contenders}
        pooled = contenders[:-1]
        for _name, op in pooled:  # warm up at this thread count; not measured
            run_threads(op, threads, 0.2)
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
        paired = paired_ratio(connector_op, raw_op, threads, seconds / 2)
        paired_off = paired_ratio(unchecked_op, raw_op, threads, seconds / 2)
        print(
            f"{threads:>7} {cells} {statistics.median(ratios):>13.3f}x {spread:>13} "
            f"{statistics.median(off):>13.3f}x {paired:>12.3f}x {paired_off:>14.3f}x"
        )
    cpu_per_call({"connector": connector_op, "raw psycopg_pool": raw_op})
    db.disconnect()
    unchecked.disconnect()
    raw.close()
    engine.dispose()


def paired_ratio(
    mine: Callable[[int], Any], theirs: Callable[[int], Any], threads: int, seconds: float
) -> float:
    """Throughput ratio mine/theirs, with both measured in the very same instants.

    Every thread alternates the two call by call (order swapped each time)
    and times each call. Both get exactly as many calls, under the same load
    from the server and the neighbours, so the ratio of the total times is
    the throughput ratio with the machine's noise paired away.
    """
    spent = [[0, 0] for _ in range(threads)]  # per thread: ns in mine, ns in theirs
    pair = ((0, mine), (1, theirs))

    def both(i: int) -> None:
        n = int(threading.current_thread().name)
        for k, op in pair if i % 2 else pair[::-1]:
            t0 = time.perf_counter_ns()
            op(i)
            spent[n][k] += time.perf_counter_ns() - t0

    run_threads(both, threads, seconds, named=True)
    return sum(s[1] for s in spent) / sum(s[0] for s in spent)


def cpu_per_call(ops: dict[str, Callable[[int], Any]], calls: int = 2000, rounds: int = 6) -> None:
    """Client CPU time per call, one thread: the connector's own overhead, minus the network.

    Wall-clock rates on a shared machine move with the server's and the
    neighbours' load; the client process's CPU time per call does not.
    """
    cpu: dict[str, list[float]] = {name: [] for name in ops}
    items = list(ops.items())
    for round_ in range(rounds):
        for name, op in items if round_ % 2 else items[::-1]:
            t0 = time.process_time()
            for i in range(calls):
                op(i)
            cpu[name].append((time.process_time() - t0) / calls * 1e6)
    cells = ", ".join(f"{name} {statistics.median(v):.1f} us" for name, v in cpu.items())
    print(f"client CPU per call, 1 thread (median of {rounds} interleaved rounds): {cells}")


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
