"""``PostgreSQLConnector``: psycopg 3 on a ``psycopg_pool.ConnectionPool``.

The connector's handle is the pool. Every operation checks a connection out
(health-checked on checkout, see ``PostgreSQLConfig.health_check``), runs on
it and gives it back; psycopg_pool replaces broken connections by itself, so
a lost connection never costs the whole pool. Connections run in autocommit
mode: a statement outside ``transaction()`` is its own transaction and costs
one round trip.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, overload

from dictamesh_connectors._compat import require
from dictamesh_connectors.base import Connector
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    RetryHint,
)
from dictamesh_connectors.postgresql.config import PostgreSQLConfig
from dictamesh_connectors.postgresql.errors import translate
from dictamesh_connectors.postgresql.query_builder import Table, identifier
from dictamesh_connectors.retry import RetryPolicy

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool
    from psycopg import sql
else:
    psycopg = require("psycopg", extra="postgresql", connector="postgresql")
    psycopg_pool = require("psycopg_pool", extra="postgresql", connector="postgresql")
    sql = require("psycopg.sql", extra="postgresql", connector="postgresql")

__all__ = ["ExecResult", "PostgreSQLConnector", "QueryResult", "RowStream", "Transaction"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R", bound="QueryResult")

SQL = str | bytes | sql.SQL | sql.Composed
"""A statement: a string with ``%s``/``%(name)s`` placeholders, or ``psycopg.sql`` objects."""
Params = Sequence[Any] | Mapping[str, Any] | None
"""Statement parameters: a sequence for ``%s``, a mapping for ``%(name)s``."""

_TX_RETRY_CODES = frozenset({ErrorCode.SERIALIZATION_FAILURE, ErrorCode.DEADLOCK})
_ISOLATION_LEVELS = frozenset(
    {"READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"}
)
_COPY_FORMATS = frozenset({"text", "csv", "binary"})
_GET_AND_SET_TIMEOUT = (
    "SELECT current_setting('statement_timeout'), set_config('statement_timeout', %s, %s)"
)
_SET_TIMEOUT = "SELECT set_config('statement_timeout', %s, %s)"
_stream_names = itertools.count(1)
_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK
_LAZY_COLUMNS_MAX_ROWS = 100
_BAD = psycopg.pq.ConnStatus.BAD
# health_check="auto": a connection given back less than this many seconds
# ago skips the checkout check (see PostgreSQLConnector._getconn) ...
# Server notices that announce the end of the session (admin shutdown, crash
# of another backend, shutdown in progress, idle session timeout).
_SESSION_ENDING_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P05"})
_RECENTLY_USED = 0.025
# ... unless a connection was found dead within this many seconds.
_SUSPICIOUS_FOR = 1.0
_RELEASED_AT = "_dictamesh_released_at"
_IDLE = psycopg.pq.TransactionStatus.IDLE
_INERROR = psycopg.pq.TransactionStatus.INERROR


class _Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


# --------------------------------------------------------------------- results


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


def _result(cls: type[R], cur: psycopg.Cursor[Any]) -> R:
    res = cur.pgresult
    if res is None or (not res.nfields and res.status != _TUPLES_OK):
        return cls([], [], cur.rowcount)
    return cls._from_cursor(cur)


# ------------------------------------------------------------------- helpers


def _timeout_ms(timeout: float) -> str:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidConfigError(f"timeout must be a number of seconds, got {timeout!r:.40}")
    if not (timeout > 0) or math.isinf(timeout):
        raise InvalidConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return str(max(1, math.ceil(timeout * 1000)))


def _execute(
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
    a failure rolls the setting back anyway).
    """
    cur = conn.cursor()
    if timeout is None:
        cur.execute(query, params)
        return cur
    ms = _timeout_ms(timeout)
    row = conn.execute(_GET_AND_SET_TIMEOUT, (ms, local)).fetchone()
    old = row[0] if row else "0"
    try:
        cur.execute(query, params)
    finally:
        if conn.pgconn.transaction_status != _INERROR:
            try:
                conn.execute(_SET_TIMEOUT, (old, local))
            except psycopg.Error:
                # Never hand a connection with a foreign timeout back to the pool.
                logger.debug(
                    "postgresql: could not restore statement_timeout; closing", exc_info=True
                )
                conn.close()
    return cur


def _begin_statement(isolation_level: str | None, read_only: bool, deferrable: bool) -> str:
    parts = ["BEGIN"]
    if isolation_level is not None:
        name = getattr(isolation_level, "name", isolation_level)
        key = str(name).replace("_", " ").strip().upper()
        if key not in _ISOLATION_LEVELS:
            raise InvalidConfigError(
                f"isolation_level must be one of {', '.join(sorted(_ISOLATION_LEVELS))}, "
                f"got {isolation_level!r:.40}"
            )
        parts.append("ISOLATION LEVEL " + key)
    if read_only:
        parts.append("READ ONLY")
    if deferrable:
        parts.append("DEFERRABLE")
    return " ".join(parts)


def _as_composable(query: SQL) -> sql.Composable:
    if isinstance(query, sql.Composable):
        return query
    if isinstance(query, bytes):
        query = query.decode()
    return sql.SQL(query)


def _copy_in_statement(table: Table, columns: Sequence[str]) -> sql.Composed:
    if isinstance(columns, str):
        columns = [columns]
    if not columns:
        raise InvalidConfigError("copy_in() needs at least one column")
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )


def _copy_out_statement(query: SQL, fmt: str, header: bool) -> sql.Composed:
    if fmt not in _COPY_FORMATS:
        raise InvalidConfigError(f"format must be one of {', '.join(sorted(_COPY_FORMATS))}")
    options: list[sql.Composable] = [sql.SQL("FORMAT ") + sql.SQL(fmt)]
    if header:
        if fmt != "csv":
            raise InvalidConfigError("header=True needs format='csv'")
        options.append(sql.SQL("HEADER true"))
    return sql.SQL("COPY ({}) TO STDOUT ({})").format(
        _as_composable(query), sql.SQL(", ").join(options)
    )


def _copy_rows(cur: psycopg.Cursor[Any], statement: sql.Composed, rows: Iterable[Any]) -> int:
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    return cur.rowcount


def _copy_to(
    cur: psycopg.Cursor[Any],
    statement: sql.Composed,
    params: Params,
    out: _Writable,
    sink: list[int],
) -> int:
    with cur.copy(statement, params) as copy:
        for chunk in copy:
            out.write(bytes(chunk))
            sink[0] += len(chunk)
    return cur.rowcount


# --------------------------------------------------------------- transaction


class Transaction:
    """One open transaction on one pooled connection (from ``PostgreSQLConnector.transaction``).

    Not thread-safe: a transaction belongs to the thread that opened it.
    After the ``with`` block ends, every method raises a ``ConnectorError``
    with code TRANSACTION_FAILED. Statements inside a
    transaction are never retried on their own; rerun the whole transaction
    (``run_in_transaction`` does that for serialization failures and deadlocks).

    Example::

        with db.transaction(isolation_level="serializable") as tx:
            balance = tx.query("SELECT balance FROM accounts WHERE id = %s", [1]).scalar()
            tx.execute("UPDATE accounts SET balance = %s WHERE id = %s", [balance - 10, 1])
            with tx.savepoint():
                tx.execute("INSERT INTO audit (note) VALUES (%s)", ["debit"])
    """

    def __init__(self, conn: psycopg.Connection[Any], target: str) -> None:
        self._conn = conn
        self._target = target
        self._active = True
        self._savepoints = 0

    @property
    def is_active(self) -> bool:
        """True until the ``with`` block that opened the transaction ends."""
        return self._active

    def _check(self) -> psycopg.Connection[Any]:
        if not self._active:
            raise ConnectorError(
                f"postgresql: transaction on {self._target}: the transaction is finished",
                code=ErrorCode.TRANSACTION_FAILED,
                connector="postgresql",
            )
        return self._conn

    def query(
        self, sql: SQL, params: Params = None, *, timeout: float | None = None
    ) -> QueryResult:
        """Run a statement in the transaction and fetch its rows.

        Args:
            sql: The statement, with ``%s`` or ``%(name)s`` placeholders.
            params: The values of the placeholders (never formatted into ``sql``).
            timeout: Seconds this statement may run (``statement_timeout``).

        Raises:
            ConnectorTimeoutError: The statement ran past ``timeout``.
            ConnectorError: The statement failed (classified by SQLSTATE);
                the transaction is then aborted.
        """
        conn = self._check()
        with translate("query", self._target, in_transaction=True):
            return _result(QueryResult, _execute(conn, sql, params, timeout, local=True))

    def execute(
        self, sql: SQL, params: Params = None, *, timeout: float | None = None
    ) -> ExecResult:
        """Run a write in the transaction.

        Returns:
            ``rows_affected`` and the rows of a ``RETURNING`` clause.

        Raises:
            ConnectorTimeoutError: The statement ran past ``timeout``.
            ConnectorError: The statement failed; the transaction is aborted.
        """
        conn = self._check()
        with translate("execute", self._target, write=True, in_transaction=True):
            result = _result(ExecResult, _execute(conn, sql, params, timeout, local=True))
        return result

    def executemany(
        self, sql: SQL, params_seq: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> ExecResult:
        """Run one statement for each parameter set, pipelined (one round trip per batch).

        Raises:
            ConnectorError: A statement failed; the transaction is aborted.
        """
        conn = self._check()
        with translate("executemany", self._target, write=True, in_transaction=True):
            cur = conn.cursor()
            with conn.pipeline():
                cur.executemany(sql, params_seq)
            return ExecResult([], [], cur.rowcount)

    def copy_in(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Bulk-load ``rows`` into ``table`` with ``COPY ... FROM STDIN``.

        Returns:
            The number of rows copied.

        Raises:
            InvalidConfigError: Bad table or column names.
            ConnectorError: The copy failed; the transaction is aborted.
        """
        statement = _copy_in_statement(table, columns)
        conn = self._check()
        with translate("copy_in", self._target, write=True, in_transaction=True):
            return _copy_rows(conn.cursor(), statement, rows)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested block that can fail without aborting the whole transaction.

        On an exception the block's changes are rolled back to the savepoint
        and the exception propagates; the transaction stays usable.

        Raises:
            ConnectorError: Creating, releasing or rolling back the savepoint failed.
        """
        conn = self._check()
        self._savepoints += 1
        name = sql.Identifier(f"dictamesh_sp_{self._savepoints}")
        with translate("savepoint", self._target, in_transaction=True):
            conn.execute(sql.SQL("SAVEPOINT {}").format(name))
        try:
            yield
        except BaseException:
            with translate("savepoint", self._target, in_transaction=True):
                conn.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(name))
                conn.execute(sql.SQL("RELEASE SAVEPOINT {}").format(name))
            raise
        with translate("savepoint", self._target, in_transaction=True):
            conn.execute(sql.SQL("RELEASE SAVEPOINT {}").format(name))

    def __repr__(self) -> str:
        state = "active" if self._active else "finished"
        return f"<Transaction {state} on {self._target}>"


# -------------------------------------------------------------------- stream


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


# ----------------------------------------------------------------- connector


class PostgreSQLConnector(Connector[PostgreSQLConfig, "psycopg_pool.ConnectionPool[Any]"]):
    """A thread-safe PostgreSQL client on a psycopg_pool connection pool.

    Thread safety: share one instance between every thread of a process.
    All methods may be called concurrently; each operation checks a
    connection out of the pool for its duration, and the connector lock is
    never held across network I/O. ``Transaction`` and ``RowStream`` objects
    belong to the thread that opened them. After ``os.fork()`` the child
    builds its own pool on first use and never touches the parent's sockets.

    Retries: a read (``query``, ``stream`` before its first row,
    ``copy_out`` before its first byte) whose connection was lost is retried
    once on a fresh connection. Writes are never retried: when the
    connection drops mid-write the error has ``maybe_applied=True``.
    ``run_in_transaction`` reruns a whole transaction function on
    serialization failures and deadlocks.

    Example::

        from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector

        config = PostgreSQLConfig.from_url("postgresql://app:pw@db:5432/app")
        with PostgreSQLConnector(config) as db:
            db.execute("INSERT INTO users (name) VALUES (%s)", ["Ada"])
            for row in db.query("SELECT id, name FROM users WHERE name = %s", ["Ada"]):
                print(row["id"], row["name"])
    """

    name: ClassVar[str] = "postgresql"
    config_class: ClassVar[type[PostgreSQLConfig]] = PostgreSQLConfig

    def __init__(self, config: PostgreSQLConfig) -> None:
        """Validate ``config`` and prepare a DISCONNECTED connector (no I/O).

        Raises:
            InvalidConfigError: ``config`` is not a valid ``PostgreSQLConfig``.
        """
        super().__init__(config)
        # The config is frozen: compute once what every operation needs.
        self._target = config.target
        self._ping_always = config.health_check == "always"
        self._no_check = config.health_check == "off"
        # Pooled connections whose server announced the end of the session.
        self._ended: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        # Until then, every checkout is checked (a connection was found dead).
        self._suspicious_until = 0.0
        self._max_checks = config.max_open_conns + 1

    # -------------------------------------------------------------- hooks

    def _connect_kwargs(self) -> dict[str, Any]:
        """libpq parameters for psycopg.connect / the pool. Holds the password: never log it."""
        c = self.config
        kwargs: dict[str, Any] = {
            "host": c.host,
            "port": c.port,
            "sslmode": c.ssl_mode,
            "connect_timeout": max(2, math.ceil(c.connect_timeout)),
            "application_name": c.application_name,
            "autocommit": True,
        }
        for key, value in (
            ("dbname", c.database),
            ("user", c.username),
            ("sslcert", c.ssl_cert),
            ("sslkey", c.ssl_key),
            ("sslrootcert", c.ssl_root_cert),
        ):
            if value is not None:
                kwargs[key] = value
        if c.password is not None:
            kwargs["password"] = c.password.get_secret_value()
        options = [c.options] if c.options else []
        if c.schema is not None:
            quoted = '"' + c.schema.replace('"', '""') + '"'
            options.append("-c search_path=" + _escape_option(quoted))
        options.append(f"-c statement_timeout={round(c.statement_timeout * 1000)}")
        kwargs["options"] = " ".join(options)
        return kwargs

    def _watch(self, conn: psycopg.Connection[Any]) -> None:
        """Pool ``configure`` hook: note when the server ends an idle session.

        A server that ends a session (restart, failover,
        ``pg_terminate_backend``, ``idle_session_timeout``) first sends a
        FATAL error; libpq hands an error that arrives on an idle connection
        to the notice handlers. After a crash of another backend, PostgreSQL
        14+ sends 57P02 as a WARNING before closing the socket, so the
        session-ending SQLSTATEs count whatever their severity.
        """
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

    def _healthy(self, conn: psycopg.Connection[Any]) -> bool:
        """Tell whether a connection just taken from the pool may be handed out.

        ``"auto"``: no round trip, no blocking, no GIL release. One
        non-blocking read takes in whatever the server sent while the
        connection sat idle: the FATAL message of an ended session (parsing
        it runs the notice hook of ``_watch``) or the EOF of a crashed one
        (the read fails). A healthy idle connection has nothing to read.
        ``"always"``: an empty query, one round trip.
        """
        try:
            if self._ping_always:
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

    def _getconn(
        self, pool: psycopg_pool.ConnectionPool[Any], timeout: float | None = None
    ) -> psycopg.Connection[Any]:
        """Check a healthy connection out of the pool (see ``health_check``).

        A broken one is closed and given back (the pool then opens a
        replacement) and the next one is tried, without psycopg_pool's
        backoff sleeps between checks: after a server restart every idle
        connection is dead, and each costs only one non-blocking read.

        Raises:
            psycopg_pool.PoolTimeout: No connection within the timeout.
        """
        conn: psycopg.Connection[Any] = pool.getconn(timeout)
        if self._no_check:
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
            if self._healthy(conn):
                return conn
            logger.info("postgresql: discarding a connection the server has closed")
            self._note_lost()
            with contextlib.suppress(Exception):
                conn.close()
            pool.putconn(conn)
            conn = pool.getconn(timeout)
        return conn  # only fresh connections are left by now

    def _note_lost(self) -> None:
        """A connection was found dead: check every checkout for a while."""
        # A lone float store: benign races, no lock needed.
        self._suspicious_until = time.monotonic() + _SUSPICIOUS_FOR

    def _open(self) -> psycopg_pool.ConnectionPool[Any]:
        c = self.config
        kwargs = self._connect_kwargs()
        # psycopg_pool only logs why it cannot connect; one direct attempt
        # with the same parameters surfaces the precise error (bad password,
        # unknown database, server down) at once.
        with translate("connect", c.target, connecting=True):
            psycopg.connect(**kwargs).close()
        pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            kwargs=kwargs,
            min_size=c.max_idle_conns,
            max_size=c.max_open_conns,
            open=False,
            timeout=c.pool_timeout,
            max_lifetime=c.conn_max_lifetime,
            max_idle=c.conn_max_idle_time,
            configure=None if c.health_check == "off" else self._watch,
            name=f"dictamesh-postgresql-{id(self):x}",
        )
        try:
            with translate("connect", c.target, connecting=True):
                pool.open(wait=True, timeout=max(c.connect_timeout * 2, 5.0))
        except ConnectorError as err:
            pool.close(timeout=0)
            if err.code is ErrorCode.TIMEOUT:
                # The server went away between the two steps: say what it is now.
                with translate("connect", c.target, connecting=True):
                    psycopg.connect(**kwargs).close()
                raise ConnectorError(
                    f"postgresql: connect on {c.target}: the pool could not open "
                    f"{c.max_idle_conns} connection(s) in time",
                    code=ErrorCode.CONNECTION_FAILED,
                    connector=self.name,
                ) from err
            raise
        return pool

    def _close(self, handle: psycopg_pool.ConnectionPool[Any], timeout: float | None) -> None:
        handle.close(timeout=5.0 if timeout is None else timeout)

    def _ping(self, handle: psycopg_pool.ConnectionPool[Any], timeout: float | None) -> None:
        with translate("ping", self._target):
            conn = self._getconn(handle, timeout)
            try:
                conn.execute("SELECT 1")
            finally:
                _putconn(handle, conn)

    def _translate_errors(self) -> contextlib.AbstractContextManager[None]:
        return translate("connect", self._target, connecting=True)

    def _on_connection_lost(
        self, handle: psycopg_pool.ConnectionPool[Any], error: ConnectorError
    ) -> None:
        # psycopg_pool heals itself: the broken connection is discarded when
        # it is returned, and idle ones are health-checked on checkout. Keep
        # the pool (and every healthy connection in it).
        logger.debug("postgresql: connection lost (%s); the pool replaces it", error.code.value)

    def _discard_after_fork(self, handle: psycopg_pool.ConnectionPool[Any]) -> None:
        # In the child, closing the parent's pool would send a Terminate
        # message on sockets the parent still uses. Mark the inherited pool
        # closed so neither close() nor its __del__ touches its connections;
        # psycopg itself skips PQfinish when a connection object is collected
        # in a process other than the one that opened it.
        handle._closed = True

    # --------------------------------------------------------- plumbing

    def _op(
        self,
        operation: str,
        body: Callable[[psycopg.Connection[Any]], T],
        *,
        write: bool,
        retry_once: Callable[[], bool] | None = None,
    ) -> T:
        """Run ``body(conn)`` on a pooled connection as one in-flight operation.

        Reads whose connection was lost are retried once on a fresh
        connection (when ``retry_once`` allows it); writes never are. This
        is the hot path of every operation: ``_use()`` does the in-flight
        accounting, without the general retry loop of ``_run()``.
        """
        translator = translate(operation, self._target, write=write)
        for attempt in (1, 2):
            try:
                with self._use() as pool, translator:
                    conn = self._getconn(pool)
                    try:
                        return body(conn)
                    finally:
                        _putconn(pool, conn)
            except ConnectorError as err:
                allowed = not write and self.config.retry_reads
                if not self._retry_lost(
                    operation, err, attempt, allowed and (retry_once is None or retry_once())
                ):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_lost(self, operation: str, err: ConnectorError, attempt: int, allowed: bool) -> bool:
        """After attempt ``attempt`` failed with ``err``: run it once more?

        Only a lost connection (hint RECONNECT) on the first attempt of an
        operation that may safely run twice (``allowed``) is retried, on a
        connection the checkout then health-checks whatever the 25 ms rule.
        """
        if err.retry_hint is not RetryHint.RECONNECT:
            return False
        self._note_lost()
        if attempt > 1 or not allowed:
            return False
        logger.warning(
            "postgresql: %s on %s lost its connection (%s: %s); retrying once",
            operation,
            self._target,
            err.code.value,
            err.message,
        )
        return True

    # -------------------------------------------------------- operations

    def query(
        self, sql: SQL, params: Params = None, *, timeout: float | None = None
    ) -> QueryResult:
        """Run a read and fetch all its rows.

        Outside a transaction; retried once on a fresh connection if the
        connection was lost, so the statement may run twice: use
        ``execute()`` for anything that changes data (``INSERT ... RETURNING``
        included).

        Args:
            sql: The statement, with ``%s`` or ``%(name)s`` placeholders.
            params: The values of the placeholders (sent separately, never
                formatted into ``sql``).
            timeout: Seconds this statement may run (``statement_timeout``;
                costs two extra round trips). ``None`` keeps the config's
                ``statement_timeout``.

        Returns:
            ``columns``, ``rows`` (dicts), ``first()``, ``scalar()``, ``rowcount``.

        Raises:
            ConnectorTimeoutError: The statement ran past its timeout, or no
                pooled connection was free within ``pool_timeout``.
            NotConnectedError: The connector is not connected.
            ConnectorError: The statement failed (classified by SQLSTATE).
        """
        return self._op(
            "query",
            lambda conn: _result(QueryResult, _execute(conn, sql, params, timeout, local=False)),
            write=False,
        )

    def execute(
        self, sql: SQL, params: Params = None, *, timeout: float | None = None
    ) -> ExecResult:
        """Run a write (its own transaction) and return what it did.

        Never retried: if the connection drops after the statement was sent,
        the error carries ``maybe_applied=True``.

        Args:
            sql: The statement, with ``%s`` or ``%(name)s`` placeholders.
            params: The values of the placeholders.
            timeout: Seconds this statement may run (``statement_timeout``).

        Returns:
            ``rows_affected``, and the rows of a ``RETURNING`` clause.

        Raises:
            ConnectorTimeoutError: The statement ran past its timeout (it was
                rolled back) or no pooled connection was free in time.
            NotConnectedError: The connector is not connected.
            ConnectorError: The statement failed (classified by SQLSTATE).
        """
        result = self._op(
            "execute",
            lambda conn: _result(ExecResult, _execute(conn, sql, params, timeout, local=False)),
            write=True,
        )
        return result

    def executemany(
        self, sql: SQL, params_seq: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> ExecResult:
        """Run one write for each parameter set, pipelined, all in one transaction.

        Either every statement takes effect or none does.

        Returns:
            ``rows_affected``: the total over all parameter sets.

        Raises:
            NotConnectedError: The connector is not connected.
            ConnectorError: A statement failed (nothing was applied), or the
                connection dropped during ``COMMIT`` (``maybe_applied=True``).
        """

        target = self._target

        def body(conn: psycopg.Connection[Any]) -> ExecResult:
            cur = conn.cursor()
            # Until COMMIT is sent, a lost connection means nothing happened.
            with translate("executemany", target, write=True, in_transaction=True):
                conn.execute("BEGIN")
                try:
                    with conn.pipeline():
                        cur.executemany(sql, params_seq)
                except BaseException:
                    _rollback_quietly(conn)
                    raise
            with translate("commit", target, write=True):
                conn.execute("COMMIT")
            return ExecResult([], [], cur.rowcount)

        return self._op("executemany", body, write=True)

    def copy_in(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Bulk-load rows with ``COPY table (columns) FROM STDIN``.

        ``rows`` may be any iterable (a generator streams without holding
        everything in memory). The load is atomic. Names are quoted with
        ``psycopg.sql.Identifier``; a table is a name or ``(schema, name)``.

        Returns:
            The number of rows copied.

        Raises:
            InvalidConfigError: Bad table or column names.
            NotConnectedError: The connector is not connected.
            ConnectorError: The copy failed (nothing was loaded), or the
                connection dropped (``maybe_applied=True``).
        """
        statement = _copy_in_statement(table, columns)
        return self._op(
            "copy_in", lambda conn: _copy_rows(conn.cursor(), statement, rows), write=True
        )

    @overload
    def copy_out(
        self,
        sql: SQL,
        params: Params = None,
        *,
        out: None = None,
        format: str = "csv",
        header: bool = False,
    ) -> bytes: ...

    @overload
    def copy_out(
        self,
        sql: SQL,
        params: Params = None,
        *,
        out: _Writable,
        format: str = "csv",
        header: bool = False,
    ) -> int: ...

    def copy_out(
        self,
        sql: SQL,
        params: Params = None,
        *,
        out: _Writable | None = None,
        format: str = "csv",
        header: bool = False,
    ) -> bytes | int:
        """Export the rows of a query with ``COPY (sql) TO STDOUT``.

        Args:
            sql: A query (``SELECT ...``, ``TABLE t``), placeholders allowed.
            params: Values of its placeholders (bound client-side by psycopg,
                safely quoted).
            out: Anything with ``write(bytes)`` (a file opened ``"wb"``, a
                socket, ``io.BytesIO``): the data is streamed there, chunk by
                chunk. ``None`` returns it as ``bytes`` instead.
            format: ``"csv"`` (default), ``"text"`` or ``"binary"``.
            header: Write a CSV header line.

        Returns:
            With ``out``: the number of rows exported. Without: the data.

        Raises:
            InvalidConfigError: A bad format.
            NotConnectedError: The connector is not connected.
            ConnectorError: The query failed; retried once on a fresh
                connection only if nothing was written to ``out`` yet.
        """
        statement = _copy_out_statement(sql, format, header)
        buffer = io.BytesIO()
        sink: _Writable = buffer if out is None else out
        written = [0]
        count = self._op(
            "copy_out",
            lambda conn: _copy_to(conn.cursor(), statement, params, sink, written),
            write=False,
            retry_once=lambda: written[0] == 0,
        )
        return buffer.getvalue() if out is None else count

    def stream(self, sql: SQL, params: Params = None, *, batch_size: int = 1000) -> RowStream:
        """Iterate over a large result through a server-side cursor, ``batch_size`` rows at a time.

        Memory stays flat whatever the size of the result. The cursor lives
        in a transaction on one pooled connection, opened at the first
        ``next()`` and ended (and the connection returned) when the stream
        is exhausted or closed::

            with db.stream("SELECT * FROM events", batch_size=5000) as rows:
                for row in rows:
                    handle(row)

        Raises:
            InvalidConfigError: ``batch_size`` is not a positive int.
            NotConnectedError: (while iterating) The connector is not connected.
            ConnectorError: (while iterating) The query or a fetch failed. A
                lost connection before the first row is retried once.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidConfigError("batch_size must be a positive int")

        def rows(columns: list[str]) -> Generator[dict[str, Any], None, None]:
            with self._use() as pool:
                yield from self._stream_rows(pool, columns, sql, params, batch_size)

        return RowStream(rows)

    def _stream_rows(
        self,
        pool: psycopg_pool.ConnectionPool[Any],
        columns: list[str],
        query: SQL,
        params: Params,
        batch_size: int,
    ) -> Iterator[dict[str, Any]]:
        target = self._target
        for attempt in (1, 2):
            try:
                with translate("stream", target):
                    conn = self._getconn(pool)
                    cur = conn.cursor(name=f"dictamesh_stream_{next(_stream_names)}")
                    try:
                        conn.execute("BEGIN")
                        cur.execute(query, params)
                        batch = cur.fetchmany(batch_size)
                    except BaseException:
                        _end_stream(pool, conn, cur)
                        raise
                break
            except ConnectorError as err:
                if not self._retry_lost("stream", err, attempt, self.config.retry_reads):
                    raise
        try:
            columns[:] = [c.name for c in cur.description or ()]
            while batch:
                for row in batch:
                    yield dict(zip(columns, row, strict=False))
                if len(batch) < batch_size:
                    break
                with translate("stream", target):
                    batch = cur.fetchmany(batch_size)
            with translate("stream", target):
                conn.execute("COMMIT")  # also closes the cursor
        finally:
            _end_stream(pool, conn, cur)

    # ------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(
        self,
        isolation_level: str | None = None,
        read_only: bool = False,
        deferrable: bool = False,
    ) -> Iterator[Transaction]:
        """Open a transaction on one pooled connection: commit on success, roll back on error.

        Any exception leaving the block rolls back and propagates; the
        connection always goes back to the pool idle and clean. A block that
        swallowed a failed statement and ended normally is rolled back and
        raises TRANSACTION_FAILED rather than pretending to commit.

        Args:
            isolation_level: ``"read committed"``, ``"repeatable read"``,
                ``"serializable"`` (or ``"read uncommitted"``, or a
                ``psycopg.IsolationLevel``); ``None`` is the server's default.
            read_only: ``BEGIN ... READ ONLY``.
            deferrable: ``BEGIN ... DEFERRABLE`` (serializable read-only
                transactions then never fail with serialization errors).

        Raises:
            InvalidConfigError: An unknown isolation level.
            NotConnectedError: The connector is not connected.
            ConnectorError: ``BEGIN`` or ``COMMIT`` failed: SERIALIZATION_FAILURE
                and DEADLOCK are transient (rerun the block), a lost
                connection during ``COMMIT`` has ``maybe_applied=True``.
        """
        begin = _begin_statement(isolation_level, read_only, deferrable)
        target = self._target
        with self._use() as pool:
            conn = self._begin(pool, begin)
            tx = Transaction(conn, target)
            try:
                try:
                    yield tx
                except BaseException as exc:
                    tx._active = False
                    if isinstance(exc, ConnectorError) and exc.retry_hint is RetryHint.RECONNECT:
                        self._note_lost()
                    _rollback_quietly(conn)
                    raise
                tx._active = False
                if conn.pgconn.transaction_status == _INERROR:
                    _rollback_quietly(conn)
                    raise ConnectorError(
                        f"postgresql: transaction on {target}: a statement failed inside "
                        "the block; the transaction was rolled back",
                        code=ErrorCode.TRANSACTION_FAILED,
                        connector=self.name,
                    )
                with translate("commit", target, write=True):
                    conn.execute("COMMIT")
            finally:
                if not conn.closed and (conn.pgconn.transaction_status != _IDLE):
                    _rollback_quietly(conn)
                _putconn(pool, conn)

    def _begin(self, pool: psycopg_pool.ConnectionPool[Any], begin: str) -> psycopg.Connection[Any]:
        # Nothing has happened yet, so a connection found dead at BEGIN is
        # replaced once, whatever the transaction does later.
        target = self._target
        for attempt in (1, 2):
            try:
                with translate("transaction", target):
                    conn = self._getconn(pool)
                    try:
                        conn.execute(begin)
                    except BaseException:
                        _putconn(pool, conn)
                        raise
                    return conn
            except ConnectorError as err:
                if not self._retry_lost("BEGIN", err, attempt, True):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def run_in_transaction(
        self,
        fn: Callable[[Transaction], T],
        *,
        isolation_level: str | None = "serializable",
        read_only: bool = False,
        deferrable: bool = False,
        retry: RetryPolicy | None = None,
    ) -> T:
        """Run ``fn(tx)`` in a transaction, rerunning it on serialization failure or deadlock.

        The whole function is rerun (its reads and decisions included) with
        backoff, up to ``retry`` (default: the config's policy). Any other
        error propagates at once. ``fn`` must not have side effects outside
        the database, since it may run more than once.

        Args:
            fn: The transaction body; receives the ``Transaction``.
            isolation_level: Defaults to ``"serializable"``.
            read_only: ``BEGIN ... READ ONLY``.
            deferrable: ``BEGIN ... DEFERRABLE``.
            retry: Attempts, backoff and deadline (waits use the
                connector's ``_sleep``/``_clock``/``_rand``, which tests replace).

        Returns:
            What ``fn`` returned, from the attempt that committed.

        Raises:
            ConnectorError: SERIALIZATION_FAILURE / DEADLOCK once the policy is
                exhausted; any other error at once.
        """
        policy = retry or self.config.retry
        clock = self._clock
        start = clock()
        for attempt in itertools.count(1):
            try:
                with self.transaction(isolation_level, read_only, deferrable) as tx:
                    return fn(tx)
            except ConnectorError as err:
                if err.code not in _TX_RETRY_CODES or attempt >= policy.max_attempts:
                    raise
                wait = policy.delay(attempt, self._rand())
                if policy.deadline is not None and clock() - start + wait > policy.deadline:
                    raise
                logger.warning(
                    "postgresql: transaction on %s failed (attempt %d of %d, %s); "
                    "rerunning in %.3fs",
                    self._target,
                    attempt,
                    policy.max_attempts,
                    err.code.value,
                    wait,
                )
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def _end_stream(
    pool: psycopg_pool.ConnectionPool[Any],
    conn: psycopg.Connection[Any],
    cur: psycopg.ServerCursor[Any],
) -> None:
    if conn.pgconn.transaction_status != _IDLE:
        # Stopped early or failed: the rollback also drops the server cursor.
        _rollback_quietly(conn)
    with contextlib.suppress(psycopg.Error):
        cur.close()  # the connection is idle now: this only marks it closed
    _putconn(pool, conn)


def _putconn(pool: psycopg_pool.ConnectionPool[Any], conn: psycopg.Connection[Any]) -> None:
    """Give a connection back, noting when (see ``PostgreSQLConnector._getconn``)."""
    # psycopg_pool keeps its own bookkeeping on the connection object too
    # (_pool, _expire_at); this is the connector's.
    setattr(conn, _RELEASED_AT, time.monotonic())
    pool.putconn(conn)


def _rollback_quietly(conn: psycopg.Connection[Any]) -> None:
    # The original error matters, not this one; a connection that cannot
    # roll back is broken and psycopg_pool discards it on return.
    try:
        conn.execute("ROLLBACK")
    except Exception:
        logger.debug("postgresql: rollback failed", exc_info=True)


def _escape_option(value: str) -> str:
    # libpq splits ``options`` on whitespace; a backslash escapes the next character.
    return value.replace("\\", "\\\\").replace(" ", "\\ ")
