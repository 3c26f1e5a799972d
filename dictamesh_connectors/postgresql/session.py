"""What runs on one checked-out connection: a statement under a timeout, COPY, a quiet rollback.

Shared by the connector (autocommit statements) and ``Transaction``
(statements inside ``BEGIN ... COMMIT``). These functions raise psycopg's
own exceptions; the caller translates them (``errors.translate``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from dictamesh_connectors._compat import require
from dictamesh_connectors._watchdog import WATCHDOG, shutdown_socket
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

__all__ = [
    "StatementDeadlineExceeded",
    "Writable",
    "client_deadline",
    "copy_rows",
    "copy_to",
    "deadline",
    "execute",
    "rollback_quietly",
]

logger = logging.getLogger(__name__)

_INERROR = psycopg.pq.TransactionStatus.INERROR


class StatementDeadlineExceeded(psycopg.OperationalError):
    """The server did not answer in time, so the client shut the connection down.

    Raised instead of the driver's "server closed the connection" when the
    client-side deadline of ``deadline`` fired; ``errors.classify`` makes it
    a TIMEOUT (with ``maybe_applied`` for a write outside a transaction).
    """


def client_deadline(limit: float) -> float:
    """Seconds the client waits for a statement the server may run for ``limit`` seconds.

    A margin past the server's own ``statement_timeout``, so that a server
    that can answer always answers first (with 57014, connection intact).
    """
    return limit + max(1.0, limit / 10)


class deadline:
    """The client-side deadline of the statements run on ``conn`` in the block.

    ``statement_timeout`` is enforced by the server: when the network holds
    the bytes (a blackhole, a stuck proxy), psycopg waits for ever. With
    ``limit`` > 0, the core watchdog shuts the connection's socket down
    ``client_deadline(limit)`` seconds after the block began; the driver's
    wait then fails, and the block raises ``StatementDeadlineExceeded``.
    The connection is dead afterwards (the pool discards it on return).
    ``limit`` 0 means no limit, as ``statement_timeout = 0`` does.

    Example::

        with deadline(conn, 30.0):
            conn.execute(sql)
    """

    __slots__ = ("_fd", "_key", "_limit")

    def __init__(self, conn: psycopg.Connection[Any], limit: float) -> None:
        """Watch the statements run on ``conn`` for ``client_deadline(limit)`` seconds."""
        self._limit = limit
        self._key = 0
        self._fd = conn.pgconn.socket if limit > 0 else -1

    def __enter__(self) -> None:
        """Arm the deadline."""
        if self._limit > 0:
            expire = functools.partial(shutdown_socket, self._fd)
            self._key = WATCHDOG.arm(client_deadline(self._limit), expire)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Disarm it; a driver error after it fired becomes ``StatementDeadlineExceeded``."""
        if self._key and WATCHDOG.disarm(self._key) and isinstance(exc, psycopg.Error):
            raise StatementDeadlineExceeded(
                f"the server did not answer within {client_deadline(self._limit):g} s "
                f"(statement limit {self._limit:g} s); the connection was closed"
            ) from None


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
    default: float = 0.0,
) -> psycopg.Cursor[Any]:
    """Run one statement; with ``timeout``, under that ``statement_timeout`` only.

    Without a timeout this is exactly one round trip. With one, the old
    value is read and the new one set in one round trip before the
    statement, and restored after it (``local`` inside a transaction, where
    a failure rolls the setting back anyway). A connection whose setting
    cannot be restored is closed, so the pool never hands it out again.
    Either way the statement runs under a client-side ``deadline`` (of
    ``timeout``, else of ``default``, the config's ``statement_timeout``).

    Raises:
        InvalidConfigError: ``timeout`` is not a positive number.
        StatementDeadlineExceeded: The server did not answer in time.
        psycopg.Error: The statement failed.
    """
    cur = conn.cursor()
    if timeout is None:
        with deadline(conn, default):
            cur.execute(query, params)
        return cur
    ms = timeout_ms(timeout)
    with deadline(conn, timeout):
        row = conn.execute(GET_AND_SET_TIMEOUT, (ms, local)).fetchone()
    old = row[0] if row else "0"
    try:
        with deadline(conn, timeout):
            cur.execute(query, params)
    finally:
        if conn.pgconn.transaction_status != _INERROR:
            try:
                with deadline(conn, timeout):
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
