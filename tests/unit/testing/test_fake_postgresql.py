"""FakePostgreSQL: programmed results and errors, the statement log, transactions, faults."""

from __future__ import annotations

import io
import re
import threading

import pytest
from psycopg import sql as psql

from dictamesh_connectors.errors import (
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from dictamesh_connectors.postgresql import ExecResult, PostgreSQLConfig, QueryResult, RowStream
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.fakes import FakePostgreSQL
from dictamesh_connectors.testing.fakes.postgresql import FakeTransaction, Statement
from tests.unit.fakes import FakeClock

SELECT = "SELECT id, name FROM users WHERE id = %s"


@pytest.fixture
def db():
    fake = FakePostgreSQL()
    clock = FakeClock()
    fake._sleep, fake._clock = clock.sleep, clock.clock
    fake.connect()
    yield fake
    fake.disconnect()


def test_config_forms():
    assert FakePostgreSQL().config.target == "fake@fake.invalid:5432"
    assert FakePostgreSQL("postgresql://u:pw@h:5433/app").config.target == "app@h:5433"
    config = PostgreSQLConfig(host="db", database="x")
    assert FakePostgreSQL(config).config is config
    with pytest.raises(InvalidConfigError):
        FakePostgreSQL(object())  # type: ignore[arg-type]


def test_not_connected():
    fake = FakePostgreSQL()
    with pytest.raises(NotConnectedError):
        fake.query("SELECT 1")
    with pytest.raises(NotConnectedError), fake.transaction():
        pass
    stream = fake.stream("SELECT 1")  # lazy, as the real one
    with pytest.raises(NotConnectedError):
        next(stream)
    assert fake.statements == []


def test_query_returns_the_real_result_type(db: FakePostgreSQL):
    db.add_result(SELECT, rows=[{"id": 1, "name": "Ada"}])
    result = db.query("  SELECT id, name\n FROM users WHERE id = %s ;", [1])
    assert type(result) is QueryResult
    assert result.columns == ["id", "name"] and result.tuples == [(1, "Ada")]
    assert result.first() == {"id": 1, "name": "Ada"} and result.scalar() == 1
    assert result.rowcount == 1 and len(result) == 1
    (statement,) = db.statements
    assert isinstance(statement, Statement)
    assert (statement.operation, statement.params, statement.transaction) == ("query", [1], None)


def test_tuple_rows_explicit_columns_and_rowcount(db: FakePostgreSQL):
    db.add_result("SELECT a, b FROM t", rows=[(1, 2), (3, 4)], columns=["a", "b"])
    db.add_result("SELECT x FROM u", rows=[(9,)])
    db.add_result("UPDATE t SET a = 0", rowcount=7)
    assert db.query("SELECT a, b FROM t").rows == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    assert db.query("SELECT x FROM u").columns == ["column1"]
    result = db.execute("UPDATE t SET a = 0")
    assert type(result) is ExecResult and result.rows_affected == 7 and result.rows == []


def test_rows_may_depend_on_the_params(db: FakePostgreSQL):
    db.add_result(SELECT, rows=lambda params: [{"id": params[0], "name": f"user{params[0]}"}])
    assert db.query(SELECT, [5]).first() == {"id": 5, "name": "user5"}


def test_regex_programs_and_times(db: FakePostgreSQL):
    db.add_result(re.compile(r"FROM users"), rows=[{"n": 1}], times=1)
    db.add_result(re.compile(r"FROM users"), rows=[{"n": 2}])
    assert db.query("SELECT n FROM users").scalar() == 1
    assert db.query("SELECT n FROM users").scalar() == 2
    assert db.query("SELECT n FROM users").scalar() == 2
    assert len(db.programs) == 1 and db.programs[0].calls == 2


def test_unprogrammed_is_empty_or_strict_invalid_request(db: FakePostgreSQL):
    result = db.query("SELECT nothing")
    assert result.rows == [] and result.columns == [] and result.rowcount == 0
    strict = FakePostgreSQL(strict=True)
    with strict, pytest.raises(ConnectorError) as info:
        strict.query("SELECT nothing")
    assert info.value.code is ErrorCode.INVALID_REQUEST and info.value.details["unmatched"]


def test_psycopg_sql_objects_are_rendered(db: FakePostgreSQL):
    db.add_result('SELECT "a" FROM "t"', rows=[{"a": 1}])
    query = psql.SQL("SELECT {} FROM {}").format(psql.Identifier("a"), psql.Identifier("t"))
    assert db.query(query).scalar() == 1
    assert db.query(b'SELECT "a" FROM "t"').scalar() == 1
    with pytest.raises(TypeError):
        db.query(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sqlstate", "code", "transient"),
    [
        ("42P01", ErrorCode.NOT_FOUND, False),
        ("23505", ErrorCode.CONSTRAINT_VIOLATION, False),
        ("40001", ErrorCode.SERIALIZATION_FAILURE, True),
        ("40P01", ErrorCode.DEADLOCK, True),
        ("57014", ErrorCode.TIMEOUT, True),
        ("42601", ErrorCode.INVALID_REQUEST, False),
        ("22P02", ErrorCode.INVALID_INPUT, False),
    ],
)
def test_programmed_errors_go_through_the_real_table(db: FakePostgreSQL, sqlstate, code, transient):
    db.add_error("INSERT INTO t VALUES (%s)", sqlstate, details={"table": "t"})
    with pytest.raises(ConnectorError) as info:
        db.execute("INSERT INTO t VALUES (%s)", [1])
    err = info.value
    assert (err.code, err.transient, err.connector) == (code, transient, "postgresql")
    assert err.details["sqlstate"] == sqlstate and err.details["table"] == "t"
    assert str(err).startswith("postgresql: execute on fake@fake.invalid:5432: ")
    assert db.statements[-1].rolled_back and db.applied == []


def test_timeout_error_class_and_message(db: FakePostgreSQL):
    db.add_error("SELECT pg_sleep(10)", "57014", "canceling statement due to statement timeout")
    with pytest.raises(ConnectorTimeoutError) as info:
        db.query("SELECT pg_sleep(10)")
    assert "canceling statement due to statement timeout" in str(info.value)


def test_add_error_validates(db: FakePostgreSQL):
    with pytest.raises(InvalidConfigError):
        db.add_error("x", "XXXXX")
    with pytest.raises(TypeError):
        db.add_error("x", 23505)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        db.add_result("x", times=0)
    with pytest.raises(TypeError):
        db.add_result(1)  # type: ignore[arg-type]


def test_timeout_argument_is_checked_like_the_real_one(db: FakePostgreSQL):
    with pytest.raises(InvalidConfigError):
        db.query("SELECT 1", timeout=-1)
    with pytest.raises(TypeError):
        db.execute("SELECT 1", timeout="1")  # type: ignore[arg-type]
    db.query("SELECT 1", timeout=5)


def test_executemany_records_each_parameter_set(db: FakePostgreSQL):
    db.add_result("INSERT INTO t (a) VALUES (%s)", rowcount=1)
    result = db.executemany("INSERT INTO t (a) VALUES (%s)", ([i] for i in range(3)))
    assert result.rows_affected == 3
    assert [s.params for s in db.applied] == [[0], [1], [2]]


def test_executemany_is_atomic(db: FakePostgreSQL):
    db.add_result("INSERT INTO t (a) VALUES (%s)", rowcount=1, times=2)
    db.add_error("INSERT INTO t (a) VALUES (%s)", "23505")
    with pytest.raises(ConnectorError) as info:
        db.executemany("INSERT INTO t (a) VALUES (%s)", [[1], [2], [3]])
    assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
    assert len(db.statements) == 3 and all(s.rolled_back for s in db.statements)
    assert db.applied == []


def test_partial_fault_on_executemany(db: FakePostgreSQL):
    db.fail_next("executemany", partial=2, code=ErrorCode.CONNECTION_LOST)
    with pytest.raises(ConnectorError) as info:
        db.executemany("INSERT INTO t (a) VALUES (%s)", [[1], [2], [3], [4]])
    err = info.value
    assert err.maybe_applied and err.details["applied"] == 2 and err.details["total"] == 4
    assert len(db.statements) == 2 and db.applied == []  # atomic: undone
    assert db.faults.call_count("executemany") == 1  # a write: never retried


def test_copy_in_and_copy_out(db: FakePostgreSQL):
    assert db.copy_in("t", ["a", "b"], iter([(1, "x"), (2, None)])) == 2
    (copy,) = db.applied
    assert copy.sql == 'COPY "t" ("a", "b") FROM STDIN' and copy.params == [(1, "x"), (2, None)]
    with pytest.raises(InvalidConfigError):
        db.copy_in("t", [], [])
    db.add_result("SELECT a, b FROM t", rows=[{"a": 1, "b": "x,y"}, {"a": 2, "b": None}])
    assert db.copy_out("SELECT a, b FROM t", header=True) == b'a,b\n1,"x,y"\n2,\n'
    assert db.copy_out("SELECT a, b FROM t", format="text") == b"1\tx,y\n2\t\\N\n"
    out = io.BytesIO()
    assert db.copy_out("SELECT a, b FROM t", out=out) == 2 and out.getvalue().count(b"\n") == 2
    with pytest.raises(InvalidConfigError):
        db.copy_out("SELECT 1", format="xml")
    with pytest.raises(ConnectorError) as info:
        db.copy_out("SELECT 1", format="binary")
    assert info.value.code is ErrorCode.UNSUPPORTED


def test_partial_fault_on_copy_in(db: FakePostgreSQL):
    db.fail_next("copy_in", partial=True)
    with pytest.raises(ConnectorError) as info:
        db.copy_in("t", ["a"], [(1,), (2,), (3,), (4,)])
    assert info.value.details["applied"] == 2
    assert db.statements[0].params == [(1,), (2,)] and db.applied == []


def test_stream(db: FakePostgreSQL):
    db.add_result("SELECT n FROM big", rows=[{"n": i} for i in range(5)])
    with pytest.raises(InvalidConfigError):
        db.stream("SELECT n FROM big", batch_size=0)
    stream = db.stream("SELECT n FROM big", batch_size=2)
    assert isinstance(stream, RowStream) and db.statements == []
    with stream as rows:
        assert next(rows) == {"n": 0}
        assert db.stats().in_flight == 1
        assert [row["n"] for row in rows] == [1, 2, 3, 4]
    assert stream.columns == ["n"] and db.stats().in_flight == 0


def test_stream_stopped_early_releases(db: FakePostgreSQL):
    db.add_result("SELECT n FROM big", rows=[{"n": i} for i in range(5)])
    with db.stream("SELECT n FROM big") as rows:
        next(rows)
    assert db.stats().in_flight == 0


def test_transaction_commit_is_recorded(db: FakePostgreSQL):
    db.add_result("SELECT balance FROM accounts WHERE id = %s", rows=[{"balance": 10}])
    with db.transaction(isolation_level="serializable") as tx:
        assert isinstance(tx, FakeTransaction) and tx.is_active
        balance = tx.query("SELECT balance FROM accounts WHERE id = %s", [1]).scalar()
        tx.execute("UPDATE accounts SET balance = %s WHERE id = %s", [balance - 1, 1])
    assert not tx.is_active
    assert [s.sql for s in db.statements] == [
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
        "SELECT balance FROM accounts WHERE id = %s",
        "UPDATE accounts SET balance = %s WHERE id = %s",
        "COMMIT",
    ]
    assert [s.params for s in db.applied] == [[9, 1]]
    with pytest.raises(ConnectorError) as info:
        tx.execute("SELECT 1")
    assert info.value.code is ErrorCode.TRANSACTION_FAILED
    with pytest.raises(InvalidConfigError), db.transaction(isolation_level="bogus"):
        pass


def test_transaction_rollback_discards_its_writes(db: FakePostgreSQL):
    db.execute("INSERT INTO t VALUES (0)")
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    assert [s.sql for s in db.statements][-1] == "ROLLBACK"
    assert [s.sql for s in db.applied] == ["INSERT INTO t VALUES (0)"]
    assert db.statements[2].rolled_back


def test_failed_statement_aborts_the_transaction(db: FakePostgreSQL):
    db.add_error("INSERT INTO t VALUES (1)", "23505")
    with pytest.raises(ConnectorError) as info, db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (0)")
        with pytest.raises(ConnectorError):
            tx.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ConnectorError) as later:
            tx.execute("INSERT INTO t VALUES (2)")
        assert later.value.code is ErrorCode.TRANSACTION_FAILED
        assert later.value.details["sqlstate"] == "25P02"
    assert info.value.code is ErrorCode.TRANSACTION_FAILED  # swallowed: rolled back
    assert "was rolled back" in str(info.value)
    assert db.applied == []


def test_savepoint_rolls_back_only_its_block(db: FakePostgreSQL):
    db.add_error("INSERT INTO t VALUES (1)", "23505")
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (0)")
        with pytest.raises(ConnectorError), tx.savepoint():
            tx.execute("INSERT INTO t VALUES (1)")
        with tx.savepoint():
            tx.execute("INSERT INTO t VALUES (2)")
    assert [s.sql for s in db.applied] == ["INSERT INTO t VALUES (0)", "INSERT INTO t VALUES (2)"]
    texts = [s.sql for s in db.statements]
    assert 'SAVEPOINT "dictamesh_sp_1"' in texts
    assert 'ROLLBACK TO SAVEPOINT "dictamesh_sp_1"' in texts
    assert 'RELEASE SAVEPOINT "dictamesh_sp_2"' in texts


def test_transaction_executemany_and_copy_in(db: FakePostgreSQL):
    with db.transaction() as tx:
        assert tx.executemany("INSERT INTO t VALUES (%s)", [[1], [2]]).rows_affected == 0
        assert tx.copy_in(("s", "t"), ["a"], [(1,)]) == 1
    assert [s.operation for s in db.applied] == ["executemany", "executemany", "copy_in"]
    assert db.applied[-1].sql == 'COPY "s"."t" ("a") FROM STDIN'


def test_partial_fault_inside_a_transaction_aborts_it(db: FakePostgreSQL):
    db.fail_next("executemany", partial=1)
    with pytest.raises(ConnectorError), db.transaction() as tx:
        tx.executemany("INSERT INTO t VALUES (%s)", [[1], [2]])
    assert [s.operation for s in db.statements] == ["begin", "executemany", "rollback"]
    assert db.applied == []


def test_run_in_transaction_reruns_serialization_failures(db: FakePostgreSQL):
    db.add_error("UPDATE t SET a = 1", "40001", times=2)
    attempts = []

    def work(tx: FakeTransaction) -> str:
        attempts.append(1)
        tx.execute("UPDATE t SET a = 1")
        return "done"

    assert db.run_in_transaction(work) == "done"
    assert len(attempts) == 3
    assert [s.operation for s in db.statements].count("rollback") == 2
    assert len(db.applied) == 1
    db.fail_next("commit", code=ErrorCode.SERIALIZATION_FAILURE, times=5)
    with pytest.raises(ConnectorError) as info:
        db.run_in_transaction(work, retry=RetryPolicy(max_attempts=2))
    assert info.value.code is ErrorCode.SERIALIZATION_FAILURE and len(attempts) == 5
    db.faults.clear()
    db.add_error("UPDATE t SET a = 1", "23505")
    with pytest.raises(ConnectorError):
        db.run_in_transaction(work)  # not a conflict: at once
    assert len(attempts) == 6


def test_lost_connection_reads_retried_once_writes_never(db: FakePostgreSQL):
    db.fail_next("query", code=ErrorCode.CONNECTION_LOST)
    db.query("SELECT 1")
    assert db.faults.call_count("query") == 2
    db.fail_next("query", code=ErrorCode.CONNECTION_LOST, times=2)
    with pytest.raises(ConnectorError):
        db.query("SELECT 1")
    db.fail_next("execute", code=ErrorCode.CONNECTION_LOST, maybe_applied=True)
    with pytest.raises(ConnectorError) as info:
        db.execute("INSERT INTO t VALUES (1)")
    assert info.value.maybe_applied and db.faults.call_count("execute") == 1
    db.fail_next("query", code=ErrorCode.UNAVAILABLE)
    with pytest.raises(ConnectorError):
        db.query("SELECT 1")  # not a lost connection: not retried
    assert db.is_connected  # the pool heals itself: still connected


def test_faults_on_begin_commit_connect_and_ping():
    fake = FakePostgreSQL()
    fake.fail_next("connect", code=ErrorCode.AUTH_FAILED)
    with pytest.raises(ConnectorError) as info:
        fake.connect()
    assert info.value.code is ErrorCode.AUTH_FAILED and not fake.is_connected
    fake.connect()
    fake.ping()
    fake.fail_next("ping", code=ErrorCode.TIMEOUT)
    with pytest.raises(ConnectorTimeoutError):
        fake.ping()
    fake.fail_next("transaction", code=ErrorCode.CONNECTION_LOST)
    with fake.transaction() as tx:  # BEGIN on a dead connection: replaced once
        tx.query("SELECT 1")
    fake.fail_next("commit", code=ErrorCode.SERIALIZATION_FAILURE)
    with pytest.raises(ConnectorError), fake.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (0)")
    fake.fail_next("commit", code=ErrorCode.CONNECTION_LOST, maybe_applied=True)
    with pytest.raises(ConnectorError), fake.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1)")
    assert [s.sql for s in fake.applied] == ["INSERT INTO t VALUES (1)"]  # maybe: kept
    fake.disconnect()


def test_reset(db: FakePostgreSQL):
    db.add_result("SELECT 1", rows=[(1,)])
    db.query("SELECT 1")
    db.fail_next("query")
    db.reset()
    assert db.programs == [] and db.statements == [] and db.faults.pending == 0


def test_32_threads(db: FakePostgreSQL):
    db.add_result(SELECT, rows=lambda params: [{"id": params[0], "name": "x"}])
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def worker(n: int) -> None:
        barrier.wait()
        try:
            for i in range(25):
                assert db.query(SELECT, [n * 100 + i]).scalar() == n * 100 + i
                with db.transaction() as tx:
                    tx.execute("INSERT INTO t VALUES (%s)", [n])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(db.applied) == 800 and len({s.transaction for s in db.applied}) == 800
