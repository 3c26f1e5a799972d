"""PostgreSQLConnector without a server: arguments, state, retry decisions, libpq parameters."""

import contextlib
import pickle

import psycopg
import pytest

import dictamesh_connectors.postgresql as pg_package
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
    RetryHint,
)
from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector
from dictamesh_connectors.postgresql.connector import _begin_statement, _timeout_ms
from dictamesh_connectors.retry import RetryPolicy

PASSWORD = "Sup3r-Secret-Pa55"


def make(**fields):
    return PostgreSQLConnector(PostgreSQLConfig(**fields))


def test_package_exports():
    assert pg_package.__all__ == sorted(pg_package.__all__)
    for name in pg_package.__all__:
        obj = getattr(pg_package, name)
        assert (obj.__doc__ or "").strip(), name
    assert PostgreSQLConnector.name == "postgresql"
    assert PostgreSQLConnector.config_class is PostgreSQLConfig
    with pytest.raises(AttributeError):
        pg_package.NoSuchThing  # noqa: B018


def test_wrong_config_type_is_rejected():
    with pytest.raises(InvalidConfigError):
        PostgreSQLConnector(object())


def test_operations_before_connect_raise_not_connected():
    db = make()
    for call in (
        lambda: db.query("SELECT 1"),
        lambda: db.execute("SELECT 1"),
        lambda: db.executemany("SELECT %s", [[1]]),
        lambda: db.copy_in("t", ["a"], []),
        lambda: next(iter(db.stream("SELECT 1"))),
        lambda: db.ping(),
    ):
        with pytest.raises(NotConnectedError):
            call()
    with pytest.raises(NotConnectedError), db.transaction():
        pass


@pytest.mark.parametrize(
    "level, read_only, deferrable, expected",
    [
        (None, False, False, "BEGIN"),
        ("serializable", False, False, "BEGIN ISOLATION LEVEL SERIALIZABLE"),
        ("repeatable_read", True, False, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        ("Read Committed", False, True, "BEGIN ISOLATION LEVEL READ COMMITTED DEFERRABLE"),
    ],
)
def test_begin_statement(level, read_only, deferrable, expected):
    assert _begin_statement(level, read_only, deferrable) == expected


def test_begin_statement_accepts_psycopg_isolation_levels_and_rejects_the_rest():
    import psycopg

    assert _begin_statement(psycopg.IsolationLevel.SERIALIZABLE, False, False).endswith(
        "SERIALIZABLE"
    )
    for bad in ("serializable; DROP TABLE x", "chaos", 3):
        with pytest.raises(InvalidConfigError):
            _begin_statement(bad, False, False)


def test_timeouts_become_whole_milliseconds_and_must_be_positive():
    assert _timeout_ms(1.5) == "1500"
    assert _timeout_ms(0.0001) == "1"
    for bad in (0, -1, float("nan"), float("inf"), True, "1"):
        with pytest.raises(InvalidConfigError):
            _timeout_ms(bad)


def test_stream_batch_size_is_validated_before_any_io():
    db = make()
    for bad in (0, -5, 1.5, True):
        with pytest.raises(InvalidConfigError):
            db.stream("SELECT 1", batch_size=bad)


def test_libpq_parameters():
    db = make(
        host="db",
        port=6000,
        database="app",
        username="me",
        password=PASSWORD,
        schema='My "Schema"',
        options="-c work_mem=64MB",
        statement_timeout=2.5,
        connect_timeout=1.2,
        ssl_mode="require",
    )
    kwargs = db._connect_kwargs()
    assert kwargs["password"] == PASSWORD  # the one place it is revealed
    assert kwargs["autocommit"] is True
    assert (kwargs["host"], kwargs["port"], kwargs["dbname"], kwargs["user"]) == (
        "db",
        6000,
        "app",
        "me",
    )
    assert kwargs["sslmode"] == "require" and kwargs["connect_timeout"] == 2
    assert kwargs["options"] == (
        '-c work_mem=64MB -c search_path="My\\ ""Schema""" -c statement_timeout=2500'
    )
    assert PASSWORD not in repr(db)


class FakeTransactions:
    """Stands in for PostgreSQLConnector.transaction: each attempt raises the next error."""

    def __init__(self, errors):
        self.errors = list(errors)
        self.attempts = 0

    @contextlib.contextmanager
    def __call__(self, *args):
        self.attempts += 1
        yield "tx"
        if self.errors:
            raise self.errors.pop(0)


def conflict(code):
    return ConnectorError("conflict", code=code, connector="postgresql")


@pytest.mark.parametrize("code", [ErrorCode.SERIALIZATION_FAILURE, ErrorCode.DEADLOCK])
def test_run_in_transaction_reruns_the_whole_function_on_conflicts(monkeypatch, code):
    db = make()
    fake = FakeTransactions([conflict(code), conflict(code)])
    monkeypatch.setattr(db, "transaction", fake)
    waits, calls = [], []
    db._sleep = waits.append
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.01, deadline=None)
    result = db.run_in_transaction(lambda tx: calls.append(tx) or "done", retry=policy)
    assert result == "done" and fake.attempts == 3 and calls == ["tx"] * 3
    assert len(waits) == 2 and all(0 <= w <= 0.02 for w in waits)


def test_run_in_transaction_gives_up_after_the_policy():
    db = make()
    fake = FakeTransactions([conflict(ErrorCode.SERIALIZATION_FAILURE)] * 10)
    db.transaction = fake
    db._sleep = lambda s: None
    with pytest.raises(ConnectorError) as info:
        db.run_in_transaction(lambda tx: None, retry=RetryPolicy(max_attempts=3))
    assert info.value.code is ErrorCode.SERIALIZATION_FAILURE and fake.attempts == 3


@pytest.mark.parametrize(
    "error",
    [
        ConnectorError("lock", code=ErrorCode.LOCK_TIMEOUT),
        ConnectorError("lost", code=ErrorCode.CONNECTION_LOST),
        ConnectorError("dup", code=ErrorCode.CONSTRAINT_VIOLATION),
        ValueError("bug in fn"),
    ],
)
def test_run_in_transaction_propagates_anything_else_at_once(error):
    db = make()
    fake = FakeTransactions([error])
    db.transaction = fake
    db._sleep = lambda s: pytest.fail("must not wait")
    with pytest.raises(type(error)):
        db.run_in_transaction(lambda tx: None)
    assert fake.attempts == 1


def test_run_in_transaction_respects_the_deadline():
    db = make()
    fake = FakeTransactions([conflict(ErrorCode.DEADLOCK)] * 5)
    db.transaction = fake
    policy = RetryPolicy(max_attempts=10, initial_backoff=5, jitter=False, deadline=1)
    db._sleep = lambda s: pytest.fail("no wait")
    with pytest.raises(ConnectorError):
        db.run_in_transaction(lambda tx: None, retry=policy)
    assert fake.attempts == 1


def test_run_in_transaction_measures_the_deadline_on_the_connectors_clock():
    db = make()
    fake = FakeTransactions([conflict(ErrorCode.DEADLOCK)] * 10)
    db.transaction = fake
    now = [1_000_000.0]  # a fake clock far from time.monotonic()
    db._clock = lambda: now[0]
    db._sleep = lambda seconds: now.__setitem__(0, now[0] + seconds)
    policy = RetryPolicy(
        max_attempts=10, initial_backoff=1, multiplier=2, max_backoff=100, jitter=False, deadline=5
    )
    with pytest.raises(ConnectorError):
        db.run_in_transaction(lambda tx: None, retry=policy)
    # Waits of 1 s and 2 s fit in the 5 s budget; the next (4 s) would not.
    assert fake.attempts == 3 and now[0] == 1_000_003.0


def test_reads_are_retried_once_on_reconnect_hints_and_writes_never(monkeypatch):
    db = make()
    attempts = []
    lost = ConnectorError("lost", code=ErrorCode.CONNECTION_LOST, maybe_applied=True)
    assert lost.retry_hint is RetryHint.RECONNECT

    @contextlib.contextmanager
    def fake_use():
        attempts.append(1)
        raise lost
        yield  # pragma: no cover

    monkeypatch.setattr(db, "_use", fake_use)
    with pytest.raises(ConnectorError):
        db.query("SELECT 1")
    assert len(attempts) == 2
    attempts.clear()
    with pytest.raises(ConnectorError):
        db.execute("UPDATE t SET a = 1")
    assert len(attempts) == 1
    attempts.clear()
    db2 = make(retry_reads=False)
    monkeypatch.setattr(db2, "_use", fake_use)
    with pytest.raises(ConnectorError):
        db2.query("SELECT 1")
    assert len(attempts) == 1


def test_discard_after_fork_neutralises_the_inherited_pool():
    class Pool:
        _closed = False

    pool = Pool()
    make()._discard_after_fork(pool)
    assert pool._closed is True


def test_query_result_value_semantics():
    from dictamesh_connectors.postgresql import ExecResult, QueryResult

    r = QueryResult(["a", "b"], [(1, "x"), (2, None)], 2)
    assert r.rows == [{"a": 1, "b": "x"}, {"a": 2, "b": None}] and list(r) == r.rows
    assert r.first() == {"a": 1, "b": "x"} and r.scalar() == 1 and len(r) == 2
    empty = QueryResult(["a"], [], 0)
    assert empty.first() is None and empty.scalar() is None and not empty.rows
    e = ExecResult(["id"], [(7,)], 3)
    assert e.rows_affected == 3 and e.scalar() == 7
    copy = pickle.loads(pickle.dumps(e))
    assert type(copy) is ExecResult and copy.rows == e.rows and copy.rows_affected == 3
    assert "rows_affected=3" in repr(e) and "rows=2" in repr(r)


class FakePGconn:
    def __init__(self, dead):
        self.dead = dead
        self.reads = 0
        self.status = 0  # OK
        self.transaction_status = 0  # IDLE

    def consume_input(self):
        self.reads += 1
        if self.dead:
            self.status = 1  # BAD
            raise psycopg.OperationalError("consuming input failed: server closed the connection")

    def is_busy(self):
        return 0


class FakeConn:
    def __init__(self, dead=False):
        self.pgconn = FakePGconn(dead)
        self.closed = False

    def close(self):
        self.closed = True


class FakePool:
    def __init__(self, conns):
        self.idle = list(conns)
        self.returned = []

    def getconn(self, timeout=None):
        return self.idle.pop(0)

    def putconn(self, conn):
        self.returned.append(conn)


def test_checkout_discards_dead_connections_without_sleeping():
    db = make(max_open_conns=4)
    dead1, dead2, good = FakeConn(dead=True), FakeConn(dead=True), FakeConn()
    pool = FakePool([dead1, dead2, good])
    assert db._getconn(pool) is good
    assert pool.returned == [dead1, dead2] and dead1.closed and dead2.closed
    assert good.pgconn.reads == 1


def test_checkout_skips_the_read_for_a_connection_used_a_moment_ago(monkeypatch):
    from dictamesh_connectors.postgresql import connector as module

    db = make()
    conn = FakeConn()
    pool = FakePool([])
    module._putconn(pool, conn)  # stamps the release time
    pool.idle.append(pool.returned.pop())
    assert db._getconn(pool) is conn and conn.pgconn.reads == 0
    # Once a dead connection has been seen, every checkout is checked again.
    db._note_lost()
    pool.idle.append(conn)
    assert db._getconn(pool) is conn and conn.pgconn.reads == 1
    # An old release time is checked too.
    db._suspicious_until = 0.0
    monkeypatch.setattr(module, "_RECENTLY_USED", 0.0)
    pool.idle.append(conn)
    assert db._getconn(pool) is conn and conn.pgconn.reads == 2


def test_health_check_off_never_reads():
    db = make(health_check="off")
    conn = FakeConn(dead=True)
    assert db._getconn(FakePool([conn])) is conn and conn.pgconn.reads == 0


def test_the_documented_health_check_windows_are_the_real_ones():
    from pathlib import Path

    from dictamesh_connectors.postgresql import connector as module

    docs = (Path(__file__).resolve().parents[3] / "docs" / "postgresql.md").read_text()
    docstring = " ".join(PostgreSQLConfig.__doc__.split())
    recently = f"{round(module._RECENTLY_USED * 1000)} ms"
    assert module._SUSPICIOUS_FOR == 1.0  # "for a second" in both texts
    assert f"less than {recently} earlier" in " ".join(docs.split())
    assert f"than {recently} earlier" in docstring and "for a second" in docstring
    assert "during the second after any connection was found dead" in " ".join(docs.split())
