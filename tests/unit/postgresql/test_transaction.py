"""Transaction on a fake connection: what it sends, and that it is dead once finished."""

import contextlib

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.postgresql import Transaction

TARGET = "app@db:5432"


class FakeConn:
    def __init__(self):
        self.sent = []

    def execute(self, statement, params=None):
        shown = statement.as_string(None) if hasattr(statement, "as_string") else statement
        self.sent.append(shown)

    def cursor(self):
        conn = self

        class Cursor:
            rowcount = 0

            def executemany(self, query, params_seq):
                for params in params_seq:
                    conn.sent.append((query, params))
                    self.rowcount += 1

        return Cursor()

    @contextlib.contextmanager
    def pipeline(self):
        self.sent.append("<pipeline>")
        yield
        self.sent.append("</pipeline>")


def test_every_method_of_a_finished_transaction_raises_transaction_failed():
    conn = FakeConn()
    tx = Transaction(conn, TARGET)
    assert tx.is_active and "active" in repr(tx)
    tx._finish()
    assert not tx.is_active and "finished" in repr(tx) and TARGET in repr(tx)
    calls = (
        lambda: tx.query("SELECT 1"),
        lambda: tx.execute("SELECT 1"),
        lambda: tx.executemany("SELECT %s", [[1]]),
        lambda: tx.copy_in("t", ["a"], []),
        lambda: tx.savepoint().__enter__(),
    )
    for call in calls:
        with pytest.raises(ConnectorError) as info:
            call()
        assert info.value.code is ErrorCode.TRANSACTION_FAILED
        assert "finished" in str(info.value) and TARGET in str(info.value)
    assert conn.sent == []


def test_savepoints_release_on_success_and_roll_back_on_error():
    conn = FakeConn()
    tx = Transaction(conn, TARGET)
    with tx.savepoint():
        conn.sent.append("work")
    with pytest.raises(ValueError), tx.savepoint():
        raise ValueError("inner failure")
    assert conn.sent == [
        'SAVEPOINT "dictamesh_sp_1"',
        "work",
        'RELEASE SAVEPOINT "dictamesh_sp_1"',
        'SAVEPOINT "dictamesh_sp_2"',
        'ROLLBACK TO SAVEPOINT "dictamesh_sp_2"',
        'RELEASE SAVEPOINT "dictamesh_sp_2"',
    ]


def test_executemany_is_pipelined_and_counts_every_row():
    conn = FakeConn()
    result = Transaction(conn, TARGET).executemany("INSERT %s", [[1], [2]])
    assert result.rows_affected == 2
    assert conn.sent == ["<pipeline>", ("INSERT %s", [1]), ("INSERT %s", [2]), "</pipeline>"]
