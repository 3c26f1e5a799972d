"""FakePostgreSQL against the real PostgreSQLConnector on the real server: one set of tests.

Each test runs twice. On the real side it talks to the test server (the
``postgres_dsn`` fixture) in a table of its own; on the fake side the same
statements run against ``FakePostgreSQL`` built from the *same* config,
programmed (``side.program``, a no-op on the real side) with what the
server answers: rows, and the SQLSTATE of a missing table, a unique
violation, a statement timeout. The assertions are shared: result types and
shapes, error classes, codes, SQLSTATEs and messages, NOT_CONNECTED, and the
transaction rules (rollback on an exception, TRANSACTION_FAILED after a
failed statement, savepoints, ``run_in_transaction``).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dictamesh_connectors.errors import (
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from dictamesh_connectors.postgresql import (
    ExecResult,
    PostgreSQLConfig,
    PostgreSQLConnector,
    QueryResult,
    RowStream,
)
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.fakes import FakePostgreSQL

pytestmark = pytest.mark.integration


class Side:
    """One side of the comparison: ``db`` (connected), a fresh table name, ``program``."""

    def __init__(self, kind: str, config: PostgreSQLConfig) -> None:
        self.kind = kind
        self.table = f"drift_{uuid.uuid4().hex[:12]}"
        self.db: Any = FakePostgreSQL(config) if kind == "fake" else PostgreSQLConnector(config)

    def program(self, fn: Callable[[FakePostgreSQL], object]) -> None:
        """Tell the fake what the server would answer (nothing to do on the real side)."""
        if self.kind == "fake":
            fn(self.db)

    def sql(self, text: str) -> str:
        return text.format(t=self.table)


@pytest.fixture(params=["fake", "real"])
def side(request: pytest.FixtureRequest, postgres_dsn: str) -> Iterator[Side]:
    config = PostgreSQLConfig.from_url(
        postgres_dsn,
        application_name="dmtest-drift",
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.001),
    )
    s = Side(str(request.param), config)
    s.db.connect()
    s.db.execute(s.sql("CREATE TABLE {t} (id int PRIMARY KEY, name text)"))
    yield s
    try:
        s.db.execute(s.sql("DROP TABLE IF EXISTS {t}"))
    finally:
        s.db.disconnect()


def insert(side: Side) -> str:
    return side.sql("INSERT INTO {t} (id, name) VALUES (%s, %s)")


def count(side: Side) -> int:
    return int(side.db.query(side.sql("SELECT count(*) AS n FROM {t}")).scalar())


def program_count(side: Side, *values: int) -> None:
    """The fake answers ``count(*)`` with ``values``, one per call."""
    for value in values:
        side.program(
            lambda fake, value=value: fake.add_result(
                side.sql("SELECT count(*) AS n FROM {t}"), rows=[{"n": value}], times=1
            )
        )


def unique_violation(side: Side) -> None:
    side.program(
        lambda fake: fake.add_error(
            insert(side),
            "23505",
            f'duplicate key value violates unique constraint "{side.table}_pkey"',
            details={"constraint": f"{side.table}_pkey", "table": side.table},
        )
    )


def test_results_have_the_real_shape(side: Side):
    side.program(
        lambda fake: fake.add_result(
            side.sql("INSERT INTO {t} (id, name) VALUES (%s, %s) RETURNING id"),
            rows=[{"id": 1}],
        )
    )
    side.program(lambda fake: fake.add_result(insert(side), rowcount=1))
    side.program(
        lambda fake: fake.add_result(
            side.sql("SELECT id, name FROM {t} ORDER BY id"),
            rows=[{"id": 1, "name": "Ada"}, {"id": 2, "name": None}],
        )
    )
    returned = side.db.execute(
        side.sql("INSERT INTO {t} (id, name) VALUES (%s, %s) RETURNING id"), [1, "Ada"]
    )
    assert type(returned) is ExecResult
    assert (returned.rows_affected, returned.rows, returned.columns) == (1, [{"id": 1}], ["id"])
    plain = side.db.execute(insert(side), [2, None])
    assert (plain.rows_affected, plain.rows, plain.columns) == (1, [], [])
    result = side.db.query(side.sql("SELECT id, name FROM {t} ORDER BY id"))
    assert type(result) is QueryResult
    assert result.columns == ["id", "name"]
    assert result.rows == [{"id": 1, "name": "Ada"}, {"id": 2, "name": None}]
    assert result.tuples == [(1, "Ada"), (2, None)]
    assert (result.first(), result.scalar(), len(result), result.rowcount) == (
        {"id": 1, "name": "Ada"},
        1,
        2,
        2,
    )


def test_missing_table_is_not_found(side: Side):
    missing = f"nope_{side.table}"
    side.program(
        lambda fake: fake.add_error(
            f"SELECT * FROM {missing}", "42P01", f'relation "{missing}" does not exist'
        )
    )
    with pytest.raises(ConnectorError) as info:
        side.db.query(f"SELECT * FROM {missing}")
    err = info.value
    assert (err.code, err.transient, err.details["sqlstate"]) == (
        ErrorCode.NOT_FOUND,
        False,
        "42P01",
    )
    assert str(err) == (
        f'postgresql: query on {side.db.config.target}: relation "{missing}" does not exist'
    )


def test_unique_violation(side: Side):
    side.program(lambda fake: fake.add_result(insert(side), rowcount=1, times=1))
    unique_violation(side)
    side.db.execute(insert(side), [1, "Ada"])
    with pytest.raises(ConnectorError) as info:
        side.db.execute(insert(side), [1, "again"])
    err = info.value
    assert (err.code, err.details["sqlstate"], err.maybe_applied) == (
        ErrorCode.CONSTRAINT_VIOLATION,
        "23505",
        False,
    )
    assert err.details["constraint"] == f"{side.table}_pkey"
    assert str(err) == (
        f"postgresql: execute on {side.db.config.target}: duplicate key value violates "
        f'unique constraint "{side.table}_pkey"'
    )


def test_statement_timeout(side: Side):
    side.program(
        lambda fake: fake.add_error(
            "SELECT pg_sleep(5)", "57014", "canceling statement due to statement timeout"
        )
    )
    with pytest.raises(ConnectorTimeoutError) as info:
        side.db.query("SELECT pg_sleep(5)", timeout=0.05)
    assert info.value.details["sqlstate"] == "57014" and info.value.transient


def test_executemany_is_all_or_nothing(side: Side):
    side.program(lambda fake: fake.add_result(insert(side), rowcount=1, times=2))
    unique_violation(side)
    program_count(side, 0)
    with pytest.raises(ConnectorError) as info:
        side.db.executemany(insert(side), [[1, "a"], [2, "b"], [1, "dup"]])
    assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
    assert count(side) == 0


def test_transaction_commit_and_rollback(side: Side):
    side.program(lambda fake: fake.add_result(insert(side), rowcount=1))
    program_count(side, 1, 1)
    with side.db.transaction() as tx:
        assert tx.is_active
        assert tx.execute(insert(side), [1, "kept"]).rows_affected == 1
    assert not tx.is_active
    assert count(side) == 1
    with pytest.raises(RuntimeError), side.db.transaction(isolation_level="serializable") as tx:
        tx.execute(insert(side), [2, "dropped"])
        raise RuntimeError("boom")
    assert count(side) == 1
    with pytest.raises(ConnectorError) as info:
        tx.execute(insert(side), [3, "late"])
    assert info.value.code is ErrorCode.TRANSACTION_FAILED
    assert "the transaction is finished" in str(info.value)


def test_a_failed_statement_aborts_the_transaction(side: Side):
    side.program(lambda fake: fake.add_result(insert(side), rowcount=1, times=1))
    unique_violation(side)
    program_count(side, 0)
    with pytest.raises(ConnectorError) as info, side.db.transaction() as tx:
        tx.execute(insert(side), [1, "a"])
        with pytest.raises(ConnectorError) as failed:
            tx.execute(insert(side), [1, "dup"])
        assert failed.value.code is ErrorCode.CONSTRAINT_VIOLATION
        with pytest.raises(ConnectorError) as later:
            tx.execute(insert(side), [2, "b"])
        assert later.value.code is ErrorCode.TRANSACTION_FAILED
        assert later.value.details["sqlstate"] == "25P02"
    assert info.value.code is ErrorCode.TRANSACTION_FAILED
    assert str(info.value) == (
        f"postgresql: transaction on {side.db.config.target}: a statement failed inside "
        "the block; the transaction was rolled back"
    )
    assert count(side) == 0


def test_savepoint_keeps_the_transaction(side: Side):
    side.program(lambda fake: fake.add_result(insert(side), rowcount=1, times=1))
    unique_violation_once(side)
    side.program(lambda fake: fake.add_result(insert(side), rowcount=1, times=1))
    program_count(side, 2)
    with side.db.transaction() as tx:
        tx.execute(insert(side), [1, "a"])
        with pytest.raises(ConnectorError) as info, tx.savepoint():
            tx.execute(insert(side), [1, "dup"])
        assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
        tx.execute(insert(side), [2, "b"])
    assert count(side) == 2


def unique_violation_once(side: Side) -> None:
    side.program(
        lambda fake: fake.add_error(
            insert(side), "23505", "duplicate key value violates unique constraint", times=1
        )
    )


def test_run_in_transaction_returns_what_the_function_returns(side: Side):
    side.program(lambda fake: fake.add_result(insert(side), rowcount=1))
    side.program(
        lambda fake: fake.add_result(
            side.sql("SELECT name FROM {t} WHERE id = %s"), rows=[{"name": "Ada"}]
        )
    )

    def work(tx: Any) -> str:
        tx.execute(insert(side), [1, "Ada"])
        return str(tx.query(side.sql("SELECT name FROM {t} WHERE id = %s"), [1]).scalar())

    assert side.db.run_in_transaction(work) == "Ada"


def test_stream_copy_in_and_copy_out(side: Side):
    rows = [{"id": i, "name": f"n{i}"} for i in range(5)]
    side.program(
        lambda fake: fake.add_result(side.sql("SELECT id, name FROM {t} ORDER BY id"), rows=rows)
    )
    assert side.db.copy_in(side.table, ["id", "name"], ((r["id"], r["name"]) for r in rows)) == 5
    stream = side.db.stream(side.sql("SELECT id, name FROM {t} ORDER BY id"), batch_size=2)
    assert isinstance(stream, RowStream)
    with stream:
        assert list(stream) == rows
    assert stream.columns == ["id", "name"]
    data = side.db.copy_out(side.sql("SELECT id, name FROM {t} ORDER BY id"), header=True)
    assert data == b"id,name\n" + b"".join(f"{i},n{i}\n".encode() for i in range(5))
    out = io.BytesIO()
    assert side.db.copy_out(side.sql("SELECT id, name FROM {t} ORDER BY id"), out=out) == 5
    assert out.getvalue().count(b"\n") == 5


@pytest.mark.parametrize(
    "call",
    [
        lambda db: db.transaction(isolation_level="bogus").__enter__(),
        lambda db: db.stream("SELECT 1", batch_size=0),
        lambda db: db.copy_out("SELECT 1", format="xml"),
        lambda db: db.copy_out("SELECT 1", format="text", header=True),
        lambda db: db.query("SELECT 1", timeout=-1),
        lambda db: db.copy_in("t", [], []),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(side: Side, call):
    with pytest.raises(InvalidConfigError):
        call(side.db)


def test_not_connected(side: Side):
    fresh = (
        FakePostgreSQL(side.db.config)
        if side.kind == "fake"
        else PostgreSQLConnector(side.db.config)
    )
    for attempt in (lambda: fresh.query("SELECT 1"), lambda: fresh.execute("SELECT 1")):
        with pytest.raises(NotConnectedError) as info:
            attempt()
        assert info.value.code is ErrorCode.NOT_CONNECTED
    with pytest.raises(NotConnectedError), fresh.transaction():
        pass
    fresh.connect()
    fresh.ping()
    fresh.disconnect()
    with pytest.raises(NotConnectedError):
        fresh.query("SELECT 1")
