"""Under load: a server restart, 32 racing threads, and disconnect() in the middle."""

import threading
import time

import psycopg
import pytest

from dictamesh_connectors.errors import ConnectorError, NotConnectedError

from .conftest import backend_pids, restart_postgres, wait_for

pytestmark = pytest.mark.integration


def test_server_restart_under_eight_threads(make_db, table, postgres_dsn, can_restart):
    max_conns = 6
    db = make_db(max_open_conns=max_conns, min_open_conns=2, pool_timeout=60)
    app = db.config.application_name
    db.execute(f'CREATE TABLE "{table}" (id bigint PRIMARY KEY, worker int)')
    started_at = db.query("SELECT pg_postmaster_start_time()").scalar()
    stop = threading.Event()
    lock = threading.Lock()
    ok, failures, unexpected = [], [], []
    done_after_restart = [0]
    restarted = threading.Event()

    def worker(n):
        i = 0
        while not stop.is_set():
            i += 1
            key = n * 1_000_000 + i
            try:
                if i % 3 == 0:
                    db.execute(f'INSERT INTO "{table}" VALUES (%s, %s)', [key, n])
                elif i % 3 == 1:
                    with db.transaction() as tx:
                        tx.execute(f'INSERT INTO "{table}" VALUES (%s, %s)', [key, n])
                        tx.query(f'SELECT count(*) FROM "{table}" WHERE worker = %s', [n])
                else:
                    assert db.query("SELECT %s::bigint", [key]).scalar() == key
                    key = None
                with lock:
                    if key is not None:
                        ok.append(key)
                    if restarted.is_set():
                        done_after_restart[0] += 1
            except ConnectorError as err:
                with lock:
                    (failures if err.transient else unexpected).append((key, err))
            except Exception as exc:  # anything else is a bug
                with lock:
                    unexpected.append((key, exc))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: len(ok) > 50, timeout=30)
        restart_postgres(postgres_dsn)
        restarted.set()
        # The same connector recovers by itself: no connect(), no rebuild.
        assert wait_for(lambda: done_after_restart[0] > 100, timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert not unexpected, unexpected[:3]
    admin = psycopg.connect(postgres_dsn, autocommit=True)  # the restart killed older ones
    stored = {r[0] for r in admin.execute(f'SELECT id FROM "{table}"').fetchall()}
    # Every write reported as done is there; anything else stored must have been
    # reported as possibly applied.
    assert set(ok) <= stored
    maybe = {key for key, err in failures if err.maybe_applied}
    assert stored - set(ok) <= maybe
    # No leak: the pool is back to at most max_open_conns server connections.
    assert wait_for(lambda: len(backend_pids(admin, app)) <= max_conns)
    assert db.query("SELECT pg_postmaster_start_time()").scalar() > started_at  # it did restart
    print(f"restart: {len(ok)} writes ok, {len(failures)} transient errors")
    admin.close()


def test_thirty_two_threads_mixed_operations_exact_counts(make_db, admin, table):
    db = make_db(max_open_conns=8, min_open_conns=8)
    db.execute(f'CREATE TABLE "{table}" (id int PRIMARY KEY, n bigint NOT NULL)')
    db.execute(f'INSERT INTO "{table}" VALUES (1, 0), (2, 0)')
    rounds = 30
    errors = []

    def worker(n):
        try:
            for i in range(rounds):
                kind = (n + i) % 3
                if kind == 0:
                    db.execute(f'UPDATE "{table}" SET n = n + 1 WHERE id = 1')
                elif kind == 1:
                    with db.transaction() as tx:
                        tx.execute(f'UPDATE "{table}" SET n = n + 1 WHERE id = 2')
                        tx.execute(f'UPDATE "{table}" SET n = n + 1 WHERE id = 1')
                else:
                    assert db.query(f'SELECT n FROM "{table}" WHERE id = 1').scalar() >= 0
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    ops = [(n + i) % 3 for n in range(32) for i in range(rounds)]
    counts = dict(db.query(f'SELECT id, n FROM "{table}"').tuples)
    assert counts[2] == ops.count(1)
    assert counts[1] == ops.count(0) + ops.count(1)
    assert len(backend_pids(admin, db.config.application_name)) <= 8


def test_disconnect_during_load_drains_then_closes_everything(make_db, admin, table):
    db = make_db(max_open_conns=8, min_open_conns=4)
    app = db.config.application_name
    db.execute(f'CREATE TABLE "{table}" (id bigint PRIMARY KEY)')
    lock = threading.Lock()
    succeeded, refused, other = [], [0], []
    slow_started = threading.Event()

    def worker(n):
        i = 0
        while True:
            i += 1
            key = n * 1_000_000 + i
            try:
                if n == 0 and i == 1:
                    slow_started.set()
                    # In flight when disconnect() starts: it must be allowed to finish.
                    db.execute(f'INSERT INTO "{table}" SELECT %s FROM pg_sleep(1)', [key])
                elif i % 2:
                    db.execute(f'INSERT INTO "{table}" VALUES (%s)', [key])
                else:
                    with db.transaction() as tx:
                        tx.execute(f'INSERT INTO "{table}" VALUES (%s)', [key])
            except NotConnectedError:
                with lock:
                    refused[0] += 1
                return
            except Exception as exc:
                with lock:
                    other.append(exc)
                return
            with lock:
                succeeded.append(key)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    slow_started.wait(10)
    wait_for(lambda: len(succeeded) > 200, timeout=30)
    time.sleep(0.1)
    db.disconnect()
    # disconnect() returned: the slow in-flight write finished first.
    assert 1 in {k % 1_000_000 for k in succeeded if k < 1_000_000}
    for t in threads:
        t.join(60)
    assert not other, other[:3]
    assert refused[0] == 32  # every thread eventually stopped on NotConnectedError
    stored = {r[0] for r in admin.execute(f'SELECT id FROM "{table}"').fetchall()}
    assert stored == set(succeeded)  # nothing lost, nothing half-done
    # Every server connection of this connector is gone.
    assert wait_for(lambda: backend_pids(admin, app) == [], timeout=30)


def test_the_connector_lock_is_never_held_across_network_io(make_db):
    db = make_db(max_open_conns=6, min_open_conns=6)
    errors = []

    def in_transaction():
        with db.transaction() as tx:
            tx.query("SELECT pg_sleep(1)")

    slow = [
        lambda: db.query("SELECT pg_sleep(1)"),
        lambda: db.execute("SELECT pg_sleep(1)"),
        in_transaction,
        lambda: list(db.stream("SELECT pg_sleep(1)")),
        lambda: db.copy_out("SELECT pg_sleep(1)"),
    ]

    def run(op):
        try:
            op()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(op,)) for op in slow]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    # All five are in flight, each waiting on the server ...
    assert wait_for(lambda: db._inflight == 5, timeout=5)
    for _ in range(5):
        # ... and the connector lock stays free the whole time.
        assert db._lock.acquire(timeout=0.1)
        db._lock.release()
        assert db.is_connected
        time.sleep(0.05)
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert time.monotonic() - t0 < 2.5  # they ran side by side, not one after another
