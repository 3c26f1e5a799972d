"""PostgreSQL connector through FaultProxy against the real server.

Timeouts (connect through a blackhole), resets in flight (a classified
transient error, ``maybe_applied`` on a write, then the reconnect path),
refused connections, latency and a bandwidth limit. Every call is bounded
(``bounded``): a connector that hangs fails the test rather than the suite.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from dictamesh_connectors.errors import ConnectorError, ConnectorTimeoutError, ErrorCode, RetryHint
from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector, Transaction
from dictamesh_connectors.postgresql.session import PoolConnectFailed
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.faultproxy import FaultProxy
from tests.conftest import POSTGRES
from tests.integration.faultproxy.conftest import Outcome, bounded, wait_for
from tests.integration.postgresql.conftest import unique

pytestmark = pytest.mark.integration


@pytest.fixture
def admin(postgres_dsn: str) -> Iterator[psycopg.Connection]:
    """A direct connection to the server, around the proxy."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def proxy(postgres_dsn: str) -> Iterator[FaultProxy]:
    config = PostgreSQLConfig.from_url(postgres_dsn)
    with FaultProxy(upstream=(config.host, config.port)) as proxy:
        yield proxy


def proxied_config(postgres_dsn: str, proxy: FaultProxy, **overrides: object) -> PostgreSQLConfig:
    """The test server's config, pointed at the proxy, with short timeouts."""
    base = PostgreSQLConfig.from_url(postgres_dsn)
    settings: dict[str, object] = {
        "host": proxy.host,
        "port": proxy.port,
        "application_name": unique("fp"),
        "connect_timeout": 2.0,
        "pool_timeout": 3.0,
        "statement_timeout": 5.0,
        "min_open_conns": 1,
        "max_open_conns": 4,
        # One attempt: the test sees each classified error itself.
        "retry": RetryPolicy(max_attempts=1),
    }
    settings.update(overrides)
    return PostgreSQLConfig(
        database=base.database,
        username=base.username,
        password=base.password,
        **settings,  # type: ignore[arg-type]
    )


@pytest.fixture
def connector(postgres_dsn: str, proxy: FaultProxy) -> Iterator[PostgreSQLConnector]:
    connector = PostgreSQLConnector(proxied_config(postgres_dsn, proxy))
    connector.connect()
    yield connector
    proxy.clear()
    connector.disconnect(10)


@pytest.fixture
def table(admin: psycopg.Connection) -> Iterator[str]:
    name = unique("fp")
    admin.execute(f"CREATE TABLE {name} (id int PRIMARY KEY)")
    yield name
    admin.execute(f"DROP TABLE IF EXISTS {name}")


def wait_running(
    admin: psycopg.Connection,
    application_name: str,
    marker: str,
    *,
    besides: frozenset[int] = frozenset(),
) -> frozenset[int]:
    """Wait until a statement containing ``marker`` runs on a backend not in
    ``besides``; return the backends running it (empty: it never did)."""
    found: frozenset[int] = frozenset()

    def running() -> bool:
        nonlocal found
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND state = 'active' AND query LIKE %s",
            [application_name, f"%{marker}%"],
        ).fetchall()
        found = frozenset(row[0] for row in rows)
        return bool(found - besides)

    return found if wait_for(running) else frozenset()


def test_connect_through_a_blackhole_times_out(postgres_dsn: str, proxy: FaultProxy) -> None:
    proxy.blackhole(True)
    connector = PostgreSQLConnector(proxied_config(postgres_dsn, proxy))
    outcome = bounded(connector.connect)
    assert isinstance(outcome.error, ConnectorTimeoutError), outcome.error
    assert outcome.error.code is ErrorCode.TIMEOUT
    assert outcome.error.transient and not outcome.error.maybe_applied
    assert proxy.stats.faults["blackhole"] >= 1
    proxy.clear()
    # the failed connect left it DISCONNECTED: it can try again
    assert bounded(connector.connect).error is None
    assert connector.query("SELECT 1 AS one").scalar() == 1
    connector.disconnect(10)


@pytest.mark.parametrize("direction", ["both", "downstream"])
def test_statement_through_a_blackhole_times_out(
    connector: PostgreSQLConnector, proxy: FaultProxy, direction: str
) -> None:
    assert connector.query("SELECT 1").scalar() == 1
    proxy.blackhole(True, direction=direction)  # type: ignore[arg-type]
    # a 1 s statement timeout: 10 s is plenty for any client-side deadline
    outcome = bounded(lambda: connector.query("SELECT 2", timeout=1.0), wait=10.0, may_hang=True)
    proxy.clear()  # the held bytes flow: a hung call finishes now
    assert outcome.thread is not None
    outcome.thread.join(30)
    assert not outcome.hung, "the statement waited for ever through the blackhole"
    assert isinstance(outcome.error, ConnectorTimeoutError)


def test_a_write_through_a_blackhole_times_out_with_an_unknown_outcome(
    connector: PostgreSQLConnector, proxy: FaultProxy, table: str, admin: psycopg.Connection
) -> None:
    """The config's statement_timeout (5 s) is the client's deadline too (plus a margin)."""
    assert connector.query("SELECT 1").scalar() == 1
    proxy.blackhole(True, direction="downstream")  # the server runs it; the answer is held
    outcome = bounded(
        lambda: connector.execute(f"INSERT INTO {table} VALUES (1)"), wait=20.0, may_hang=True
    )
    proxy.clear()
    assert outcome.thread is not None
    outcome.thread.join(30)
    assert not outcome.hung, "the write waited for ever through the blackhole"
    err = outcome.error
    assert isinstance(err, ConnectorTimeoutError), err
    assert err.code is ErrorCode.TIMEOUT and err.transient
    assert err.maybe_applied  # it did run: the server saw the INSERT
    assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
    # the dead connection was discarded: the next operation gets a fresh one
    assert bounded(lambda: connector.query("SELECT 3").scalar()).result == 3


def test_a_statement_in_a_transaction_through_a_blackhole_applies_nothing(
    connector: PostgreSQLConnector, proxy: FaultProxy, table: str, admin: psycopg.Connection
) -> None:
    def body() -> None:
        with connector.transaction() as tx:
            tx.execute(f"INSERT INTO {table} VALUES (2)")
            proxy.blackhole(True)
            tx.execute(f"INSERT INTO {table} VALUES (3)", timeout=1.0)

    outcome = bounded(body, wait=20.0, may_hang=True)
    proxy.clear()
    assert outcome.thread is not None
    outcome.thread.join(30)
    assert not outcome.hung, "the transaction waited for ever through the blackhole"
    err = outcome.error
    assert isinstance(err, ConnectorTimeoutError), err
    assert not err.maybe_applied  # the server rolls back a transaction whose client is gone
    assert wait_for(
        lambda: admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), timeout=30
    )
    assert bounded(lambda: connector.query("SELECT 4").scalar()).result == 4


def test_reset_during_a_read_is_transient_then_recovers(
    connector: PostgreSQLConnector, proxy: FaultProxy, admin: psycopg.Connection
) -> None:
    marker = unique("sleep")
    call = bounded_in_background(lambda: connector.query(f"SELECT pg_sleep(1) AS {marker}"))
    # A read that lost its connection is run once more on a fresh one
    # (whatever the retry policy): reset that one too, to see the error.
    seen: frozenset[int] = frozenset()
    for _ in range(2):
        seen = wait_running(admin, connector.config.application_name, marker, besides=seen)
        assert seen
        assert proxy.reset_connections() >= 1
    err = call().error
    assert isinstance(err, ConnectorError), err
    assert err.code is ErrorCode.CONNECTION_LOST, err
    assert err.transient and err.retry_hint is RetryHint.RECONNECT
    # (a read: maybe_applied is for writes, see the write tests below)
    # the reconnect path: the next operation gets a fresh connection
    assert bounded(lambda: connector.query("SELECT 3").scalar()).result == 3


def test_reset_during_a_read_is_retried_when_allowed(
    postgres_dsn: str, proxy: FaultProxy, admin: psycopg.Connection
) -> None:
    config = proxied_config(
        postgres_dsn, proxy, retry=RetryPolicy(max_attempts=3, initial_backoff=0.05)
    )
    with PostgreSQLConnector(config) as connector:
        marker = unique("sleep")
        call = bounded_in_background(lambda: connector.query(f"SELECT 7 AS {marker}, pg_sleep(1)"))
        assert wait_running(admin, config.application_name, marker)
        proxy.reset_connections()
        outcome = call()
        assert outcome.error is None, outcome.error
        assert outcome.result.scalar() == 7  # an idempotent read, retried on a new connection
        assert proxy.stats.faults["reset"] >= 1


def test_reset_during_a_write_is_maybe_applied(
    connector: PostgreSQLConnector, proxy: FaultProxy, admin: psycopg.Connection, table: str
) -> None:
    marker = unique("w")
    call = bounded_in_background(
        lambda: connector.execute(f"INSERT INTO {table} SELECT 1 FROM pg_sleep(1) AS {marker}")
    )
    assert wait_running(admin, connector.config.application_name, marker)
    proxy.reset_connections()
    err = call().error
    assert isinstance(err, ConnectorError), err
    assert err.code is ErrorCode.CONNECTION_LOST, err  # a write is never run twice
    assert err.transient and err.maybe_applied, err
    # The server did not notice the client had gone until it answered: the
    # row is there although the client saw an error. Hence maybe_applied.
    assert wait_for(lambda: admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,))
    again = bounded(lambda: connector.execute(f"INSERT INTO {table} VALUES (2)"))
    assert again.error is None and again.result.rows_affected == 1


def test_reset_when_the_answer_comes_back_is_maybe_applied(
    connector: PostgreSQLConnector, proxy: FaultProxy, admin: psycopg.Connection, table: str
) -> None:
    assert connector.query("SELECT 1").scalar() == 1
    proxy.reset_next(direction="downstream")  # the write reaches the server; its answer does not
    err = bounded(lambda: connector.execute(f"INSERT INTO {table} VALUES (1)")).error
    assert isinstance(err, ConnectorError), err
    assert err.transient and err.maybe_applied, err
    assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
    assert bounded(lambda: connector.query("SELECT 4").scalar()).result == 4


def test_refused_connect_is_connection_failed_and_not_sent(
    postgres_dsn: str, proxy: FaultProxy
) -> None:
    proxy.refuse(True)
    connector = PostgreSQLConnector(proxied_config(postgres_dsn, proxy))
    err = bounded(connector.connect).error
    assert isinstance(err, ConnectorError), err
    assert err.code is ErrorCode.CONNECTION_FAILED
    assert err.transient and not err.maybe_applied
    proxy.refuse(False)
    assert bounded(connector.connect).error is None
    assert connector.query("SELECT 5").scalar() == 5
    connector.disconnect(10)


def test_refused_while_connected_is_transient_and_not_sent(
    connector: PostgreSQLConnector, proxy: FaultProxy, table: str
) -> None:
    proxy.refuse(True)
    proxy.reset_connections()  # the pool must open new connections: all refused
    err = bounded(lambda: connector.execute(f"INSERT INTO {table} VALUES (1)")).error
    assert isinstance(err, ConnectorError), err
    # psycopg_pool keeps retrying in the background and the checkout times
    # out; its last attempt to connect was refused: CONNECTION_FAILED, with
    # the refusal as the cause, not a busy pool's TIMEOUT. Not sent.
    assert err.code is ErrorCode.CONNECTION_FAILED, err
    assert err.transient and not err.maybe_applied
    assert err.details["pool"] == "connect_failed"
    assert "refused" in err.message.lower(), err.message
    assert isinstance(err.__cause__, PoolConnectFailed)
    assert isinstance(err.__cause__.__cause__, psycopg.OperationalError)
    proxy.refuse(False)
    # psycopg_pool retries its connects with a doubling backoff (1 s, 2 s, ...):
    # the pool heals at its next attempt, not at once.
    assert wait_for(lambda: succeeds(lambda: connector.execute(f"INSERT INTO {table} VALUES (1)")))
    assert connector.query(f"SELECT count(*) FROM {table}").scalar() == 1


def succeeds(fn) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``fn()`` returned (a transient ConnectorError: not yet)."""
    outcome = bounded(fn)
    if isinstance(outcome.error, ConnectorError) and outcome.error.transient:
        return False
    if outcome.error is not None:
        raise outcome.error
    return True


def test_latency_and_jitter_operations_succeed(
    connector: PostgreSQLConnector, proxy: FaultProxy, table: str
) -> None:
    proxy.set_latency(0.05, jitter=0.03)
    for number in range(5):
        assert connector.execute(f"INSERT INTO {table} VALUES (%s)", [number]).rows_affected == 1
    with connector.transaction() as tx:
        tx.execute(f"INSERT INTO {table} VALUES (99)")
    assert connector.query(f"SELECT count(*) FROM {table}").scalar() == 6
    assert proxy.stats.faults["latency"] > 0


def test_a_bandwidth_limit_slows_but_delivers(
    connector: PostgreSQLConnector, proxy: FaultProxy
) -> None:
    proxy.set_bandwidth(200_000, direction="downstream")
    result = bounded(lambda: connector.query("SELECT repeat('x', 100000) AS big")).result
    assert result.scalar() == "x" * 100_000
    assert proxy.stats.faults["bandwidth"] > 0


def test_slow_close_does_not_hold_disconnect(
    connector: PostgreSQLConnector, proxy: FaultProxy
) -> None:
    assert connector.query("SELECT 1").scalar() == 1
    proxy.slow_close(3.0)
    assert bounded(lambda: connector.disconnect(10)).error is None
    assert not connector.is_connected


def bounded_in_background(fn):  # type: ignore[no-untyped-def]
    """Start ``fn`` in a thread now; the returned function waits (bounded) for it."""
    box: dict[str, object] = {}

    def run() -> None:
        box["outcome"] = bounded(fn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result():  # type: ignore[no-untyped-def]
        thread.join()
        if "outcome" not in box:
            pytest.fail("the call hung")
        return box["outcome"]

    return result


assert POSTGRES.port == 55432


def test_32_threads_through_latency_and_a_reset(
    postgres_dsn: str, proxy: FaultProxy, table: str
) -> None:
    """One connector, 32 threads: reads ride over a reset (retried once on a
    fresh connection), writes fail only as CONNECTION_LOST with maybe_applied."""
    config = proxied_config(postgres_dsn, proxy, max_open_conns=8, pool_timeout=30.0)
    proxy.set_latency(0.005, jitter=0.005)
    barrier = threading.Barrier(32)
    lost: list[ConnectorError] = []
    lock = threading.Lock()

    def work(number: int) -> int:
        barrier.wait()
        for step in range(10):
            assert connector.query("SELECT %s::int AS n", [number]).scalar() == number
            try:
                connector.execute(f"INSERT INTO {table} VALUES (%s)", [number * 100 + step])
            except ConnectorError as err:
                assert err.code is ErrorCode.CONNECTION_LOST and err.maybe_applied, err
                with lock:
                    lost.append(err)
            if number == 0 and step == 3:
                proxy.reset_connections()
        return number

    with PostgreSQLConnector(config) as connector, ThreadPoolExecutor(32) as pool:
        assert sorted(pool.map(work, range(32))) == list(range(32))
        rows = connector.query(f"SELECT count(*) FROM {table}").scalar()
    assert 320 - len(lost) <= rows <= 320  # a lost write may or may not have happened
    assert proxy.stats.faults["reset"] >= 1


def test_disconnect_through_a_blackhole_returns(
    connector: PostgreSQLConnector, proxy: FaultProxy
) -> None:
    assert connector.query("SELECT 1").scalar() == 1
    proxy.blackhole(True)
    assert bounded(lambda: connector.disconnect(2)).error is None
    assert not connector.is_connected


def finished(outcome: Outcome, proxy: FaultProxy, what: str) -> ConnectorError:
    """Lift the fault, join the bounded call, and return the error it ended with."""
    proxy.clear()  # the held bytes flow: a hung call finishes now
    assert outcome.thread is not None
    outcome.thread.join(30)
    assert not outcome.hung, f"{what} waited for ever through the blackhole"
    err = outcome.error
    assert isinstance(err, ConnectorError), err
    return err


@pytest.mark.parametrize("direction", ["both", "downstream"])
def test_executemany_through_a_blackhole_at_begin_times_out_and_applies_nothing(
    postgres_dsn: str, proxy: FaultProxy, table: str, admin: psycopg.Connection, direction: str
) -> None:
    """BEGIN lost (or its answer): nothing of the batch was sent, so nothing applied."""
    with PostgreSQLConnector(proxied_config(postgres_dsn, proxy, statement_timeout=1.0)) as db:
        assert db.query("SELECT 1").scalar() == 1
        proxy.blackhole(True, direction=direction)  # type: ignore[arg-type]
        outcome = bounded(
            lambda: db.executemany(f"INSERT INTO {table} VALUES (%s)", [(1,), (2,)]),
            wait=20.0,
            may_hang=True,
        )
        err = finished(outcome, proxy, "executemany")
        assert isinstance(err, ConnectorTimeoutError), err
        assert err.code is ErrorCode.TIMEOUT and err.transient
        assert not err.maybe_applied, err
        assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        assert bounded(lambda: db.query("SELECT 6").scalar()).result == 6


def test_executemany_through_a_blackhole_between_rows_applies_nothing(
    postgres_dsn: str, proxy: FaultProxy, table: str, admin: psycopg.Connection
) -> None:
    """The blackhole starts while the rows are sent: no COMMIT was sent, nothing applied."""

    def rows() -> Iterator[tuple[int]]:
        yield (1,)
        proxy.blackhole(True)
        yield (2,)

    with PostgreSQLConnector(proxied_config(postgres_dsn, proxy, statement_timeout=1.0)) as db:
        outcome = bounded(
            lambda: db.executemany(f"INSERT INTO {table} VALUES (%s)", rows()),
            wait=20.0,
            may_hang=True,
        )
        err = finished(outcome, proxy, "executemany")
        assert isinstance(err, ConnectorTimeoutError), err
        assert err.transient and not err.maybe_applied, err
        assert wait_for(
            lambda: admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), timeout=30
        )


def test_executemany_whose_commit_answer_is_lost_times_out_maybe_applied(
    postgres_dsn: str, proxy: FaultProxy, table: str, admin: psycopg.Connection
) -> None:
    """COMMIT reached the server and committed; its answer is held: maybe_applied."""
    # A deferred constraint trigger runs at COMMIT: it keeps COMMIT running
    # long enough to hold its answer.
    admin.execute(
        f"CREATE FUNCTION {table}_slow() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$"
    )
    try:
        admin.execute(
            f"CREATE CONSTRAINT TRIGGER {table}_at_commit AFTER INSERT ON {table}"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
            f" EXECUTE FUNCTION {table}_slow()"
        )
        config = proxied_config(postgres_dsn, proxy, statement_timeout=3.0)
        with PostgreSQLConnector(config) as db:
            call = bounded_in_background(
                lambda: db.executemany(f"INSERT INTO {table} VALUES (%s)", [(1,), (2,)])
            )
            assert wait_running(admin, config.application_name, "COMMIT")
            proxy.blackhole(True, direction="downstream")
            err = call().error
            proxy.clear()
            assert isinstance(err, ConnectorTimeoutError), err
            assert err.code is ErrorCode.TIMEOUT and err.transient
            assert err.maybe_applied, err  # it did commit: the client cannot know
            assert wait_for(
                lambda: admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (2,)
            )
            assert bounded(lambda: db.query("SELECT 7").scalar()).result == 7
    finally:
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.execute(f"DROP FUNCTION IF EXISTS {table}_slow()")


# Every round trip the connector makes on a pooled connection, each behind a
# blackhole switched on just before it: it must end within its client-side
# deadline (statement_timeout 1 s plus the margin) with a classified
# transient error, never hang. ``(name, call, maybe_applied)``; ``call(db,
# proxy, table)`` switches the blackhole on itself.
def _hole(proxy: FaultProxy) -> None:
    proxy.blackhole(True)


def _tx_begin(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    _hole(proxy)
    with db.transaction():
        pass


def _tx_commit(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    with db.transaction() as tx:
        tx.execute(f"INSERT INTO {table} VALUES (1)")
        _hole(proxy)


def _tx_statement(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    with db.transaction() as tx:
        _hole(proxy)
        tx.query("SELECT 1")


def _tx_executemany(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    with db.transaction() as tx:
        _hole(proxy)
        tx.executemany(f"INSERT INTO {table} VALUES (%s)", [(1,), (2,)])


def _tx_copy_in(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    with db.transaction() as tx:
        _hole(proxy)
        tx.copy_in(table, ["id"], [(1,), (2,)])


def _savepoint_create(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    with db.transaction() as tx:
        _hole(proxy)
        with tx.savepoint():
            pass


def _savepoint_release(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    with db.transaction() as tx, tx.savepoint():
        tx.execute(f"INSERT INTO {table} VALUES (1)")
        _hole(proxy)


def _run_in_transaction(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    def fn(tx: Transaction) -> None:
        _hole(proxy)
        tx.execute(f"INSERT INTO {table} VALUES (1)")

    db.run_in_transaction(fn)


def _copy_in(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    _hole(proxy)
    db.copy_in(table, ["id"], [(1,), (2,)])


def _copy_out(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    _hole(proxy)
    db.copy_out("SELECT generate_series(1, 10)")


def _stream_declare(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    _hole(proxy)
    list(db.stream("SELECT generate_series(1, 10) AS n"))


def _stream_fetch(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    with db.stream("SELECT generate_series(1, 10) AS n", batch_size=2) as rows:
        next(rows)
        _hole(proxy)
        list(rows)


def _query_with_timeout(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    _hole(proxy)
    db.query("SELECT 1", timeout=1.0)  # the SET before it is the first round trip


def _ping(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    _hole(proxy)
    db.ping()


def _ping_with_timeout(db: PostgreSQLConnector, proxy: FaultProxy, table: str) -> None:
    _hole(proxy)
    db.ping(timeout=1.0)


ROUND_TRIPS = [
    ("transaction-begin", _tx_begin, False),
    ("transaction-commit", _tx_commit, True),
    ("transaction-statement", _tx_statement, False),
    ("transaction-executemany", _tx_executemany, False),
    ("transaction-copy_in", _tx_copy_in, False),
    ("savepoint-create", _savepoint_create, False),
    ("savepoint-release", _savepoint_release, False),
    ("run_in_transaction", _run_in_transaction, False),
    ("copy_in", _copy_in, True),
    ("copy_out", _copy_out, False),
    ("stream-declare", _stream_declare, False),
    ("stream-fetch", _stream_fetch, False),
    ("query-timeout-set", _query_with_timeout, False),
    ("ping", _ping, False),
    ("ping-timeout", _ping_with_timeout, False),
]


@pytest.mark.parametrize(
    ("call", "maybe_applied"), [r[1:] for r in ROUND_TRIPS], ids=[r[0] for r in ROUND_TRIPS]
)
def test_every_round_trip_through_a_blackhole_ends_with_a_transient_error(
    postgres_dsn: str,
    proxy: FaultProxy,
    table: str,
    admin: psycopg.Connection,
    call,  # type: ignore[no-untyped-def]
    maybe_applied: bool,
) -> None:
    with PostgreSQLConnector(proxied_config(postgres_dsn, proxy, statement_timeout=1.0)) as db:
        assert db.query("SELECT 1").scalar() == 1
        outcome = bounded(lambda: call(db, proxy, table), wait=20.0, may_hang=True)
        err = finished(outcome, proxy, call.__name__)
        assert err.transient, err
        assert err.code is ErrorCode.TIMEOUT, err
        assert err.maybe_applied is maybe_applied, err
        if not maybe_applied:
            assert wait_for(
                lambda: admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,),
                timeout=30,
            )
        # the dead connection was discarded: the connector carries on
        assert bounded(lambda: db.query("SELECT 8").scalar()).result == 8


@pytest.mark.parametrize("where", ["rollback", "savepoint-rollback", "stream-close"])
def test_a_cleanup_round_trip_through_a_blackhole_ends_and_keeps_the_first_error(
    postgres_dsn: str, proxy: FaultProxy, table: str, where: str
) -> None:
    """ROLLBACK (of a block that raised, or to a savepoint) and a stream closed
    early: the cleanup is bounded, and the caller's own error is the one seen."""

    class Boom(Exception):
        pass

    def body(db: PostgreSQLConnector) -> None:
        if where == "stream-close":
            with db.stream("SELECT generate_series(1, 10) AS n", batch_size=2) as rows:
                next(rows)
                _hole(proxy)
                raise Boom
        with db.transaction() as tx:
            if where == "rollback":
                _hole(proxy)
                raise Boom
            with tx.savepoint():
                _hole(proxy)
                raise Boom

    with PostgreSQLConnector(proxied_config(postgres_dsn, proxy, statement_timeout=1.0)) as db:
        assert db.query("SELECT 1").scalar() == 1
        outcome = bounded(lambda: body(db), wait=20.0, may_hang=True)
        proxy.clear()
        assert outcome.thread is not None
        outcome.thread.join(30)
        assert not outcome.hung, f"{where} waited for ever through the blackhole"
        if where == "savepoint-rollback":
            # ROLLBACK TO SAVEPOINT is the connector's own statement: its error surfaces
            err = outcome.error
            assert isinstance(err, ConnectorError), err
            assert err.code is ErrorCode.TIMEOUT and err.transient
        else:
            assert isinstance(outcome.error, Boom), outcome.error
        assert bounded(lambda: db.query("SELECT 9").scalar()).result == 9


def test_the_always_health_check_through_a_blackhole_ends_with_a_transient_error(
    postgres_dsn: str, proxy: FaultProxy
) -> None:
    """health_check="always": the checkout's check (one round trip) is bounded too."""
    config = proxied_config(postgres_dsn, proxy, statement_timeout=1.0, health_check="always")
    with PostgreSQLConnector(config) as db:
        assert db.query("SELECT 1").scalar() == 1
        _hole(proxy)
        outcome = bounded(lambda: db.query("SELECT 2"), wait=30.0, may_hang=True)
        err = finished(outcome, proxy, "the checkout check")
        assert err.transient and not err.maybe_applied, err
        assert err.code in (ErrorCode.TIMEOUT, ErrorCode.CONNECTION_FAILED), err
        assert bounded(lambda: db.query("SELECT 3").scalar()).result == 3


def test_a_pipeline_longer_than_the_deadline_that_keeps_answering_is_not_cut(
    postgres_dsn: str, proxy: FaultProxy, table: str, admin: psycopg.Connection
) -> None:
    """The deadline counts the server's silence, not the whole call: ten
    statements of 0.3 s each (3 s) pass under a 2 s deadline (limit 1 s)."""
    with PostgreSQLConnector(proxied_config(postgres_dsn, proxy, statement_timeout=1.0)) as db:
        outcome = bounded(
            lambda: db.executemany(
                f"INSERT INTO {table} SELECT %s FROM pg_sleep(0.3)", [(n,) for n in range(10)]
            )
        )
        assert outcome.error is None, outcome.error
        assert outcome.result.rows_affected == 10
    assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (10,)


def test_a_big_copy_out_blackholed_mid_stream_times_out(
    postgres_dsn: str, proxy: FaultProxy
) -> None:
    """The blackhole starts after the first chunk of a large export arrived: the
    waits that follow (each past psycopg's own bounded wait, then watched) end
    at the client-side deadline with a TIMEOUT, not a hang."""

    class Sink:
        def __init__(self) -> None:
            self.written = 0

        def write(self, data: bytes) -> None:
            if not self.written:
                proxy.blackhole(True)
            self.written += len(data)

    sink = Sink()
    with PostgreSQLConnector(proxied_config(postgres_dsn, proxy, statement_timeout=1.0)) as db:
        assert db.query("SELECT 1").scalar() == 1
        outcome = bounded(
            lambda: db.copy_out(
                "SELECT n, repeat('x', 100) FROM generate_series(1, 500000) n", out=sink
            ),
            wait=20.0,
            may_hang=True,
        )
        err = finished(outcome, proxy, "copy_out")
        assert isinstance(err, ConnectorTimeoutError), err
        assert err.code is ErrorCode.TIMEOUT and err.transient and not err.maybe_applied
        assert 0 < sink.written < 500000 * 100  # cut mid-stream
        assert bounded(lambda: db.query("SELECT 10").scalar()).result == 10
