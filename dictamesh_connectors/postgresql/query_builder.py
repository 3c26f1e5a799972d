"""Safe SQL for the common statements, composed only with ``psycopg.sql``.

Every table and column name becomes a ``sql.Identifier`` (quoted, whatever
it contains: quotes, semicolons, spaces, unicode) and every value becomes a
named placeholder bound by the server, never text formatted into the SQL.
Each helper returns a ``Statement``, a ``(sql, params)`` pair that unpacks
straight into ``query``/``execute``::

    from dictamesh_connectors.postgresql import query_builder as qb

    db.execute(*qb.insert("users", {"name": "Ada", "email": "ada@example.org"}))
    row = db.query(*qb.select("users", where={"name": "Ada"})).first()
    db.execute(*qb.upsert("users", {"id": 1, "name": "Ada"}, conflict=["id"]))

A table is a name (``"users"``) or a ``(schema, name)`` pair; a dotted
string is one identifier, never split. ``returning`` is a list of columns,
or the string ``"*"`` for every column (``["*"]`` is a column named ``*``).
``where`` mappings are ANDed equalities; a ``None`` value means ``IS NULL``.
Bad arguments (an empty ``where`` for ``update``/``delete``, an empty or
NUL-containing name) raise ``InvalidConfigError``, a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import InvalidConfigError

if TYPE_CHECKING:
    from psycopg import sql
else:
    sql = require("psycopg.sql", extra="postgresql", connector="postgresql")

__all__ = ["Statement", "Table", "delete", "identifier", "insert", "select", "update", "upsert"]

Table = str | tuple[str, str]
"""A table name, or a ``(schema, table)`` pair."""


class Statement(NamedTuple):
    """A composed SQL statement and its parameters, ready for ``query``/``execute``.

    An immutable tuple: build it in one thread, run it from any. Example::

        statement = select("users", ["id"], where={"name": "Ada"})
        db.query(*statement)  # == db.query(statement.sql, statement.params)
    """

    sql: sql.Composed
    """The statement, identifiers quoted, values as named placeholders."""
    params: dict[str, Any]
    """Placeholder name -> value."""


def _name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidConfigError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidConfigError(f"{what} must not be empty")
    if "\x00" in value:
        raise InvalidConfigError(f"{what} must not contain NUL characters")
    return value


class _Ident(sql.Identifier):
    """An identifier for a statement that is executed *with* parameters.

    psycopg looks for ``%`` placeholders in the whole composed text, quoted
    identifiers included, so a ``%`` in a name must be doubled; psycopg
    turns ``%%`` back into ``%`` when it binds the parameters. Every
    ``Statement`` therefore always carries a params mapping, even an empty one.
    """

    def as_bytes(self, context: Any = None) -> bytes:
        return super().as_bytes(context).replace(b"%", b"%%")


def identifier(table: Table) -> sql.Identifier:
    """Quote a table name or a ``(schema, table)`` pair as one ``sql.Identifier``.

    For statements executed without parameters (``COPY``, DDL). The
    helpers of this module escape ``%`` in names for their own statements.

    Raises:
        InvalidConfigError: An empty, non-string or NUL-containing name.
    """
    return sql.Identifier(*_table_parts(table))


def _table_parts(table: Table) -> tuple[str, ...]:
    if isinstance(table, tuple):
        if len(table) != 2:
            raise InvalidConfigError("a table is a name or a (schema, name) pair")
        return (_name(table[0], "schema name"), _name(table[1], "table name"))
    return (_name(table, "table name"),)


def _table(table: Table) -> sql.Identifier:
    return _Ident(*_table_parts(table))


def _column(name: str) -> sql.Identifier:
    return _Ident(_name(name, "column name"))


def _columns(names: Iterable[str]) -> list[sql.Identifier]:
    return [_column(n) for n in names]


class _Params:
    """Hands out placeholder names p0, p1, ...: never derived from column names."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> sql.Placeholder:
        key = f"p{len(self.values)}"
        self.values[key] = value
        return sql.Placeholder(key)


def _where(where: Mapping[str, Any] | None, params: _Params) -> sql.Composable:
    if not where:
        return sql.SQL("")
    terms = []
    for column, value in where.items():
        ident = _column(column)
        if value is None:
            terms.append(sql.SQL("{} IS NULL").format(ident))
        else:
            terms.append(sql.SQL("{} = {}").format(ident, params.add(value)))
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(terms)


def _returning(returning: Sequence[str] | None) -> sql.Composable:
    # The string "*" means every column; in a list, "*" is a column named "*".
    if returning is None:
        return sql.SQL("")
    if returning == "*":
        return sql.SQL(" RETURNING *")
    if isinstance(returning, str):
        returning = [returning]
    if not returning:
        raise InvalidConfigError("returning must name at least one column (or be None)")
    return sql.SQL(" RETURNING ") + sql.SQL(", ").join(_columns(returning))


def _row(row: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(row, Mapping) or not row:
        raise InvalidConfigError("a row must be a non-empty mapping of column -> value")
    return row


def select(
    table: Table,
    columns: Sequence[str] | None = None,
    *,
    where: Mapping[str, Any] | None = None,
    order_by: Sequence[str] | None = None,
    limit: int | None = None,
) -> Statement:
    """``SELECT columns FROM table WHERE ... ORDER BY ... LIMIT n``.

    Args:
        table: Table name or ``(schema, table)``.
        columns: Columns to return; ``None`` means ``*``.
        where: Column -> value equalities, ANDed (``None`` -> ``IS NULL``).
        order_by: Columns to sort by, ascending.
        limit: Most rows to return (bound as a parameter).

    Raises:
        InvalidConfigError: Bad names or arguments.
    """
    params = _Params()
    cols: sql.Composable = (
        sql.SQL("*") if columns is None else sql.SQL(", ").join(_columns(columns))
    )
    query = sql.SQL("SELECT {} FROM {}").format(cols, _table(table)) + _where(where, params)
    if order_by:
        query += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(_columns(order_by))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidConfigError("limit must be a non-negative int")
        query += sql.SQL(" LIMIT {}").format(params.add(limit))
    return Statement(sql.Composed([query]), params.values)


def insert(
    table: Table, row: Mapping[str, Any], *, returning: Sequence[str] | None = None
) -> Statement:
    """``INSERT INTO table (columns) VALUES (...) [RETURNING ...]``.

    Raises:
        InvalidConfigError: Bad names or an empty row.
    """
    row = _row(row)
    params = _Params()
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        _table(table),
        sql.SQL(", ").join(_columns(row)),
        sql.SQL(", ").join(params.add(v) for v in row.values()),
    )
    return Statement(sql.Composed([query, _returning(returning)]), params.values)


def update(
    table: Table,
    values: Mapping[str, Any],
    *,
    where: Mapping[str, Any],
    returning: Sequence[str] | None = None,
) -> Statement:
    """``UPDATE table SET ... WHERE ... [RETURNING ...]``.

    ``where`` is required and must not be empty: updating every row takes
    hand-written SQL.

    Raises:
        InvalidConfigError: Bad names, no values or an empty ``where``.
    """
    values = _row(values)
    if not where:
        raise InvalidConfigError("update() needs a non-empty where")
    params = _Params()
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(_column(c), params.add(v)) for c, v in values.items()
    )
    query = sql.SQL("UPDATE {} SET {}").format(_table(table), assignments)
    return Statement(
        sql.Composed([query, _where(where, params), _returning(returning)]), params.values
    )


def delete(
    table: Table, *, where: Mapping[str, Any], returning: Sequence[str] | None = None
) -> Statement:
    """``DELETE FROM table WHERE ... [RETURNING ...]``.

    Raises:
        InvalidConfigError: Bad names or an empty ``where`` (deleting every
            row takes hand-written SQL).
    """
    if not where:
        raise InvalidConfigError("delete() needs a non-empty where")
    params = _Params()
    query = sql.SQL("DELETE FROM {}").format(_table(table))
    return Statement(
        sql.Composed([query, _where(where, params), _returning(returning)]), params.values
    )


def upsert(
    table: Table,
    row: Mapping[str, Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = None,
    returning: Sequence[str] | None = None,
) -> Statement:
    """``INSERT ... ON CONFLICT (conflict) DO UPDATE SET c = EXCLUDED.c`` (or ``DO NOTHING``).

    Args:
        table: Table name or ``(schema, table)``.
        row: Column -> value of the row to insert.
        conflict: The columns of the unique constraint that may conflict.
        update: Columns to overwrite on conflict; ``None`` means every
            column of ``row`` not in ``conflict``; an empty list means
            ``DO NOTHING``.
        returning: Columns to return.

    Raises:
        InvalidConfigError: Bad names, an empty row or no conflict columns.
    """
    row = _row(row)
    if isinstance(conflict, str):
        conflict = [conflict]
    if not conflict:
        raise InvalidConfigError("upsert() needs the conflict column(s)")
    if update is None:
        update = [c for c in row if c not in set(conflict)]
    params = _Params()
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) ").format(
        _table(table),
        sql.SQL(", ").join(_columns(row)),
        sql.SQL(", ").join(params.add(v) for v in row.values()),
        sql.SQL(", ").join(_columns(conflict)),
    )
    action: sql.Composable
    if update:
        action = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(_column(c)) for c in update
        )
    else:
        action = sql.SQL("DO NOTHING")
    return Statement(sql.Composed([query, action, _returning(returning)]), params.values)
