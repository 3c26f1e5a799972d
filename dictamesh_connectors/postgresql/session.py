"""What runs on one checked-out connection: a statement under a timeout, COPY, a quiet rollback.

Shared by the connector (autocommit statements) and ``Transaction``
(statements inside ``BEGIN ... COMMIT``). These functions raise psycopg's
own exceptions; the caller translates them (``errors.translate``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from dictamesh_connectors._compat import require
from dictamesh_connectors.postgresql.statements import (
    GET_AND_SET_TIMEOUT,
    SET_TIMEOUT,
    SQL,
    Params,
    timeout_ms,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql
else:
    psycopg = require("psycopg", extra="postgresql", connector="postgresql")

__all__ = ["Writable", "copy_rows", "copy_to", "execute", "rollback_quietly"]

logger = logging.getLogger(__name__)

_INERROR = psycopg.pq.TransactionStatus.INERROR


class Writable(Protocol):
    """Where ``copy_out`` sends its data: anything with ``write(bytes)``."""

    def write(self, data: bytes, /) -> Any: ...


def execute(
    conn: psycopg.Connection[Any],
    query: SQL,
    params: Params,
    timeout: float | None,
    *,
    local: bool,
) -> psycopg.Cursor[Any]:
    """Run one statement; with ``timeout``, under that ``statement_timeout`` only.

    Without a timeout this is exactly one round trip. With one, the old
    value is read and the new one set in one round trip before the
    statement, and restored after it (``local`` inside a transaction, where
    a failure rolls the setting back anyway). A connection whose setting
    cannot be restored is closed, so the pool never hands it out again.

    Raises:
        InvalidConfigError: ``timeout`` is not a positive number.
        psycopg.Error: The statement failed.
    """
    cur = conn.cursor()
    if timeout is None:
        cur.execute(query, params)
        return cur
    ms = timeout_ms(timeout)
    row = conn.execute(GET_AND_SET_TIMEOUT, (ms, local)).fetchone()
    old = row[0] if row else "0"
    try:
        cur.execute(query, params)
    finally:
        if conn.pgconn.transaction_status != _INERROR:
            try:
                conn.execute(SET_TIMEOUT, (old, local))
            except psycopg.Error:
                # Never hand a connection with a foreign timeout back to the pool.
                logger.debug(
                    "postgresql: could not restore statement_timeout; closing", exc_info=True
                )
                conn.close()
    return cur


def copy_rows(cur: psycopg.Cursor[Any], statement: sql.Composed, rows: Iterable[Any]) -> int:
    """Run ``COPY ... FROM STDIN`` with ``rows``; returns the number of rows copied."""
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    return cur.rowcount


def copy_to(
    cur: psycopg.Cursor[Any],
    statement: sql.Composed,
    params: Params,
    out: Writable,
    sink: list[int],
) -> int:
    """Run ``COPY ... TO STDOUT`` into ``out``, counting the bytes written in ``sink[0]``.

    Returns:
        The number of rows exported.
    """
    with cur.copy(statement, params) as copy:
        for chunk in copy:
            out.write(bytes(chunk))
            sink[0] += len(chunk)
    return cur.rowcount


def rollback_quietly(conn: psycopg.Connection[Any]) -> None:
    """``ROLLBACK``, ignoring a failure (the caller's own error is the one that matters)."""
    # A connection that cannot roll back is broken; psycopg_pool discards it on return.
    try:
        conn.execute("ROLLBACK")
    except Exception:
        logger.debug("postgresql: rollback failed", exc_info=True)
