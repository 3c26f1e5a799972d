"""The SQL text the PostgreSQL connector sends on its own: pure functions, no I/O.

``BEGIN`` with its options, ``COPY`` in and out, savepoints, and the
``statement_timeout`` round trips. Every user-supplied name is quoted with
``psycopg.sql.Identifier``; every bad argument raises ``InvalidConfigError``
before anything reaches the server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import require
from dictamesh_connectors._convert import check_timeout
from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.postgresql.query_builder import Table, identifier

if TYPE_CHECKING:
    from psycopg import sql
else:
    sql = require("psycopg.sql", extra="postgresql", connector="postgresql")

__all__ = [
    "GET_AND_SET_TIMEOUT",
    "SET_TIMEOUT",
    "SQL",
    "Params",
    "as_composable",
    "begin_statement",
    "copy_in_statement",
    "copy_out_statement",
    "operation_name",
    "savepoint_statements",
    "timeout_ms",
]

SQL = str | bytes | sql.SQL | sql.Composed
"""A statement: a string with ``%s``/``%(name)s`` placeholders, or ``psycopg.sql`` objects."""
Params = Sequence[Any] | Mapping[str, Any] | None
"""Statement parameters: a sequence for ``%s``, a mapping for ``%(name)s``."""

GET_AND_SET_TIMEOUT = (
    "SELECT current_setting('statement_timeout'), set_config('statement_timeout', %s, %s)"
)
"""Read the current ``statement_timeout`` and set a new one (params: ms, is_local)."""
SET_TIMEOUT = "SELECT set_config('statement_timeout', %s, %s)"
"""Set ``statement_timeout`` back (params: value, is_local)."""

ISOLATION_LEVELS = frozenset(
    {"READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"}
)
COPY_FORMATS = frozenset({"text", "csv", "binary"})


# The statements whose first keyword names the operation (db.operation.name
# of OpenTelemetry's conventions). A closed set: nothing a caller wrote
# other than one of these words can come out of ``operation_name``.
_OPERATIONS = frozenset(
    {
        "ALTER", "ANALYZE", "BEGIN", "CALL", "CLUSTER", "COMMENT", "COMMIT", "COPY", "CREATE",
        "DEALLOCATE", "DECLARE", "DELETE", "DISCARD", "DO", "DROP", "EXECUTE", "EXPLAIN",
        "FETCH", "GRANT", "IMPORT", "INSERT", "LISTEN", "LOCK", "MERGE", "MOVE", "NOTIFY",
        "PREPARE", "REFRESH", "REINDEX", "RESET", "REVOKE", "ROLLBACK", "SAVEPOINT", "SELECT",
        "SET", "SHOW", "TABLE", "TRUNCATE", "UNLISTEN", "UPDATE", "VACUUM", "VALUES",
    }
)  # fmt: skip
_FIRST_WORD = re.compile(
    r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*([A-Za-z]+)(?![A-Za-z0-9_$])", re.DOTALL
)


def operation_name(statement: object) -> str | None:
    """The SQL verb of ``statement`` (``"SELECT"``, ``"INSERT"``...), or ``None``.

    ``None`` unless the text is one statement (no ``;`` but a final one: the
    conventions say not to name an operation from a text that may hold
    several) and starts, after comments, with a keyword of a closed set;
    ``WITH ...`` and ``psycopg.sql`` objects give ``None`` (no parsing).
    Only the keyword is returned, never any other part of the text.
    """
    if isinstance(statement, bytes):
        statement = statement.decode("utf-8", "replace")
    if not isinstance(statement, str):
        return None
    text = statement.rstrip().rstrip(";")
    if ";" in text:
        return None
    match = _FIRST_WORD.match(text)
    verb = match.group(1).upper() if match else None
    return verb if verb in _OPERATIONS else None


def timeout_ms(timeout: float) -> str:
    """``timeout`` seconds as whole milliseconds (at least 1), for ``statement_timeout``.

    ``inf`` means no limit for this statement (``"0"``).

    Raises:
        InvalidConfigError: NaN, not above 0, or over 7 days.
        TypeError: Not a number.
    """
    seconds = check_timeout(timeout, positive=True)
    if seconds is None:
        return "0"
    return str(max(1, math.ceil(seconds * 1000)))


def begin_statement(isolation_level: str | None, read_only: bool, deferrable: bool) -> str:
    """``BEGIN [ISOLATION LEVEL ...] [READ ONLY] [DEFERRABLE]``.

    ``isolation_level`` is a name in any case, with spaces or underscores,
    or a ``psycopg.IsolationLevel``.

    Raises:
        InvalidConfigError: An unknown isolation level.
    """
    parts = ["BEGIN"]
    if isolation_level is not None:
        name = getattr(isolation_level, "name", isolation_level)
        key = str(name).replace("_", " ").strip().upper()
        if key not in ISOLATION_LEVELS:
            raise InvalidConfigError(
                f"isolation_level must be one of {', '.join(sorted(ISOLATION_LEVELS))}, "
                f"got {isolation_level!r:.40}"
            )
        parts.append("ISOLATION LEVEL " + key)
    if read_only:
        parts.append("READ ONLY")
    if deferrable:
        parts.append("DEFERRABLE")
    return " ".join(parts)


def savepoint_statements(number: int) -> tuple[sql.Composed, sql.Composed, sql.Composed]:
    """The ``SAVEPOINT``, ``ROLLBACK TO`` and ``RELEASE`` statements of savepoint ``number``.

    The name is ``dictamesh_sp_<number>``, quoted as an identifier.
    """
    name = sql.Identifier(f"dictamesh_sp_{number}")
    return (
        sql.SQL("SAVEPOINT {}").format(name),
        sql.SQL("ROLLBACK TO SAVEPOINT {}").format(name),
        sql.SQL("RELEASE SAVEPOINT {}").format(name),
    )


def as_composable(query: SQL) -> sql.Composable:
    """``query`` as a ``psycopg.sql`` object, to embed in a larger statement."""
    if isinstance(query, sql.Composable):
        return query
    if isinstance(query, bytes):
        query = query.decode()
    return sql.SQL(query)


def copy_in_statement(table: Table, columns: Sequence[str]) -> sql.Composed:
    """``COPY table (columns) FROM STDIN``; a lone string is one column.

    Raises:
        InvalidConfigError: No columns, or a bad table or column name.
    """
    if isinstance(columns, str):
        columns = [columns]
    if not columns:
        raise InvalidConfigError("copy_in() needs at least one column")
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )


def copy_out_statement(query: SQL, fmt: str, header: bool) -> sql.Composed:
    """``COPY (query) TO STDOUT (FORMAT fmt[, HEADER true])``.

    Raises:
        InvalidConfigError: An unknown format, or a header outside CSV.
    """
    if fmt not in COPY_FORMATS:
        raise InvalidConfigError(f"format must be one of {', '.join(sorted(COPY_FORMATS))}")
    options: list[sql.Composable] = [sql.SQL("FORMAT ") + sql.SQL(fmt)]
    if header:
        if fmt != "csv":
            raise InvalidConfigError("header=True needs format='csv'")
        options.append(sql.SQL("HEADER true"))
    return sql.SQL("COPY ({}) TO STDOUT ({})").format(
        as_composable(query), sql.SQL(", ").join(options)
    )
