"""Checkout: the checkout health check and the state it keeps, on fake connections."""

from pathlib import Path

import psycopg
import pytest

from dictamesh_connectors.postgresql import PostgreSQLConfig
from dictamesh_connectors.postgresql import checkout as module
from dictamesh_connectors.postgresql.checkout import Checkout


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
        self.handlers = []

    def close(self):
        self.closed = True

    def add_notice_handler(self, handler):
        self.handlers.append(handler)


class FakePool:
    def __init__(self, conns):
        self.idle = list(conns)
        self.returned = []

    def getconn(self, timeout=None):
        return self.idle.pop(0)

    def putconn(self, conn):
        self.returned.append(conn)


class Diagnostic:
    def __init__(self, severity, sqlstate):
        self.severity_nonlocalized, self.sqlstate = severity, sqlstate


def test_checkout_discards_dead_connections_without_sleeping():
    checkout = Checkout("auto", max_open_conns=4)
    dead1, dead2, good = FakeConn(dead=True), FakeConn(dead=True), FakeConn()
    pool = FakePool([dead1, dead2, good])
    assert checkout.getconn(pool) is good
    assert pool.returned == [dead1, dead2] and dead1.closed and dead2.closed
    assert good.pgconn.reads == 1


def test_checkout_gives_up_checking_after_every_pooled_connection_was_tried():
    checkout = Checkout("auto", max_open_conns=1)
    conns = [FakeConn(dead=True) for _ in range(3)]
    pool = FakePool(conns)
    # Two checks (max_open_conns + 1), then the pool's next (fresh) connection as is.
    assert checkout.getconn(pool) is conns[2] and conns[2].pgconn.reads == 0


def test_checkout_skips_the_read_for_a_connection_used_a_moment_ago(monkeypatch):
    checkout = Checkout("auto", max_open_conns=10)
    conn = FakeConn()
    pool = FakePool([])
    checkout.putconn(pool, conn)  # stamps the release time
    pool.idle.append(pool.returned.pop())
    assert checkout.getconn(pool) is conn and conn.pgconn.reads == 0
    # Once a dead connection has been seen, every checkout is checked again.
    checkout.note_lost()
    pool.idle.append(conn)
    assert checkout.getconn(pool) is conn and conn.pgconn.reads == 1
    # An old release time is checked too.
    checkout._suspicious_until = 0.0
    monkeypatch.setattr(module, "_RECENTLY_USED", 0.0)
    pool.idle.append(conn)
    assert checkout.getconn(pool) is conn and conn.pgconn.reads == 2


def test_health_check_off_never_reads_nor_watches():
    checkout = Checkout("off", max_open_conns=10)
    conn = FakeConn(dead=True)
    assert checkout.getconn(FakePool([conn])) is conn and conn.pgconn.reads == 0
    assert checkout.configure is None


def test_health_check_always_pings(monkeypatch):
    pings = []
    monkeypatch.setattr(
        module.psycopg_pool.ConnectionPool, "check_connection", staticmethod(pings.append)
    )
    checkout = Checkout("always", max_open_conns=10)
    conn = FakeConn()
    assert checkout.healthy(conn) and pings == [conn] and conn.pgconn.reads == 0


@pytest.mark.parametrize(
    "severity, sqlstate, ended",
    [
        ("FATAL", "57P01", True),
        ("PANIC", None, True),
        ("WARNING", "57P02", True),  # crash of another backend (PostgreSQL 14+)
        ("FATAL", "XX000", True),
        ("WARNING", "01000", False),
        ("NOTICE", "00000", False),
    ],
)
def test_watched_connections_whose_session_ended_are_unhealthy(severity, sqlstate, ended):
    checkout = Checkout("auto", max_open_conns=10)
    conn = FakeConn()
    assert checkout.configure == checkout.watch
    checkout.watch(conn)
    assert checkout.healthy(conn)
    (handler,) = conn.handlers
    handler(Diagnostic(severity, sqlstate))
    assert checkout.healthy(conn) is not ended


def test_the_notice_handler_holds_the_connection_weakly():
    import gc

    checkout = Checkout("auto", max_open_conns=10)
    conn = FakeConn()
    checkout.watch(conn)
    (handler,) = conn.handlers
    del conn
    gc.collect()
    handler(Diagnostic("FATAL", "57P01"))  # the connection is gone: nothing to mark
    assert len(checkout._ended) == 0


def test_a_connection_left_in_a_transaction_or_bad_is_unhealthy():
    checkout = Checkout("auto", max_open_conns=10)
    busy = FakeConn()
    busy.pgconn.transaction_status = 2  # INTRANS
    bad = FakeConn()
    bad.pgconn.status = 1  # BAD
    assert not checkout.healthy(busy) and not checkout.healthy(bad)


def test_reset_forgets_what_the_parent_process_saw():
    checkout = Checkout("auto", max_open_conns=10)
    conn = FakeConn()
    checkout.watch(conn)
    conn.handlers[0](Diagnostic("FATAL", "57P01"))
    checkout.note_lost()
    checkout.reset()
    assert checkout._suspicious_until == 0.0 and len(checkout._ended) == 0


def test_the_documented_health_check_windows_are_the_real_ones():
    docs = (Path(__file__).resolve().parents[3] / "docs" / "postgresql.md").read_text()
    docstring = " ".join(PostgreSQLConfig.__doc__.split())
    recently = f"{round(module._RECENTLY_USED * 1000)} ms"
    assert module._SUSPICIOUS_FOR == 1.0  # "for a second" in both texts
    assert f"less than {recently} earlier" in " ".join(docs.split())
    assert f"than {recently} earlier" in docstring and "for a second" in docstring
    assert "during the second after any connection was found dead" in " ".join(docs.split())
