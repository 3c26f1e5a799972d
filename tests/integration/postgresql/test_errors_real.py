"""Every mapped SQLSTATE, produced for real by the server: code, transient flag and hint."""

import threading

import psycopg
import pytest

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    RetryHint,
)
from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector
from dictamesh_connectors.postgresql import checkout as pg_checkout

from .conftest import backend_pids, terminate, unique, wait_for

pytestmark = pytest.mark.integration


def check(err, code, transient, hint, sqlstate=None):
    assert err.code is code, err
    assert err.transient is transient, err
    assert err.retry_hint is hint, err
    if sqlstate:
        assert err.details["sqlstate"] == sqlstate
    assert err.connector == "postgresql"
    assert isinstance(err.__cause__, psycopg.Error)


def test_unique_violation(db, table):
    db.execute(f'CREATE TABLE "{table}" (email text CONSTRAINT "{table}_email_key" UNIQUE)')
    db.execute(f'INSERT INTO "{table}" VALUES (%s)', ["ada@example.org"])
    with pytest.raises(ConnectorError) as info:
        db.execute(f'INSERT INTO "{table}" VALUES (%s)', ["ada@example.org"])
    err = info.value
    check(err, ErrorCode.CONSTRAINT_VIOLATION, False, RetryHint.NONE, "23505")
    assert err.details["constraint"] == f"{table}_email_key" and err.details["table"] == table
    assert not err.maybe_applied
    assert "ada@example.org" not in str(err) and "ada@example.org" not in repr(err.details)
    assert str(err).startswith(f"postgresql: execute on {db.config.target}: duplicate key value")


def test_not_null_foreign_key_and_check_violations(db, table):
    parent = table + "_p"
    db.execute(f'CREATE TABLE "{parent}" (id int PRIMARY KEY)')
    try:
        db.execute(
            f'CREATE TABLE "{table}" (id int NOT NULL, p int REFERENCES "{parent}", '
            "n int CHECK (n > 0))"
        )
        for sql, params, sqlstate in [
            (f'INSERT INTO "{table}" (id) VALUES (%s)', [None], "23502"),
            (f'INSERT INTO "{table}" (id, p) VALUES (%s, %s)', [1, 99], "23503"),
            (f'INSERT INTO "{table}" (id, n) VALUES (%s, %s)', [1, -5], "23514"),
        ]:
            with pytest.raises(ConnectorError) as info:
                db.execute(sql, params)
            check(info.value, ErrorCode.CONSTRAINT_VIOLATION, False, RetryHint.NONE, sqlstate)
    finally:
        db.execute(f'DROP TABLE IF EXISTS "{table}"')
        db.execute(f'DROP TABLE "{parent}"')


def test_serialization_failure_from_two_concurrent_serializable_transactions(make_db, table):
    db = make_db(max_open_conns=2, min_open_conns=2)
    db.execute(f'CREATE TABLE "{table}" (class int, value int)')
    db.execute(f'INSERT INTO "{table}" VALUES (1, 10), (1, 20), (2, 100), (2, 200)')
    # The classic write-skew: each reads what the other writes.
    with (
        pytest.raises(ConnectorError) as info,
        db.transaction(isolation_level="serializable") as t1,
    ):
        s1 = t1.query(f'SELECT sum(value) FROM "{table}" WHERE class = 1').scalar()
        with db.transaction(isolation_level="serializable") as t2:
            s2 = t2.query(f'SELECT sum(value) FROM "{table}" WHERE class = 2').scalar()
            t1.execute(f'INSERT INTO "{table}" VALUES (2, %s)', [s1])
            t2.execute(f'INSERT INTO "{table}" VALUES (1, %s)', [s2])
        # t2 committed; t1's COMMIT must now fail.
    check(info.value, ErrorCode.SERIALIZATION_FAILURE, True, RetryHint.RETRY_TRANSACTION, "40001")
    assert not info.value.maybe_applied
    assert db.query(f'SELECT count(*) FROM "{table}"').scalar() == 5


def test_run_in_transaction_reruns_a_real_serialization_failure(make_db, table):
    db = make_db(max_open_conns=2, min_open_conns=2)
    db.execute(f'CREATE TABLE "{table}" (class int, value int)')
    db.execute(f'INSERT INTO "{table}" VALUES (1, 10), (2, 100)')
    attempts = []

    def body(tx):
        attempts.append(1)
        total = tx.query(f'SELECT sum(value) FROM "{table}" WHERE class = 1').scalar()
        if len(attempts) == 1:
            # A concurrent writer commits a conflicting change meanwhile.
            with db.transaction(isolation_level="serializable") as other:
                other.query(f'SELECT sum(value) FROM "{table}" WHERE class = 2').scalar()
                other.execute(f'INSERT INTO "{table}" VALUES (1, 1)')
        tx.execute(f'INSERT INTO "{table}" VALUES (2, %s)', [total])
        return total

    assert db.run_in_transaction(body) == 11  # the rerun saw the concurrent insert
    assert len(attempts) == 2


def test_deadlock(make_db, table):
    db = make_db(max_open_conns=2, min_open_conns=2)
    db.execute(f'CREATE TABLE "{table}" (id int PRIMARY KEY, v int)')
    db.execute(f'INSERT INTO "{table}" VALUES (1, 0), (2, 0)')
    barrier = threading.Barrier(2, timeout=30)
    errors = []

    def worker(first, second):
        try:
            with db.transaction() as tx:
                tx.execute("SET LOCAL deadlock_timeout = '100ms'")
                tx.execute(f'UPDATE "{table}" SET v = v + 1 WHERE id = %s', [first])
                barrier.wait()
                tx.execute(f'UPDATE "{table}" SET v = v + 1 WHERE id = %s', [second])
        except ConnectorError as err:
            errors.append(err)

    threads = [threading.Thread(target=worker, args=p) for p in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(errors) == 1, errors
    check(errors[0], ErrorCode.DEADLOCK, True, RetryHint.RETRY_TRANSACTION, "40P01")


def test_statement_timeout(make_db):
    db = make_db(statement_timeout=0.2)
    with pytest.raises(ConnectorTimeoutError) as info:
        db.query("SELECT pg_sleep(5)")
    check(info.value, ErrorCode.TIMEOUT, True, RetryHint.RETRY, "57014")
    with pytest.raises(ConnectorTimeoutError) as info:
        db.execute("SELECT pg_sleep(5)", timeout=0.1)
    assert not info.value.maybe_applied  # a cancelled statement was rolled back
    assert db.query("SELECT 1", timeout=1).scalar() == 1


def test_lock_timeout(make_db, table):
    db = make_db(max_open_conns=2, min_open_conns=2)
    db.execute(f'CREATE TABLE "{table}" (id int PRIMARY KEY)')
    db.execute(f'INSERT INTO "{table}" VALUES (1)')
    with db.transaction() as holder:
        holder.execute(f'SELECT * FROM "{table}" WHERE id = 1 FOR UPDATE')
        with pytest.raises(ConnectorError) as info, db.transaction() as waiter:
            waiter.execute("SET LOCAL lock_timeout = '100ms'")
            waiter.execute(f'UPDATE "{table}" SET id = 2 WHERE id = 1')
    check(info.value, ErrorCode.LOCK_TIMEOUT, True, RetryHint.RETRY, "55P03")


def test_failed_transaction_and_syntax_and_undefined_errors(db):
    with pytest.raises(ConnectorError) as info:
        db.query("SELEC 1")
    check(info.value, ErrorCode.INVALID_REQUEST, False, RetryHint.NONE, "42601")
    with pytest.raises(ConnectorError) as info:
        db.query("SELECT * FROM no_such_table_anywhere")
    check(info.value, ErrorCode.NOT_FOUND, False, RetryHint.NONE, "42P01")
    with pytest.raises(ConnectorError) as info:
        db.query("SELECT %s::int", ["not-a-number-4111111111111111"])
    check(info.value, ErrorCode.INVALID_INPUT, False, RetryHint.NONE, "22P02")
    assert "4111111111111111" not in str(info.value)
    with pytest.raises(ConnectorError) as info, db.transaction() as tx:
        with pytest.raises(ConnectorError):
            tx.query("SELECT 1/0")
        tx.query("SELECT 1")
    check(info.value, ErrorCode.TRANSACTION_FAILED, False, RetryHint.NONE, "25P02")


@pytest.mark.parametrize("health_check", ["auto", "always"])
def test_terminated_idle_connections_are_never_handed_out(make_db, admin, health_check):
    db = make_db(max_open_conns=4, min_open_conns=4, health_check=health_check)
    app = db.config.application_name
    assert wait_for(lambda: len(backend_pids(admin, app)) == 4)
    before = set(backend_pids(admin, app))
    assert terminate(admin, app) == 4
    # Once the server processes are gone, each has sent its FATAL and closed its socket.
    assert wait_for(lambda: not before & set(backend_pids(admin, app)))
    # Writes are never retried, so each one succeeding proves the pool handed
    # out a healthy connection, not one of the four terminated ones.
    for i in range(8):
        assert db.execute("SELECT %s", [i]).rows == [{"?column?": i}]


def test_terminated_connection_without_health_check(make_db, admin):
    db = make_db(max_open_conns=1, min_open_conns=1, health_check="off")
    app = db.config.application_name
    assert wait_for(lambda: len(backend_pids(admin, app)) == 1)
    terminate(admin, app)
    assert wait_for(lambda: backend_pids(admin, app) == [])
    with pytest.raises(ConnectorError) as info:
        db.execute("SELECT 1")
    err = info.value
    # The server told the idle session why it ended: 57P01, or the bare EOF.
    assert err.code in (ErrorCode.UNAVAILABLE, ErrorCode.CONNECTION_LOST), err
    assert err.transient and err.retry_hint is RetryHint.RECONNECT and err.maybe_applied
    # The pool replaced the broken connection by itself: no connect() needed.
    assert db.execute("SELECT 2").rows_affected == 1
    # A read on a killed connection is retried once, transparently.
    assert wait_for(lambda: len(backend_pids(admin, app)) == 1)
    terminate(admin, app)
    assert wait_for(lambda: backend_pids(admin, app) == [])
    assert db.query("SELECT 3").scalar() == 3


def test_a_write_that_skipped_the_checkout_check_fails_loudly_never_silently(
    make_db, admin, table, monkeypatch
):
    # health_check="auto" skips the checkout read for a connection given back
    # less than _RECENTLY_USED seconds ago. Stretch that window so the skip is
    # certain: a write then runs on a connection the server has already ended.
    monkeypatch.setattr(pg_checkout, "_RECENTLY_USED", 3600.0)
    monkeypatch.setattr(pg_checkout, "_SUSPICIOUS_FOR", 3600.0)
    db = make_db(max_open_conns=1, min_open_conns=1)
    app = db.config.application_name
    db.execute(f'CREATE TABLE "{table}" (id int)')
    terminate(admin, app)
    assert wait_for(lambda: backend_pids(admin, app) == [])
    with pytest.raises(ConnectorError) as info:
        db.execute(f'INSERT INTO "{table}" VALUES (%s)', [1])
    err = info.value
    # Not lost, not silently dropped: a transient error whose outcome is unknown.
    assert err.code in (ErrorCode.UNAVAILABLE, ErrorCode.CONNECTION_LOST), err
    assert err.transient and err.retry_hint is RetryHint.RECONNECT and err.maybe_applied
    # Once a dead connection was seen, every checkout is checked again: a
    # second kill is caught by the check, and the write (never retried) succeeds.
    assert wait_for(lambda: len(backend_pids(admin, app)) == 1)
    terminate(admin, app)
    assert wait_for(lambda: backend_pids(admin, app) == [])
    assert db.execute(f'INSERT INTO "{table}" VALUES (%s)', [2]).rows_affected == 1
    assert admin.execute(f'SELECT id FROM "{table}"').fetchall() == [(2,)]


def test_connection_killed_during_a_query(make_db, admin):
    db = make_db(max_open_conns=2, min_open_conns=2)
    app = db.config.application_name
    errors = []
    started = threading.Event()

    def long_write():
        started.set()
        try:
            db.execute("SELECT pg_sleep(30)")
        except ConnectorError as err:
            errors.append(err)

    t = threading.Thread(target=long_write)
    t.start()
    started.wait(5)
    assert wait_for(
        lambda: (
            admin.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND state = 'active'",
                [app],
            ).fetchone()[0]
            == 1
        )
    )
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = %s AND state = 'active'",
        [app],
    )
    t.join(30)
    assert len(errors) == 1
    check(errors[0], ErrorCode.UNAVAILABLE, True, RetryHint.RECONNECT, "57P01")
    assert errors[0].maybe_applied  # the write's outcome is unknown
    assert db.query("SELECT 1").scalar() == 1


def test_connect_errors(postgres_dsn):
    base = PostgreSQLConfig.from_url(postgres_dsn, application_name=unique("dmtest"))
    cases = [
        (base.evolve(password="wrong-password"), ErrorCode.AUTH_FAILED, False, AuthenticationError),
        (base.evolve(database=unique("nodb")), ErrorCode.NOT_FOUND, False, ConnectorError),
        (base.evolve(port=1, connect_timeout=2), ErrorCode.CONNECTION_FAILED, True, ConnectorError),
    ]
    for config, code, transient, cls in cases:
        db = PostgreSQLConnector(config)
        with pytest.raises(cls) as info:
            db.connect()
        assert info.value.code is code and info.value.transient is transient, info.value
        assert info.value.retry_hint is (RetryHint.RETRY if transient else RetryHint.NONE)
        assert not db.is_connected


def test_too_many_connections_for_a_role(postgres_dsn, admin, make_db):
    role, password = unique("dmrole"), "role-pw-123"
    admin.execute(
        psycopg.sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 1 PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(password)
        )
    )
    try:
        first = make_db(username=role, password=password, min_open_conns=1, max_open_conns=1)
        assert first.query("SELECT current_user").scalar() == role
        second = make_db(connect=False, username=role, password=password)
        with pytest.raises(ConnectorError) as info:
            second.connect()
        assert info.value.code is ErrorCode.RESOURCE_EXHAUSTED and info.value.transient
        first.disconnect()
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
        )
        wait_for(
            lambda: (
                admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [role]
                ).fetchone()[0]
                == 0
            )
        )
        admin.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))


def test_pool_exhausted_is_a_transient_timeout(make_db):
    db = make_db(max_open_conns=1, min_open_conns=1, pool_timeout=0.3)
    with db.transaction() as tx:  # holds the only connection
        tx.query("SELECT 1")
        with pytest.raises(ConnectorTimeoutError) as info:
            db.execute("INSERT INTO nowhere VALUES (1)")
    err = info.value
    assert err.code is ErrorCode.TIMEOUT and err.transient and err.retry_hint is RetryHint.RETRY
    assert err.details["pool"] == "timeout"
    assert not err.maybe_applied  # nothing was sent
    assert db.query("SELECT 1").scalar() == 1  # the connection came back
