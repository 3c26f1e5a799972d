"""Checking a connection out of the pool: the ``health_check`` policy and the state it keeps.

``Checkout`` decides, for each connection psycopg_pool hands out, whether it
is fit to use (see ``PostgreSQLConfig.health_check``), discards the ones
the server has ended, and stamps each connection given back with the time,
so a connection used a moment ago can skip the check.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import require
from dictamesh_connectors.postgresql.errors import scrub
from dictamesh_connectors.postgresql.session import PoolConnectFailed

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool
else:
    psycopg = require("psycopg", extra="postgresql", connector="postgresql")
    psycopg_pool = require("psycopg_pool", extra="postgresql", connector="postgresql")

__all__ = ["Checkout"]

logger = logging.getLogger(__name__)

# health_check="auto": a connection given back less than this many seconds
# ago skips the checkout check ...
_RECENTLY_USED = 0.025
# ... unless a connection was found dead within this many seconds.
_SUSPICIOUS_FOR = 1.0
# Server notices that announce the end of the session (admin shutdown, crash
# of another backend, shutdown in progress, idle session timeout).
_SESSION_ENDING_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P05"})
# Set on each connection given back (psycopg_pool keeps its own bookkeeping
# on the connection object too: _pool, _expire_at).
_RELEASED_AT = "_dictamesh_released_at"
_BAD = psycopg.pq.ConnStatus.BAD
_IDLE = psycopg.pq.TransactionStatus.IDLE


class Checkout:
    """Hands out pooled connections that are fit to use, and takes them back.

    One per connector, shared by all its threads. Its state is a deadline
    (``_suspicious_until``: until then every checkout is checked) and the
    set of connections whose server announced the end of the session; both
    are single reads and stores, so races between threads are benign and no
    lock is needed.

    Example::

        checkout = Checkout("auto", max_open_conns=10)
        pool = psycopg_pool.ConnectionPool(..., configure=checkout.configure)
        conn = checkout.getconn(pool)
        try:
            conn.execute("SELECT 1")
        finally:
            checkout.putconn(pool, conn)
    """

    __slots__ = (
        "_always",
        "_connect_error",
        "_ended",
        "_max_checks",
        "_off",
        "_suspicious_until",
    )

    def __init__(self, health_check: str, max_open_conns: int) -> None:
        """Check connections as ``health_check`` says: ``"auto"``, ``"always"`` or ``"off"``."""
        self._always = health_check == "always"
        self._off = health_check == "off"
        # Every idle connection may be dead (a server restart): try them all,
        # then one the pool opened afresh.
        self._max_checks = max_open_conns + 1
        # Pooled connections whose server announced the end of the session.
        self._ended: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        # Until then, every checkout is checked (a connection was found dead).
        self._suspicious_until = 0.0
        # Why the pool's last attempt to connect failed (None: it succeeded).
        self._connect_error: psycopg.Error | None = None

    @property
    def configure(self) -> Callable[[psycopg.Connection[Any]], None] | None:
        """The pool's ``configure`` hook (``watch``), or ``None`` when checks are off."""
        return None if self._off else self.watch

    def watch(self, conn: psycopg.Connection[Any]) -> None:
        """Note when the server ends the idle session of ``conn`` (a notice handler).

        A server that ends a session (restart, failover,
        ``pg_terminate_backend``, ``idle_session_timeout``) first sends a
        FATAL error; libpq hands an error that arrives on an idle connection
        to the notice handlers. After a crash of another backend, PostgreSQL
        14+ sends 57P02 as a WARNING before closing the socket, so the
        session-ending SQLSTATEs count whatever their severity.
        """
        # The handler holds the set, not the Checkout, and the connection weakly.
        ref = weakref.ref(conn)
        ended = self._ended

        def on_notice(diag: psycopg.errors.Diagnostic) -> None:
            if (
                diag.severity_nonlocalized in ("FATAL", "PANIC")
                or diag.sqlstate in _SESSION_ENDING_SQLSTATES
            ):
                dead = ref()
                if dead is not None:
                    ended.add(dead)

        conn.add_notice_handler(on_notice)

    def connected(self, error: psycopg.Error | None) -> None:
        """The pool's latest connect attempt failed with ``error`` (``None``: it worked).

        Called from the pool's workers (``DeadlineConnection.on_connect``); a
        lone store, so no lock. The error is scrubbed of the attempt's
        libpq handle, which holds the password.
        """
        if error is not None:
            scrub(error)
        self._connect_error = error

    def healthy(self, conn: psycopg.Connection[Any]) -> bool:
        """Tell whether a connection just taken from the pool may be handed out.

        ``"auto"``: no round trip, no blocking, no GIL release. One
        non-blocking read takes in whatever the server sent while the
        connection sat idle: the FATAL message of an ended session (parsing
        it runs the notice hook of ``watch``) or the EOF of a crashed one
        (the read fails). A healthy idle connection has nothing to read.
        ``"always"``: an empty query, one round trip.
        """
        try:
            if self._always:
                psycopg_pool.ConnectionPool.check_connection(conn)
                return True
            pgconn = conn.pgconn
            pgconn.consume_input()  # fails on EOF (a crashed server sends no FATAL)
            pgconn.is_busy()  # parses what arrived: a FATAL reaches the notice hook
        except psycopg.Error:
            return False
        if self._ended and conn in self._ended:
            return False
        return pgconn.status != _BAD and pgconn.transaction_status == _IDLE

    def getconn(
        self, pool: psycopg_pool.ConnectionPool[Any], timeout: float | None = None
    ) -> psycopg.Connection[Any]:
        """Check a healthy connection out of ``pool``.

        A broken one is closed and given back (the pool then opens a
        replacement) and the next one is tried, without psycopg_pool's
        backoff sleeps between checks: after a server restart every idle
        connection is dead, and each costs only one non-blocking read.

        Raises:
            PoolConnectFailed: No connection within the timeout, and the
                pool's last attempt to connect failed (its ``__cause__``).
            psycopg_pool.PoolTimeout: No connection within the timeout.
        """
        conn: psycopg.Connection[Any] = self._getconn(pool, timeout)
        if self._off:
            return conn
        now = time.monotonic()
        if now - getattr(conn, _RELEASED_AT, -math.inf) < _RECENTLY_USED and (
            now > self._suspicious_until
        ):
            # It worked a few milliseconds ago and nothing looks wrong: skip
            # the read, a system call on the hot path of a busy pool. A
            # session ended since then is a race no checkout check can close
            # (it can end just after the check too); reads and BEGIN retry it.
            return conn
        for _ in range(self._max_checks):
            if self.healthy(conn):
                return conn
            logger.info("postgresql: discarding a connection the server has closed")
            self.note_lost()
            with contextlib.suppress(Exception):
                conn.close()
            pool.putconn(conn)
            conn = self._getconn(pool, timeout)
        return conn  # only fresh connections are left by now

    def _getconn(
        self, pool: psycopg_pool.ConnectionPool[Any], timeout: float | None
    ) -> psycopg.Connection[Any]:
        try:
            conn: psycopg.Connection[Any] = pool.getconn(timeout)
        except psycopg_pool.PoolTimeout as exc:
            error = self._connect_error
            if error is None:
                raise
            raise PoolConnectFailed(f"{exc}; the last attempt to connect failed") from error
        return conn

    @staticmethod
    def putconn(pool: psycopg_pool.ConnectionPool[Any], conn: psycopg.Connection[Any]) -> None:
        """Give ``conn`` back to ``pool``, noting when (see ``getconn``)."""
        setattr(conn, _RELEASED_AT, time.monotonic())
        pool.putconn(conn)

    def note_lost(self) -> None:
        """A connection was found dead: check every checkout for a while."""
        # A lone float store: benign races, no lock needed.
        self._suspicious_until = time.monotonic() + _SUSPICIOUS_FOR

    def reset(self) -> None:
        """Forget every connection seen so far (in a forked child, with a new pool)."""
        self._ended = weakref.WeakSet()
        self._suspicious_until = 0.0
