"""What the PostgreSQL connector hands back: ``QueryResult``, ``ExecResult``, ``RowStream``.

Plain values, detached from any connection (``RowStream`` excepted: it
holds one pooled connection while it is being iterated). Nothing here
performs I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from dictamesh_connectors._compat import require

if TYPE_CHECKING:
    import psycopg
else:
    psycopg = require("psycopg", extra="postgresql", connector="postgresql")

__all__ = ["ExecResult", "QueryResult", "RowStream", "result_of"]

R = TypeVar("R", bound="QueryResult")

_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK
# Above this many rows, column names are read at once and the cursor dropped
# (see QueryResult._from_cursor).
_LAZY_COLUMNS_MAX_ROWS = 100


class QueryResult:
    """The rows of a statement, fetched in full.

    Iterating yields each row as a dict (column name -> value); ``tuples``
    keeps the raw rows (and duplicate column names, which dicts cannot).
    Thread safety: a plain value, detached from any connection; read it from
    any thread (``rows`` is built lazily, at worst twice, never wrongly).

    Example::

        result = db.query("SELECT id, name FROM users ORDER BY id")
        result.columns        # ['id', 'name']
        result.first()        # {'id': 1, 'name': 'Ada'} or None
        for row in result:
            print(row["name"])

    Attributes:
        rowcount: What the server reported (rows returned or affected; -1
            when unknown).
    """

    __slots__ = ("_columns", "_cursor", "_dicts", "_tuples", "rowcount")

    def __init__(self, columns: list[str], tuples: list[tuple[Any, ...]], rowcount: int) -> None:
        self._columns: list[str] | None = columns
        self._cursor: psycopg.Cursor[Any] | None = None
        self._tuples = tuples
        self._dicts: list[dict[str, Any]] | None = None
        self.rowcount = rowcount

    @classmethod
    def _from_cursor(cls: type[R], cur: psycopg.Cursor[Any]) -> R:
        # Column names are read from the cursor on first use: many callers
        # only want scalar() or tuples, and this runs once per operation.
        result = cls([], cur.fetchall(), cur.rowcount)
        if len(result._tuples) > _LAZY_COLUMNS_MAX_ROWS:
            # Keeping the cursor would keep the raw result alive next to the rows.
            result._columns = [c.name for c in cur.description or ()]
        else:
            result._columns, result._cursor = None, cur
        return result

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        columns = self._columns
        if columns is None:
            cursor = self._cursor
            columns = self._columns = [c.name for c in (cursor and cursor.description) or ()]
        return columns

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict, column name -> value (built on first access)."""
        if self._dicts is None:
            columns = self.columns
            self._dicts = [dict(zip(columns, row, strict=False)) for row in self._tuples]
        return self._dicts

    @property
    def tuples(self) -> list[tuple[Any, ...]]:
        """Every row as a tuple, in column order."""
        return self._tuples

    def first(self) -> dict[str, Any] | None:
        """The first row as a dict, or ``None`` when there are no rows."""
        if not self._tuples:
            return None
        return dict(zip(self.columns, self._tuples[0], strict=False))

    def scalar(self) -> Any:
        """The first column of the first row, or ``None`` when there are no rows."""
        if not self._tuples or not self._tuples[0]:
            return None
        return self._tuples[0][0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self._tuples)

    def __reduce__(self) -> tuple[Any, ...]:
        # Plain data when pickled (the cursor behind lazy column names is not).
        return (type(self), (self.columns, self._tuples, self.rowcount))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} columns={self.columns!r} rows={len(self._tuples)}>"


class ExecResult(QueryResult):
    """The outcome of a write: ``rows_affected``, plus the rows of a ``RETURNING`` clause.

    Thread safety: a plain value, like ``QueryResult``.

    Example::

        result = db.execute("UPDATE users SET active = false WHERE id < %s RETURNING id", [9])
        print(result.rows_affected, [row["id"] for row in result])
    """

    __slots__ = ()

    @property
    def rows_affected(self) -> int:
        """Rows inserted, updated, deleted or copied (-1 when the server did not say)."""
        return self.rowcount

    def __repr__(self) -> str:
        return f"<ExecResult rows_affected={self.rowcount} returned={len(self._tuples)}>"


def result_of(cls: type[R], cur: psycopg.Cursor[Any]) -> R:
    """The ``cls`` result of the statement ``cur`` just ran (empty when it returned no rows)."""
    res = cur.pgresult
    if res is None or (not res.nfields and res.status != _TUPLES_OK):
        return cls([], [], cur.rowcount)
    return cls._from_cursor(cur)


class RowStream:
    """Rows of a server-side cursor, fetched ``batch_size`` at a time.

    Iterate it once; each row is a dict. The stream holds one pooled
    connection (and counts as an in-flight operation) from the first
    ``next()`` until it is exhausted or closed: use it as a context manager
    or call ``close()`` when stopping early. Not thread-safe: iterate it from
    one thread.

    Example::

        with db.stream("SELECT * FROM events", batch_size=5000) as rows:
            for row in rows:
                handle(row)

    Dropping the last reference to an unfinished stream (``del``, or a
    ``break`` out of ``for row in db.stream(...)``) also releases it at once:
    the generator behind it holds no reference back to the stream, so
    reference counting finalises it without waiting for the cycle collector.

    Attributes:
        columns: The column names, known once the first row was fetched.
    """

    __slots__ = ("_rows", "columns")

    def __init__(self, rows: Callable[[list[str]], Generator[dict[str, Any], None, None]]) -> None:
        # The generator fills this list in place: it must not reference the
        # stream itself (a cycle would keep an abandoned stream, and its
        # pooled connection, alive until the next garbage collection).
        self.columns: list[str] = []
        self._rows = rows(self.columns)

    def __iter__(self) -> RowStream:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._rows)

    def close(self) -> None:
        """Stop early: close the cursor, end its transaction, return the connection."""
        self._rows.close()

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
