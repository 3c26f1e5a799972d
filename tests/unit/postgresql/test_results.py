"""QueryResult, ExecResult, result_of and RowStream: plain values, no server."""

import pickle

import pytest

from dictamesh_connectors.postgresql import ExecResult, QueryResult, RowStream
from dictamesh_connectors.postgresql.results import _LAZY_COLUMNS_MAX_ROWS, result_of


def test_query_result_value_semantics():
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


class Column:
    def __init__(self, name):
        self.name = name


class PGresult:
    def __init__(self, nfields, status):
        self.nfields, self.status = nfields, status


class FakeCursor:
    """What result_of reads from a psycopg cursor."""

    def __init__(self, columns, rows, *, pgresult="rows"):
        import psycopg

        self.rowcount = len(rows)
        self._rows = rows
        self.description = [Column(c) for c in columns] or None
        if pgresult == "rows":
            self.pgresult = PGresult(len(columns), psycopg.pq.ExecStatus.TUPLES_OK)
        elif pgresult == "command":
            self.pgresult = PGresult(0, psycopg.pq.ExecStatus.COMMAND_OK)
        else:
            self.pgresult = None
        self.fetches = 0

    def fetchall(self):
        self.fetches += 1
        return list(self._rows)


def test_result_of_a_statement_without_rows_fetches_nothing():
    for kind in ("command", None):
        cur = FakeCursor([], [], pgresult=kind)
        cur.rowcount = 4
        result = result_of(ExecResult, cur)
        assert type(result) is ExecResult and result.rows_affected == 4
        assert result.rows == [] and result.columns == [] and cur.fetches == 0


def test_result_of_reads_column_names_lazily_for_small_results_only():
    small = FakeCursor(["id", "name"], [(1, "Ada")])
    result = result_of(QueryResult, small)
    assert result._cursor is small  # names not read yet
    assert result.first() == {"id": 1, "name": "Ada"} and result.columns == ["id", "name"]
    rows = [(i,) for i in range(_LAZY_COLUMNS_MAX_ROWS + 1)]
    big = result_of(QueryResult, FakeCursor(["n"], rows))
    assert big._cursor is None and big.columns == ["n"] and len(big) == len(rows)
    # Pickled, a lazy result is plain data (the cursor does not travel).
    copy = pickle.loads(pickle.dumps(result))
    assert copy._cursor is None and copy.rows == result.rows


def test_row_stream_fills_columns_and_closes_its_generator():
    closed = []

    def rows(columns):
        columns[:] = ["n"]
        try:
            yield {"n": 1}
            yield {"n": 2}
        finally:
            closed.append(True)

    with RowStream(rows) as stream:
        assert iter(stream) is stream
        assert next(stream) == {"n": 1} and stream.columns == ["n"]
    assert closed == [True]
    with pytest.raises(StopIteration):
        next(stream)


def test_an_abandoned_row_stream_is_released_without_the_cycle_collector():
    import gc

    closed = []

    def rows(columns):
        try:
            yield {}
        finally:
            closed.append(True)

    gc.disable()
    try:
        stream = RowStream(rows)
        next(stream)
        del stream
        assert closed == [True]
    finally:
        gc.enable()
