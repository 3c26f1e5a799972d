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


# DeadlineConnection.wait() on a real socket (a socketpair), no server: the
# fast path (psycopg's own C wait, bounded) and the watch it falls back to.
class SocketPG:
    """What psycopg's ``Connection.wait`` reads of a pgconn: the socket; ``finish`` is recorded."""

    transaction_status = IDLE

    def __init__(self, fileno):
        self.socket = fileno
        self.finished = False

    def finish(self):
        self.finished = True


@pytest.fixture
def wired(monkeypatch):
    """``(conn, peer, watched)``: a deadline connection (limit 5 s) on one end of a
    socketpair, the other end, and the ``resumed`` flag of each ``_watched`` entered."""
    import socket

    from dictamesh_connectors.postgresql import session

    ours, peer = socket.socketpair()
    cls = session.connection_class(5.0)
    conn = cls.__new__(cls)  # no server: wait() only reads pgconn.socket
    conn.pgconn = SocketPG(ours.fileno())
    watched = []
    real = session._watched

    def spy(gen, limit, *, resumed=False):
        watched.append(resumed)
        return real(gen, limit, resumed=resumed)

    monkeypatch.setattr(session, "_watched", spy)
    yield conn, peer, watched
    del conn.pgconn  # psycopg's __del__ looks no further than a missing pgconn
    ours.close()
    peer.close()


def _reads(sock, count):
    """A psycopg-style generator: reads ``count`` bytes from ``sock``, yielding 1 (read) to wait."""
    got = b""
    while len(got) < count:
        ready = yield 1
        if ready:
            got += sock.recv(count - len(got))
    return got


def _own_socket(conn):
    """A socket object on (a dup of) the connection's end, for the test generator to read."""
    import os
    import socket

    return socket.socket(fileno=os.dup(conn.pgconn.socket))


def test_the_fast_path_is_there_on_this_psycopg():
    """psycopg 3.3.9 has the bounded wait the fast path runs on: losing it is a regression."""
    from dictamesh_connectors.postgresql import session

    version = tuple(int(part) for part in psycopg.__version__.split(".")[:3] if part.isdigit())
    if version >= (3, 3, 9):
        assert session._BOUNDED_WAIT


def test_a_round_trip_that_answers_at_once_never_enters_the_watch(wired):
    """The common case runs in psycopg's C wait alone: no Python generator per socket step."""
    from dictamesh_connectors.postgresql import session

    conn, peer, watched = wired
    sock = _own_socket(conn)
    for _ in range(3):
        peer.sendall(b"pong")
        assert conn.wait(_reads(sock, 4)) == b"pong"
    sock.close()
    assert watched == ([] if session._BOUNDED_WAIT else [False] * 3)


def test_a_slow_round_trip_is_resumed_under_the_watch_and_answers(wired):
    """Past UNWATCHED_WAIT the suspended generator is resumed by the watch, state intact."""
    import threading

    from dictamesh_connectors.postgresql import session

    conn, peer, watched = wired
    sock = _own_socket(conn)
    peer.sendall(b"p")  # one part now, the rest after the fast path has given up
    timer = threading.Timer(3 * session.UNWATCHED_WAIT, peer.sendall, [b"ong"])
    timer.start()
    try:
        assert conn.wait(_reads(sock, 4)) == b"pong"
    finally:
        timer.join()
        sock.close()
    assert watched == ([True] if session._BOUNDED_WAIT else [False])
    assert not conn.pgconn.finished


def test_a_silent_socket_ends_the_wait_at_the_deadline_and_closes(wired, monkeypatch):
    """The full path: psycopg's wait gives up, the watch counts the silence, the deadline passes."""
    from dictamesh_connectors.postgresql import session

    conn, _peer, watched = wired
    monkeypatch.setattr(session, "client_deadline", lambda limit: 0.3)
    sock = _own_socket(conn)
    with pytest.raises(session.StatementDeadlineExceeded, match=r"within 0\.3 s"):
        conn.wait(_reads(sock, 4))
    sock.close()
    assert conn.pgconn.finished  # the connection is unusable: closed
    assert watched == ([True] if session._BOUNDED_WAIT else [False])


def test_the_callers_own_timeout_stays_psycopgs(wired):
    """psycopg's own ``timeout`` (e.g. ``notifies``) still ends the wait with its _WaitTimeout."""
    from dictamesh_connectors.postgresql import session

    if not session._BOUNDED_WAIT:
        return  # psycopg 3.2 has no such timeout
    conn, _peer, watched = wired
    sock = _own_socket(conn)
    for timeout in (session.UNWATCHED_WAIT / 2, 3 * session.UNWATCHED_WAIT):
        with pytest.raises(psycopg.errors._WaitTimeout):
            conn.wait(_reads(sock, 4), timeout=timeout)
    sock.close()
    assert watched == [True]  # the short one never left psycopg's wait
    assert not conn.pgconn.finished


def test_no_limit_no_watch(wired):
    conn, peer, watched = wired
    conn._dictamesh_limit = 0.0
    sock = _own_socket(conn)
    peer.sendall(b"pong")
    assert conn.wait(_reads(sock, 4)) == b"pong"
    sock.close()
    assert watched == []
