"""What ``FakePostgreSQL`` records and answers from: ``Statement``, ``Program``, pure helpers.

No I/O and no lock here: the fake guards these objects with its own lock.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.postgresql.results import QueryResult
from dictamesh_connectors.postgresql.statements import timeout_ms

psycopg = require("psycopg", extra="postgresql", connector="postgresql")

__all__ = [
    "Program",
    "Statement",
    "check_timeout",
    "matcher",
    "normalise",
    "optional_int",
    "render_copy",
    "sql_text",
    "words",
]

R = TypeVar("R", bound=QueryResult)

WRITE_OPERATIONS = frozenset({"execute", "executemany", "copy_in"})
"""The operations whose statements count as writes (``applied``)."""

Rows = Sequence[Mapping[str, Any] | Sequence[Any]]
RowsFactory = Callable[[Any], Rows]
"""A callable computing the rows from the statement's parameters."""


@attrs.define(kw_only=True)
class Statement:
    """One statement the fake received.

    Attributes:
        sql: The statement text (``psycopg.sql`` objects rendered).
        params: Its parameters as given (a ``COPY``: the list of rows).
        operation: The method that sent it (``"query"``, ``"execute"``,
            ``"executemany"``, ``"copy_in"``, ``"copy_out"``, ``"stream"``)
            or the transaction control it is (``"begin"``, ``"commit"``,
            ``"rollback"``, ``"savepoint"``).
        transaction: The number of the transaction it ran in (``None``:
            its own, autocommit).
        rolled_back: A rollback (or a failure) undid it.
    """

    sql: str
    params: Any = None
    operation: str
    transaction: int | None = None
    rolled_back: bool = False

    @property
    def is_write(self) -> bool:
        """Whether it was sent by a writing method (``execute``, ``executemany``, ``copy_in``)."""
        return self.operation in WRITE_OPERATIONS


class Program:
    """A programmed answer: which statements it matches, and the result or error.

    Attributes:
        calls: How many statements it answered.
    """

    def __init__(
        self,
        matcher: str | re.Pattern[str],
        *,
        rows: Rows | RowsFactory | None,
        columns: Sequence[str] | None,
        rowcount: int | None,
        error: tuple[str, str, dict[str, Any]] | None,
        times: int | None,
    ) -> None:
        self._matcher = matcher if isinstance(matcher, re.Pattern) else normalise(matcher)
        self._rows = rows
        self._columns = list(columns) if columns is not None else None
        self._rowcount = rowcount
        self._error = error
        self._left = times  # guarded by the fake's lock
        self.calls = 0  # guarded by the fake's lock

    def _matches(self, text: str) -> bool:
        if isinstance(self._matcher, re.Pattern):
            return self._matcher.search(text) is not None
        return self._matcher == text

    def _result(self, cls: type[R], params: Any) -> R:
        """The result for one statement (a callable ``rows`` runs here, with no lock held)."""
        rows = self._rows(params) if callable(self._rows) else self._rows
        rows = list(rows or [])
        columns = self._columns
        if columns is None:
            first = rows[0] if rows else None
            columns = list(first.keys()) if isinstance(first, Mapping) else []
            if first is not None and not isinstance(first, Mapping):
                columns = [f"column{i + 1}" for i in range(len(first))]
        tuples = [
            tuple(row.get(name) for name in columns) if isinstance(row, Mapping) else tuple(row)
            for row in rows
        ]
        rowcount = self._rowcount if self._rowcount is not None else len(tuples)
        return cls(list(columns), tuples, rowcount)

    def __repr__(self) -> str:
        matcher = self._matcher.pattern if isinstance(self._matcher, re.Pattern) else self._matcher
        kind = "error" if self._error is not None else "result"
        return f"<Program {kind} {matcher!r} calls={self.calls}>"


def sql_text(sql: object) -> str:
    """The text of a statement: ``str``, ``bytes`` or a ``psycopg.sql`` object."""
    if isinstance(sql, str):
        return sql
    if isinstance(sql, bytes):
        return sql.decode("utf-8", "replace")
    if isinstance(sql, psycopg.sql.Composable):
        return str(sql.as_string(None))
    raise TypeError(f"sql must be str, bytes or a psycopg.sql object, got {type(sql).__name__}")


def normalise(text: str) -> str:
    """``text`` with runs of whitespace collapsed and a trailing ``;`` dropped."""
    return " ".join(text.split()).rstrip(";").rstrip()


def matcher(sql: object) -> str | re.Pattern[str]:
    """What a program matches statements with: a statement text or a compiled regex.

    Raises:
        TypeError: Anything else.
    """
    if isinstance(sql, re.Pattern):
        return sql
    if isinstance(sql, str):
        return sql
    raise TypeError(f"sql must be a str or a compiled regex, got {type(sql).__name__}")


def optional_int(name: str, value: object, *, minimum: int) -> int | None:
    """``value`` checked as ``None`` or an int of at least ``minimum``.

    Raises:
        InvalidConfigError: Below ``minimum``.
        TypeError: Not an int (or a bool).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < minimum:
        raise InvalidConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def check_timeout(timeout: float | None) -> None:
    """Refuse a bad per-statement ``timeout`` as the real connector does.

    Raises:
        InvalidConfigError: NaN, not above 0, or over 7 days.
        TypeError: Not a number.
    """
    if timeout is not None:
        timeout_ms(timeout)  # the real checks: InvalidConfigError / TypeError


def words(name: str) -> str:
    """``UniqueViolation`` -> ``unique violation`` (a default server message)."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def render_copy(result: QueryResult, fmt: str, header: bool) -> bytes:
    """The rows as ``COPY ... TO STDOUT`` writes them in ``csv`` or ``text`` format."""
    buffer = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(buffer, lineterminator="\n")
        if header:
            writer.writerow(result.columns)
        for row in result.tuples:
            writer.writerow(["" if value is None else _copy_value(value) for value in row])
    else:
        for row in result.tuples:
            fields = ["\\N" if value is None else _escape_text(_copy_value(value)) for value in row]
            buffer.write("\t".join(fields) + "\n")
    return buffer.getvalue().encode("utf-8")


def _copy_value(value: Any) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def _escape_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
