"""PostgreSQLConnector without a server: arguments, state, retry decisions, libpq parameters."""

import contextlib
import logging

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
    # One NullHandler, on the top package's logger; none repeated here.
    assert not logging.getLogger("dictamesh_connectors.postgresql").handlers
    assert "secret_fields" not in vars(PostgreSQLConfig)  # never read: the Secret type does it


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
    def fake_use(operation="operation"):
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


def test_run_in_transaction_logs_each_rerun_through_the_core_retry_loop(caplog):
    db = make()
    db.transaction = FakeTransactions([conflict(ErrorCode.DEADLOCK)])
    db._sleep = lambda s: None
    with caplog.at_level("WARNING", logger="dictamesh_connectors.retry"):
        assert db.run_in_transaction(lambda tx: 7, retry=RetryPolicy(max_attempts=2)) == 7
    (record,) = caplog.records
    message = record.getMessage()
    assert "postgresql: transaction on" in message and "attempt 1 of 2" in message
    assert "DEADLOCK" in message


def test_a_read_retried_once_notes_the_lost_connection_after_each_attempt(monkeypatch):
    db = make()
    noted = []
    monkeypatch.setattr(type(db._checkout), "note_lost", lambda self: noted.append(1))

    @contextlib.contextmanager
    def fake_use(operation="operation"):
        raise ConnectorError("lost", code=ErrorCode.CONNECTION_LOST)
        yield  # pragma: no cover

    monkeypatch.setattr(db, "_use", fake_use)
    with pytest.raises(ConnectorError):
        db.query("SELECT 1")
    # Both failures count: every checkout is checked for a while after either.
    assert noted == [1, 1]


def test_errors_other_than_a_lost_connection_are_not_retried(monkeypatch):
    db = make()
    attempts = []

    @contextlib.contextmanager
    def fake_use(operation="operation"):
        attempts.append(1)
        raise ConnectorError("timeout", code=ErrorCode.TIMEOUT)
        yield  # pragma: no cover

    monkeypatch.setattr(db, "_use", fake_use)
    with pytest.raises(ConnectorError):
        db.query("SELECT 1")
    assert attempts == [1]


def test_a_forked_child_forgets_the_checkout_state(monkeypatch):
    import os

    db = make()
    db._checkout.note_lost()
    db._after_fork_in_child()  # same process: nothing to forget
    assert db._checkout._suspicious_until > 0
    monkeypatch.setattr(db, "_pid", os.getpid() + 1)  # as seen from a child
    db._after_fork_in_child()
    assert db._checkout._suspicious_until == 0.0 and db._pid == os.getpid()
