"""postgresql/session.py on a fake connection: the statement_timeout round trips, COPY, rollback."""

import io

import psycopg
import pytest

from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.postgresql.session import (
    copy_rows,
    copy_to,
    execute,
    rollback_quietly,
)
from dictamesh_connectors.postgresql.statements import GET_AND_SET_TIMEOUT, SET_TIMEOUT

IDLE = psycopg.pq.TransactionStatus.IDLE
INERROR = psycopg.pq.TransactionStatus.INERROR


class Result:
    def __init__(self, row):
        self.row = row

    def fetchone(self):
        return self.row


class FakeCopy:
    def __init__(self, cursor, chunks):
        self.cursor, self.chunks = cursor, chunks

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write_row(self, row):
        self.cursor.copied.append(row)
        self.cursor.rowcount += 1

    def __iter__(self):
        for chunk in self.chunks:
            self.cursor.rowcount += 1
            yield memoryview(chunk)


class FakeCursor:
    def __init__(self, conn):
        self.conn = conn
        self.rowcount = 0
        self.copied = []

    def execute(self, query, params):
        self.conn.log.append((query, params))
        if self.conn.fail_statement:
            self.conn.pgconn.transaction_status = self.conn.status_after_failure
            raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")

    def copy(self, statement, params=None):
        self.conn.log.append((statement, params))
        return FakeCopy(self, self.conn.chunks)


class PGconn:
    transaction_status = IDLE
    socket = -1  # no socket: the client-side deadline has nothing to shut down


class FakeConn:
    def __init__(self, *, fail_statement=False, fail_restore=False, status_after_failure=IDLE):
        self.log = []
        self.pgconn = PGconn()
        self.fail_statement = fail_statement
        self.fail_restore = fail_restore
        self.status_after_failure = status_after_failure
        self.closed = False
        self.chunks = [b"1,a\n", b"2,b\n"]

    def cursor(self):
        return FakeCursor(self)

    def execute(self, query, params=None):
        self.log.append((query, params))
        if query == SET_TIMEOUT and self.fail_restore:
            raise psycopg.OperationalError("connection is closed")
        if query == "ROLLBACK" and self.fail_restore:
            raise psycopg.OperationalError("connection is closed")
        return Result(("300s",))

    def close(self):
        self.closed = True


def test_without_a_timeout_a_statement_is_one_round_trip():
    conn = FakeConn()
    execute(conn, "SELECT %s", [1], None, local=False)
    assert conn.log == [("SELECT %s", [1])]


@pytest.mark.parametrize("local", [False, True])
def test_a_timeout_is_set_for_the_statement_and_restored_after_it(local):
    conn = FakeConn()
    execute(conn, "SELECT 1", None, 1.5, local=local)
    assert conn.log == [
        (GET_AND_SET_TIMEOUT, ("1500", local)),
        ("SELECT 1", None),
        (SET_TIMEOUT, ("300s", local)),
    ]
    assert not conn.closed


def test_the_timeout_is_restored_after_a_failed_statement_too():
    conn = FakeConn(fail_statement=True)
    with pytest.raises(psycopg.errors.QueryCanceled):
        execute(conn, "SELECT pg_sleep(9)", None, 0.1, local=False)
    assert conn.log[-1] == (SET_TIMEOUT, ("300s", False))


def test_an_aborted_transaction_rolls_the_setting_back_itself():
    conn = FakeConn(fail_statement=True, status_after_failure=INERROR)
    with pytest.raises(psycopg.errors.QueryCanceled):
        execute(conn, "SELECT pg_sleep(9)", None, 0.1, local=True)
    assert [q for q, _ in conn.log] == [GET_AND_SET_TIMEOUT, "SELECT pg_sleep(9)"]


def test_a_connection_whose_timeout_cannot_be_restored_is_closed():
    conn = FakeConn(fail_restore=True)
    execute(conn, "SELECT 1", None, 2, local=False)
    assert conn.closed


def test_a_bad_timeout_is_rejected_before_any_round_trip():
    conn = FakeConn()
    with pytest.raises(InvalidConfigError):
        execute(conn, "SELECT 1", None, -1, local=False)
    assert conn.log == []


def test_copy_rows_and_copy_to():
    conn = FakeConn()
    cur = conn.cursor()
    assert copy_rows(cur, "COPY t FROM STDIN", iter([(1,), (2,), (3,)])) == 3
    assert cur.copied == [(1,), (2,), (3,)]
    out, written = io.BytesIO(), [0]
    assert copy_to(conn.cursor(), "COPY (SELECT 1) TO STDOUT", None, out, written) == 2
    assert out.getvalue() == b"1,a\n2,b\n" and written == [8]


def test_rollback_quietly_swallows_a_failed_rollback():
    conn = FakeConn(fail_restore=True)
    rollback_quietly(conn)
    assert conn.log == [("ROLLBACK", None)]


def _server(replies):
    """A psycopg-style generator: yields a wait state (1: read) until a reply arrives."""
    got = []
    for _ in range(replies):
        while not (yield 1):
            pass
        got.append("reply")
    return got


def _drive(gen, readiness, clock):
    """Run ``gen`` as psycopg's wait() does, feeding ``readiness`` (and moving ``clock``)."""
    next(gen)
    for ready, elapsed in readiness:
        clock.now += elapsed
        try:
            gen.send(ready)
        except StopIteration as stop:
            return stop.value
    raise AssertionError("the generator did not finish")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_silent_socket_fails_the_wait_after_the_client_deadline(monkeypatch):
    from dictamesh_connectors.postgresql import session

    clock = Clock()
    monkeypatch.setattr(session, "monotonic", clock)
    gen = session._watched(_server(1), lambda: 1.0)  # deadline: 1 + 1 s
    next(gen)
    clock.now += 1.9
    gen.send(0)  # silent, 1.9 s: still waiting
    clock.now += 0.2
    with pytest.raises(session.StatementDeadlineExceeded, match="within 2 s"):
        gen.send(0)


def test_progress_restarts_the_client_deadline(monkeypatch):
    """A long pipeline or COPY that keeps the socket busy is never cut."""
    from dictamesh_connectors.postgresql import session

    clock = Clock()
    monkeypatch.setattr(session, "monotonic", clock)
    # ten replies, each after 1.5 s of silence: 15 s in all, past the 2 s deadline
    readiness = [(0, 1.5), (1, 0.0)] * 10
    assert _drive(session._watched(_server(10), lambda: 1.0), readiness, clock) == ["reply"] * 10


def test_the_deadline_block_sets_and_restores_a_connections_limit():
    from dictamesh_connectors.postgresql.session import connection_class, deadline

    cls = connection_class(5.0)
    conn = cls.__new__(cls)  # no server: only the attribute is looked at
    assert conn._dictamesh_limit is None and cls.statement_limit == 5.0
    with deadline(conn, 1.0):
        assert conn._dictamesh_limit == 1.0
        with deadline(conn, 2.0):
            assert conn._dictamesh_limit == 2.0
        assert conn._dictamesh_limit == 1.0
    assert conn._dictamesh_limit is None
