"""psycopg / psycopg_pool exceptions -> ``ConnectorError``: the PostgreSQL table.

Every driver exception that leaves the PostgreSQL connector goes through
``translate()``, one context manager; ``classify()`` is its pure core. The
checks run most specific first: the pool's own exceptions, then the
server's SQLSTATE (exact code, then its two-character class), then the
client-side errors that carry no SQLSTATE (recognised by the connection
state and, last resort, the message text). Programming errors (``TypeError``,
``ValueError``, ...) are not driver exceptions and pass through untouched.

Exception mapping::

    PoolConnectFailed .................... as its cause while connecting: a refused
    |   connection is CONNECTION_FAILED    transient  RETRY
    |   (the pool timed out and its last attempt to connect had failed)
    psycopg_pool.PoolTimeout ............. TIMEOUT              transient  RETRY
    psycopg_pool.TooManyRequests ......... RESOURCE_EXHAUSTED   transient  RETRY
    psycopg_pool.PoolClosed .............. NOT_CONNECTED        permanent  NONE
    psycopg.errors.ConnectionTimeout ..... TIMEOUT              transient  RETRY
    StatementDeadlineExceeded ............ TIMEOUT              transient  RETRY
    |   (no answer within the client-side deadline, statement_timeout plus a
    |   margin: the socket was shut down; maybe_applied for a write)
    psycopg.Error with a SQLSTATE
    |   40001 serialization_failure ...... SERIALIZATION_FAILURE transient RETRY_TRANSACTION
    |   40P01 deadlock_detected .......... DEADLOCK             transient  RETRY_TRANSACTION
    |   40002 / 40003 .................... CONSTRAINT_VIOLATION / TRANSACTION_FAILED
    |   40xxx (other) .................... SERIALIZATION_FAILURE transient RETRY_TRANSACTION
    |   55P03 lock_not_available ......... LOCK_TIMEOUT         transient  RETRY
    |   57014 query_canceled ............. TIMEOUT              transient  RETRY
    |   57P01 admin_shutdown ............. UNAVAILABLE          transient  RECONNECT
    |   57P02 crash_shutdown ............. UNAVAILABLE          transient  RECONNECT
    |   57P03 cannot_connect_now ......... UNAVAILABLE          transient  RECONNECT
    |   57P04 database_dropped ........... NOT_FOUND            permanent  NONE
    |   57P05 idle_session_timeout ....... CONNECTION_LOST      transient  RECONNECT
    |   25P02 in_failed_sql_transaction .. TRANSACTION_FAILED   permanent  NONE
    |   25P03 idle_in_transaction_timeout  CONNECTION_LOST      transient  RECONNECT
    |   3D000 invalid_catalog_name ....... NOT_FOUND            permanent  NONE
    |   3F000 invalid_schema_name ........ NOT_FOUND            permanent  NONE
    |   42P01 undefined_table ............ NOT_FOUND            permanent  NONE
    |   42501 insufficient_privilege ..... PERMISSION_DENIED    permanent  NONE
    |   08xxx connection_exception ....... CONNECTION_LOST      transient  RECONNECT
    |                                      (CONNECTION_FAILED while connecting)
    |   53xxx insufficient_resources ..... RESOURCE_EXHAUSTED   transient  RETRY
    |   23xxx integrity_constraint ....... CONSTRAINT_VIOLATION permanent  NONE
    |   28xxx invalid_authorization ...... AUTH_FAILED          permanent  NONE
    |   22xxx data_exception ............. INVALID_INPUT        permanent  NONE
    |   42xxx syntax_error_or_access ..... INVALID_REQUEST      permanent  NONE
    |   0Axxx feature_not_supported ...... UNSUPPORTED          permanent  NONE
    |   25xxx invalid_transaction_state .. TRANSACTION_FAILED   permanent  NONE
    |   (anything else) .................. QUERY_FAILED (reads) / EXEC_FAILED (writes)
    UnicodeError, OverflowError, RecursionError while adapting parameters
    |   (a lone surrogate, a number past its type, nesting too deep)
    |                                  SERIALIZATION_ERROR  permanent  NONE
    psycopg.Error without a SQLSTATE
        while connecting, by the server's message (libpq gives no SQLSTATE):
        |   "password authentication failed", "no password supplied", ...
        |                                  AUTH_FAILED          permanent  NONE
        |   'database "x" does not exist'  NOT_FOUND            permanent  NONE
        |   "the database system is starting up / shutting down"
        |                                  UNAVAILABLE          transient  RETRY
        |   "too many clients / connections" RESOURCE_EXHAUSTED transient  RETRY
        |   "invalid value for parameter", "unrecognized configuration
        |   parameter", ... (startup options the server refused)
        |                                  INVALID_CONFIG       permanent  NONE
        |   any other server FATAL ....... CONNECTION_FAILED    permanent  NONE
        |   (no FATAL: refused, unreachable, reset)
        |                                  CONNECTION_FAILED    transient  RETRY
        on an open connection: broken / "connection closed", "server closed
        |   the connection unexpectedly", "consuming input failed", ...
        |                                  CONNECTION_LOST      transient  RECONNECT
        psycopg.InterfaceError, client-side ProgrammingError/DataError
        |                                  INVALID_REQUEST      permanent  NONE
        (anything else) .................. QUERY_FAILED / EXEC_FAILED, permanent

A write (``execute``, ``executemany``, ``copy_in``, a ``COMMIT``) that loses
its connection after the statement was sent may have taken effect: those
errors carry ``maybe_applied=True``. A statement cancelled by
``statement_timeout`` (57014) was rolled back by the server, so it does not.

``err.details`` holds ``sqlstate``, ``constraint``, ``table``, ``schema``,
``column`` and ``severity`` when the server sent them. Messages use only the
server's primary message (never its DETAIL, which can quote row values), and
in class 22 the quoted values of the primary message are masked, so
parameter values never reach a message. The driver exception kept as
``__cause__`` is psycopg's own, with the server's full text; the password
held by a failed connection attempt is removed from it (``scrub``).
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    ErrorRule,
    RetryHint,
    Translator,
    build_error,
)
from dictamesh_connectors.postgresql.session import PoolConnectFailed, StatementDeadlineExceeded

if TYPE_CHECKING:
    import psycopg
    import psycopg.errors
    import psycopg_pool
else:
    psycopg = require("psycopg", extra="postgresql", connector="postgresql")
    psycopg_pool = require("psycopg_pool", extra="postgresql", connector="postgresql")

__all__ = ["SQLSTATE_CLASSES", "SQLSTATE_CODES", "classify", "translate"]

CONNECTOR = "postgresql"

# The rules that do not come from a SQLSTATE (see the table above).
_POOL_TIMEOUT = ErrorRule(ErrorCode.TIMEOUT, True, RetryHint.RETRY)
_POOL_QUEUE_FULL = ErrorRule(ErrorCode.RESOURCE_EXHAUSTED, True, RetryHint.RETRY)
_POOL_CLOSED = ErrorRule(ErrorCode.NOT_CONNECTED, False, RetryHint.NONE)
_CONNECT_TIMEOUT = ErrorRule(ErrorCode.TIMEOUT, True, RetryHint.RETRY)
_CLIENT_DEADLINE = ErrorRule(ErrorCode.TIMEOUT, True, RetryHint.RETRY)
_CONNECT_FAILED = ErrorRule(ErrorCode.CONNECTION_FAILED, True, RetryHint.RETRY)
_UNENCODABLE = ErrorRule(ErrorCode.SERIALIZATION_ERROR, False, RetryHint.NONE)
_ENCODING_ERRORS = (UnicodeError, OverflowError, RecursionError)
# The server answered the startup with a FATAL that no rule knows: it will
# answer the same way again, so it is permanent until proven transient.
_CONNECT_REFUSED = ErrorRule(ErrorCode.CONNECTION_FAILED, False, RetryHint.NONE)
_LOST = ErrorRule(ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT)
_CLIENT_SIDE = ErrorRule(ErrorCode.INVALID_REQUEST, False, RetryHint.NONE)
_QUERY_FAILED = ErrorRule(ErrorCode.QUERY_FAILED, False, RetryHint.NONE)
_EXEC_FAILED = ErrorRule(ErrorCode.EXEC_FAILED, False, RetryHint.NONE)

# Exact SQLSTATEs win over their two-character class.
SQLSTATE_CODES: dict[str, ErrorRule] = {
    "40001": ErrorRule(ErrorCode.SERIALIZATION_FAILURE, True, RetryHint.RETRY_TRANSACTION),
    "40P01": ErrorRule(ErrorCode.DEADLOCK, True, RetryHint.RETRY_TRANSACTION),
    "40002": ErrorRule(ErrorCode.CONSTRAINT_VIOLATION, False, RetryHint.NONE),
    "40003": ErrorRule(ErrorCode.TRANSACTION_FAILED, False, RetryHint.NONE),
    "55P03": ErrorRule(ErrorCode.LOCK_TIMEOUT, True, RetryHint.RETRY),
    "57014": ErrorRule(ErrorCode.TIMEOUT, True, RetryHint.RETRY),
    "57P01": ErrorRule(ErrorCode.UNAVAILABLE, True, RetryHint.RECONNECT),
    "57P02": ErrorRule(ErrorCode.UNAVAILABLE, True, RetryHint.RECONNECT),
    "57P03": ErrorRule(ErrorCode.UNAVAILABLE, True, RetryHint.RECONNECT),
    "57P04": ErrorRule(ErrorCode.NOT_FOUND, False, RetryHint.NONE),
    "57P05": ErrorRule(ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT),
    "25P02": ErrorRule(ErrorCode.TRANSACTION_FAILED, False, RetryHint.NONE),
    "25P03": ErrorRule(ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT),
    "3D000": ErrorRule(ErrorCode.NOT_FOUND, False, RetryHint.NONE),
    "3F000": ErrorRule(ErrorCode.NOT_FOUND, False, RetryHint.NONE),
    "42P01": ErrorRule(ErrorCode.NOT_FOUND, False, RetryHint.NONE),
    "42501": ErrorRule(ErrorCode.PERMISSION_DENIED, False, RetryHint.NONE),
}
"""Exact SQLSTATE -> (code, transient, retry hint)."""

SQLSTATE_CLASSES: dict[str, ErrorRule] = {
    "08": ErrorRule(ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT),
    "40": ErrorRule(ErrorCode.SERIALIZATION_FAILURE, True, RetryHint.RETRY_TRANSACTION),
    "53": ErrorRule(ErrorCode.RESOURCE_EXHAUSTED, True, RetryHint.RETRY),
    "23": ErrorRule(ErrorCode.CONSTRAINT_VIOLATION, False, RetryHint.NONE),
    "28": ErrorRule(ErrorCode.AUTH_FAILED, False, RetryHint.NONE),
    "22": ErrorRule(ErrorCode.INVALID_INPUT, False, RetryHint.NONE),
    "42": ErrorRule(ErrorCode.INVALID_REQUEST, False, RetryHint.NONE),
    "0A": ErrorRule(ErrorCode.UNSUPPORTED, False, RetryHint.NONE),
    "25": ErrorRule(ErrorCode.TRANSACTION_FAILED, False, RetryHint.NONE),
}
"""SQLSTATE class (first two characters) -> (code, transient, retry hint)."""

# Connect-time failures: libpq reports the server's FATAL message with no
# SQLSTATE, so the message text is all there is. Checked in order.
_CONNECT_MESSAGES: tuple[tuple[re.Pattern[str], ErrorRule], ...] = (
    (
        re.compile(
            r"password authentication failed|no password supplied|authentication failed"
            r"|role \".*\" does not exist|no pg_hba\.conf entry|peer authentication failed"
            r"|SCRAM authentication|password is required",
            re.I,
        ),
        ErrorRule(ErrorCode.AUTH_FAILED, False, RetryHint.NONE),
    ),
    (
        # Startup parameters (options, statement_timeout) the server refused.
        re.compile(
            r"invalid value for parameter|unrecognized configuration parameter"
            r"|cannot be changed without restarting|permission denied to set parameter"
            r"|parameter \".*\" cannot be (set|changed)|-c \S+ requires a value"
            r"|invalid command-line argument",
            re.I,
        ),
        ErrorRule(ErrorCode.INVALID_CONFIG, False, RetryHint.NONE),
    ),
    (
        re.compile(r"database \".*\" does not exist", re.I),
        ErrorRule(ErrorCode.NOT_FOUND, False, RetryHint.NONE),
    ),
    (
        re.compile(
            r"the database system is (starting up|shutting down|in recovery mode"
            r"|not yet accepting connections|not accepting connections)"
            r"|terminating connection due to administrator command",
            re.I,
        ),
        ErrorRule(ErrorCode.UNAVAILABLE, True, RetryHint.RETRY),
    ),
    (
        re.compile(
            r"too many clients|too many connections|remaining connection slots are reserved", re.I
        ),
        ErrorRule(ErrorCode.RESOURCE_EXHAUSTED, True, RetryHint.RETRY),
    ),
)

# Client-side messages of a connection that broke under us (psycopg and libpq).
_LOST_MESSAGES = re.compile(
    r"connection is closed|connection socket closed|consuming input failed"
    r"|sending query failed|flushing failed|connection is bad|server closed the connection"
    r"|terminating connection|SSL connection has been closed|lost synchronization"
    r"|connection not open|no connection to the server|could not receive data"
    r"|could not send data|connection reset|broken pipe|EOF detected",
    re.I,
)

# Values the server quotes inside class-22 primary messages, e.g.
# 'invalid input syntax for type integer: "abc"'.
_QUOTED = re.compile(
    r'(?P<kind>\b(?:column|relation|table|schema|constraint|index|domain|type) )?"(?:[^"]|"")*"'
)

_DETAIL_FIELDS = (
    ("constraint", "constraint_name"),
    ("table", "table_name"),
    ("schema", "schema_name"),
    ("column", "column_name"),
    ("severity", "severity_nonlocalized"),
)


def _connect_message(text: str) -> str:
    # 'connection failed: connection to server at "h", port 5432 failed: FATAL:  msg'
    # -> 'msg'; keep the libpq text otherwise.
    tail = text.rsplit("FATAL:", 1)[-1] if "FATAL:" in text else text
    tail = tail.removeprefix("connection failed: ")
    return " ".join(tail.split())


def _primary_message(exc: psycopg.Error, sqlstate: str | None) -> str:
    primary = None
    with contextlib.suppress(Exception):
        primary = exc.diag.message_primary
    text = primary or (str(exc).split("\n", 1)[0])
    if sqlstate and sqlstate.startswith("22"):
        # Mask the values the server quotes, never the identifiers: a quoted
        # name after "column", "relation"... or one the server named in its
        # diagnostics stays readable ('missing data for column "b"').
        names = set()
        for field in ("column_name", "table_name", "schema_name", "constraint_name"):
            with contextlib.suppress(Exception):
                if value := getattr(exc.diag, field):
                    names.add(value)

        def mask(match: re.Match[str]) -> str:
            whole, kind = match.group(0), match.group("kind") or ""
            quoted = whole[len(kind) :]
            if kind or quoted[1:-1].replace('""', '"') in names:
                return whole
            return '"***"'

        text = _QUOTED.sub(mask, text)
    return " ".join(text.split())


def _details(exc: psycopg.Error, sqlstate: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if sqlstate:
        details["sqlstate"] = sqlstate
    try:
        diag = exc.diag
        for key, attr in _DETAIL_FIELDS:
            value = getattr(diag, attr, None)
            if value:
                details[key] = value
    except Exception:  # a hand-built exception may have no usable diag
        pass
    return details


def _is_broken(exc: psycopg.Error) -> bool:
    pgconn = exc.pgconn
    if pgconn is not None:
        with contextlib.suppress(Exception):
            if pgconn.status == psycopg.pq.ConnStatus.BAD:
                return True
    return bool(_LOST_MESSAGES.search(str(exc)))


def scrub(exc: BaseException) -> None:
    """Drop a failed connection attempt's libpq handle from a driver exception.

    psycopg keeps a ``FinishedPGconn`` on connect-time errors; its fields
    include the password. Nothing needs it once the error is classified, and
    it must not ride along in ``__cause__`` (reprs, debuggers, error trackers).
    """
    if isinstance(getattr(exc, "_pgconn", None), psycopg.errors.FinishedPGconn):
        exc._pgconn = None  # type: ignore[attr-defined]
    if isinstance(exc, UnicodeError):
        # .object is the whole text (a parameter, the statement) it failed on.
        exc.args = (type(exc).__name__,)
        with contextlib.suppress(AttributeError, TypeError):
            exc.object = type(exc.object)()  # type: ignore[attr-defined]


def classify(
    exc: BaseException,
    *,
    operation: str = "query",
    target: str = "",
    write: bool = False,
    connecting: bool = False,
    in_transaction: bool = False,
) -> ConnectorError | None:
    """Return the ``ConnectorError`` for driver exception ``exc``, or ``None``.

    ``None`` means ``exc`` is not a driver exception (a ``TypeError``, a
    ``KeyboardInterrupt``, ...) and must propagate unchanged.

    Args:
        exc: The exception psycopg or psycopg_pool raised.
        operation: What was being done ("query", "execute", "connect", ...),
            for the message.
        target: ``database@host:port``, for the message.
        write: The operation changes data: a lost connection leaves its
            outcome unknown (``maybe_applied``).
        connecting: The error came from opening a connection (class 08 and
            SQLSTATE-less errors then mean CONNECTION_FAILED).
        in_transaction: The statement ran inside an explicit transaction,
            which the server rolls back if the connection is lost: nothing
            can have been applied.
    """
    unknown_outcome = write and not in_transaction
    where = f"{CONNECTOR}: {operation} on {target}: " if target else f"{CONNECTOR}: {operation}: "
    # psycopg_pool errors subclass psycopg.OperationalError: check them first.
    if isinstance(exc, PoolConnectFailed) and isinstance(exc.__cause__, psycopg.Error):
        # The pool could not connect: say why, as connect() would (refused:
        # CONNECTION_FAILED, transient; a bad password: AUTH_FAILED).
        failed = classify(exc.__cause__, operation=operation, target=target, connecting=True)
        if failed is not None:
            return build_error(
                where + "no connection available from the pool; its last attempt to connect "
                f"failed: {_connect_message(str(exc.__cause__))}",
                ErrorRule(failed.code, failed.transient, failed.retry_hint),
                connector=CONNECTOR,
                details={**failed.details, "pool": "connect_failed"},
            )
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return build_error(
            where + f"no connection available from the pool ({exc})",
            _POOL_TIMEOUT,
            connector=CONNECTOR,
            details={"pool": "timeout"},
        )
    if isinstance(exc, psycopg_pool.TooManyRequests):
        return build_error(
            where + str(exc),
            _POOL_QUEUE_FULL,
            connector=CONNECTOR,
            details={"pool": "too_many_requests"},
        )
    if isinstance(exc, psycopg_pool.PoolClosed):
        return build_error(
            where + "the connection pool is closed", _POOL_CLOSED, connector=CONNECTOR
        )
    if isinstance(exc, _ENCODING_ERRORS):
        # psycopg could not turn a parameter (or the statement text) into
        # bytes: a lone surrogate, a number past its type, a structure
        # nested too deep. The value is never quoted.
        return build_error(
            where + f"a parameter or the statement cannot be encoded ({type(exc).__name__})",
            _UNENCODABLE,
            connector=CONNECTOR,
        )
    if not isinstance(exc, psycopg.Error):
        return None
    if isinstance(exc, StatementDeadlineExceeded):
        return build_error(
            where + str(exc),
            _CLIENT_DEADLINE,
            connector=CONNECTOR,
            maybe_applied=unknown_outcome,
        )
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return build_error(
            where + _connect_message(str(exc)), _CONNECT_TIMEOUT, connector=CONNECTOR
        )

    sqlstate = exc.sqlstate
    if sqlstate:
        rule = SQLSTATE_CODES.get(sqlstate) or SQLSTATE_CLASSES.get(sqlstate[:2])
        if rule is not None and connecting and rule.code is ErrorCode.CONNECTION_LOST:
            rule = _CONNECT_FAILED
        if rule is None:
            rule = _EXEC_FAILED if write else _QUERY_FAILED
        return build_error(
            where + _primary_message(exc, sqlstate),
            rule,
            connector=CONNECTOR,
            details=_details(exc, sqlstate),
            maybe_applied=unknown_outcome and _outcome_unknown(rule.code),
        )

    if connecting:
        message = _connect_message(str(exc))
        # No FATAL: the network failed (refused, unreachable, reset): transient.
        fallback = _CONNECT_REFUSED if "FATAL:" in str(exc) else _CONNECT_FAILED
        rule = next(
            (rule for pattern, rule in _CONNECT_MESSAGES if pattern.search(message)),
            fallback,
        )
        return build_error(where + message, rule, connector=CONNECTOR)

    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, psycopg.OperationalError) and _is_broken(exc):
        return build_error(
            where + message, _LOST, connector=CONNECTOR, maybe_applied=unknown_outcome
        )
    if isinstance(exc, (psycopg.InterfaceError, psycopg.ProgrammingError, psycopg.DataError)):
        return build_error(where + message, _CLIENT_SIDE, connector=CONNECTOR)
    return build_error(
        where + message, _EXEC_FAILED if write else _QUERY_FAILED, connector=CONNECTOR
    )


def _outcome_unknown(code: ErrorCode) -> bool:
    # The connection went away while a write was in flight: it may have committed.
    return code in (ErrorCode.CONNECTION_LOST, ErrorCode.UNAVAILABLE)


class translate(Translator):
    """Translate driver exceptions raised in the block into ``ConnectorError``.

    ``ConnectorError`` and non-driver exceptions pass through unchanged; the
    driver exception is kept as ``__cause__`` (scrubbed). Built on the core
    ``Translator``: a class, since it sits on every operation's hot path.
    ``translate(operation, target="", *, write=, connecting=, in_transaction=)``
    takes ``classify``'s keywords and hands them to it.

    Example::

        with translate("query", config.target):
            cursor.execute(sql, params)

    Raises:
        ConnectorError: Translated from the psycopg/psycopg_pool exception.
    """

    __slots__ = ()

    def classify(self, exc: Exception) -> ConnectorError | None:
        """The error for ``exc`` (see the module's table), with the block's keywords."""
        return classify(exc, **self.context)

    def scrub(self, exc: Exception) -> None:
        """Drop what the driver exception holds that may be secret."""
        scrub(exc)
