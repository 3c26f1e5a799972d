"""What runs on one checked-out connection: a statement under a timeout, COPY, a quiet rollback.

Shared by the connector (autocommit statements) and ``Transaction``
(statements inside ``BEGIN ... COMMIT``). These functions raise psycopg's
own exceptions; the caller translates them (``errors.translate``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

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
    import psycopg_pool
    from psycopg import sql
    from psycopg.abc import PQGen
else:
    psycopg = require("psycopg", extra="postgresql", connector="postgresql")
    psycopg_pool = require("psycopg_pool", extra="postgresql", connector="postgresql")

__all__ = [
    "DeadlineConnection",
    "PoolConnectFailed",
    "StatementDeadlineExceeded",
    "Writable",
    "client_deadline",
    "connection_class",
    "copy_rows",
    "copy_to",
    "deadline",
    "execute",
    "pipelined",
    "rollback_quietly",
]

logger = logging.getLogger(__name__)

_INERROR = psycopg.pq.TransactionStatus.INERROR
_READY_NONE = psycopg.waiting.Ready.NONE
RV = TypeVar("RV")
_C = TypeVar("_C", bound="DeadlineConnection")

UNWATCHED_WAIT = 0.1
"""Seconds a round trip runs in psycopg's own (C) wait before the silence watch takes over."""

# psycopg 3.3.9 gives ``Connection.wait`` an overall ``timeout``: past it the
# wait function (``wait_c`` too) raises the internal ``_WaitTimeout`` and leaves
# the generator suspended, resumable. Without it (3.2, 3.3.0) every wait of a
# connection with a limit is watched from its start.
_WAIT_PARAMETERS = inspect.signature(psycopg.Connection.wait).parameters
_BOUNDED_WAIT = hasattr(psycopg.errors, "_WaitTimeout") and "timeout" in _WAIT_PARAMETERS
_WaitTimeout: type[Exception] = getattr(psycopg.errors, "_WaitTimeout", psycopg.OperationalError)
_INTERVAL: float = _WAIT_PARAMETERS["interval"].default if "interval" in _WAIT_PARAMETERS else 0.1
_psycopg_wait = psycopg.Connection.wait  # super().wait without making a super object per call


class StatementDeadlineExceeded(psycopg.OperationalError):
    """The server did not answer in time, so the client closed the connection.

    Raised by a ``DeadlineConnection`` when one of its waits for the server
    passed its client-side deadline; ``errors.classify`` makes it a TIMEOUT
    (with ``maybe_applied`` for a write outside a transaction).
    """


class PoolConnectFailed(psycopg_pool.PoolTimeout):
    """No connection came from the pool in time, and its last attempt to connect failed.

    Raised by ``Checkout.getconn`` instead of the bare ``PoolTimeout``, with
    the connect error as ``__cause__``: a server that refuses connections
    is CONNECTION_FAILED (``errors.classify``), not a busy pool's TIMEOUT.
    """


def client_deadline(limit: float) -> float:
    """Seconds the client waits for a statement the server may run for ``limit`` seconds.

    A margin past the server's own ``statement_timeout``, so that a server
    that can answer always answers first (with 57014, connection intact).
    """
    return limit + max(1.0, limit / 10)


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait for the server has a client-side deadline.

    ``statement_timeout`` is enforced by the server: when the network holds
    the bytes (a blackhole, a stuck proxy, a half-open connection), psycopg
    waits for ever, and TCP keepalives do not help while something ACKs.
    psycopg runs every round trip on a connection (a statement, ``BEGIN``,
    ``COMMIT``, ``ROLLBACK``, a pipeline, ``COPY``, a named cursor's
    ``DECLARE``/``FETCH``/``CLOSE``, the pool's check and rollback) through
    ``wait()``; this class overrides that one method, so no round trip can
    escape the deadline. The deadline is ``client_deadline(limit)`` seconds
    without the server making progress (sending or taking bytes): a long
    pipeline or ``COPY`` that streams is never cut, a silent server is.
    When it passes, the connection is closed (the pool discards it) and
    ``StatementDeadlineExceeded`` is raised. ``limit`` is ``statement_limit``
    (a class attribute: the pool's connection class is made per connector
    by ``connection_class``), or the one ``deadline`` sets for a block; 0
    means no deadline, as ``statement_timeout = 0`` does.

    The common round trip runs no Python code per socket step for this: it
    runs first in psycopg's own wait (C, ``timeout=UNWATCHED_WAIT``),
    untouched; only one still waiting after ``UNWATCHED_WAIT`` (a slow
    statement, a silent network) is resumed under the watch (``_watched``),
    which counts the silence from then on: a silent server is cut at most
    ``UNWATCHED_WAIT`` late, never early. psycopg resumes a waiting generator
    every ``interval`` (0.1 s) even when the socket is silent (for Ctrl-C):
    the watch checks the deadline then, in the waiting thread, with no other
    thread involved. With a psycopg whose ``wait()`` has no ``timeout`` (3.2,
    3.3.0), every wait is watched from its start.
    """

    statement_limit: ClassVar[float] = 0.0
    """The default ``limit`` (seconds) of this class's connections."""

    on_connect: ClassVar[Callable[[psycopg.Error | None], None] | None] = None
    """Told the outcome of each ``connect()``: the driver's error, or ``None``."""

    @classmethod
    def connect(cls: type[_C], *args: Any, **kwargs: Any) -> _C:
        """Connect as psycopg does, telling ``on_connect`` how it went (the pool's last error)."""
        report = cls.on_connect
        try:
            conn = super().connect(*args, **kwargs)
        except psycopg.Error as exc:
            if report is not None:
                report(exc)
            raise
        if report is not None:
            report(None)
        return conn

    _dictamesh_limit: float | None = None

    def _limit(self) -> float:
        """The limit (seconds) of the round trips now: the block's, else the class's."""
        limit = self._dictamesh_limit
        return self.statement_limit if limit is None else limit

    def wait(self, gen: PQGen[RV], interval: float = _INTERVAL, timeout: float | None = None) -> RV:
        """Consume ``gen`` as psycopg does, under the connection's client-side deadline.

        ``interval`` and ``timeout`` (psycopg >= 3.3's overall limit of the
        wait, raising its ``_WaitTimeout``) mean what they mean to psycopg.
        """
        limit = self._dictamesh_limit
        if (self.statement_limit if limit is None else limit) <= 0:
            if timeout is None:
                return _psycopg_wait(self, gen, interval)
            return _psycopg_wait(self, gen, interval, timeout)
        if not _BOUNDED_WAIT:
            return self._watch(_watched(gen, self._limit), interval, timeout)
        # The fast path: psycopg's own wait, bounded; most round trips end here.
        quick = UNWATCHED_WAIT if timeout is None or timeout > UNWATCHED_WAIT else timeout
        try:
            return _psycopg_wait(self, gen, interval, quick)
        except _WaitTimeout:
            if timeout is not None and timeout <= UNWATCHED_WAIT:
                raise  # the caller's own timeout
        rest = None if timeout is None else timeout - quick
        return self._watch(_watched(gen, self._limit, resumed=True), interval, rest)

    def _watch(self, gen: PQGen[RV], interval: float, timeout: float | None) -> RV:
        """psycopg's wait of a ``_watched`` generator; a connection past the deadline is closed."""
        try:
            if timeout is None:
                return _psycopg_wait(self, gen, interval)
            return _psycopg_wait(self, gen, interval, timeout)
        except StatementDeadlineExceeded:
            # The protocol stopped half-way: the connection is unusable.
            self.pgconn.finish()
            raise


def _watched(gen: PQGen[RV], limit: Callable[[], float], *, resumed: bool = False) -> PQGen[RV]:
    """``gen``, failing once the socket was silent for ``client_deadline(limit())`` seconds.

    ``limit()`` is read at each check, so a pipeline that queues more
    statements during the wait (``pipelined``) extends its own deadline.
    ``resumed``: ``gen`` was started by a wait that timed out, so it is
    suspended on a state this generator never saw; a ``READY_NONE`` (what
    psycopg's wait sends every ``interval`` anyway) makes it yield it again.
    """
    try:
        state = gen.send(_READY_NONE) if resumed else next(gen)
        progress = monotonic()
        while True:
            ready = yield state
            if ready:
                state = gen.send(ready)
                progress = monotonic()
                continue
            seconds = client_deadline(limit())
            if monotonic() - progress < seconds:
                state = gen.send(ready)
                continue
            gen.close()
            raise StatementDeadlineExceeded(
                f"the server did not answer within {seconds:g} s "
                f"(statement limit {limit():g} s); the connection was closed"
            )
    except StopIteration as stop:
        result: RV = stop.value
        return result


def pipelined(
    conn: psycopg.Connection[Any],
    cur: psycopg.Cursor[Any],
    query: SQL,
    params_seq: Iterable[Any],
) -> None:
    """``cur.executemany(query, params_seq)`` in a pipeline, under a deadline that grows.

    The server sends a pipeline's results only when it reaches its sync,
    at the end: the client then waits, silent, while every statement runs.
    So the deadline of the pipeline's waits is the connection's limit
    times the statements queued so far (each may run for the limit).
    """
    if not isinstance(conn, DeadlineConnection):
        with conn.pipeline():
            cur.executemany(query, params_seq)
        return
    base = conn._limit()
    count = 0

    def counted() -> Iterator[Any]:
        nonlocal count
        for params in params_seq:
            count += 1
            conn._dictamesh_limit = base * count
            yield params

    with deadline(conn, base), conn.pipeline():
        cur.executemany(query, counted())


def connection_class(
    statement_limit: float, on_connect: Callable[[psycopg.Error | None], None] | None = None
) -> type[DeadlineConnection]:
    """A ``DeadlineConnection`` class (one per pool) with its default limit and connect hook."""
    attributes = {"statement_limit": statement_limit, "on_connect": on_connect}
    return type("DictameshConnection", (DeadlineConnection,), attributes)


class deadline:
    """Run the round trips of the block on ``conn`` under ``limit`` (see ``DeadlineConnection``).

    For a statement with its own ``timeout``; restores the previous limit
    after the block. A connection of another class is left alone.

    Example::

        with deadline(conn, 30.0):
            conn.execute(sql)
    """

    __slots__ = ("_conn", "_limit", "_saved")

    def __init__(self, conn: psycopg.Connection[Any], limit: float) -> None:
        """The block's round trips on ``conn`` get ``client_deadline(limit)`` seconds each."""
        self._conn = conn
        self._limit = limit
        self._saved: float | None = None

    def __enter__(self) -> None:
        """Set the limit."""
        conn = self._conn
        if isinstance(conn, DeadlineConnection):
            self._saved = conn._dictamesh_limit
            conn._dictamesh_limit = self._limit

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Restore the previous limit."""
        conn = self._conn
        if isinstance(conn, DeadlineConnection):
            conn._dictamesh_limit = self._saved


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

    Without a timeout this is exactly one round trip, under the
    connection's own client-side deadline (the config's
    ``statement_timeout``, see ``DeadlineConnection``). With one, the old
    value is read and the new one set in one round trip before the
    statement, and restored after it (``local`` inside a transaction, where
    a failure rolls the setting back anyway), all three under a deadline of
    ``timeout``. A connection whose setting cannot be restored is closed,
    so the pool never hands it out again.

    Raises:
        InvalidConfigError: ``timeout`` is not a positive number.
        StatementDeadlineExceeded: The server did not answer in time.
        psycopg.Error: The statement failed.
    """
    cur = conn.cursor()
    if timeout is None:
        cur.execute(query, params)
        return cur
    ms = timeout_ms(timeout)
    with deadline(conn, timeout):
        row = conn.execute(GET_AND_SET_TIMEOUT, (ms, local)).fetchone()
        old = row[0] if row else "0"
        try:
            cur.execute(query, params)
        finally:
            if not conn.closed and conn.pgconn.transaction_status != _INERROR:
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
