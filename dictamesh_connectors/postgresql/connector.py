"""``PostgreSQLConnector``: psycopg 3 on a ``psycopg_pool.ConnectionPool``.

The connector's handle is the pool. Every operation checks a connection out
(health-checked on checkout, see ``checkout.Checkout`` and
``PostgreSQLConfig.health_check``), runs on it and gives it back;
psycopg_pool replaces broken connections by itself, so a lost connection
never costs the whole pool. Connections run in autocommit mode: a statement
outside ``transaction()`` is its own transaction and costs one round trip.

This module holds the lifecycle and the verbs; the layers below live in
their own modules: ``results`` (what the verbs return), ``statements`` (the
SQL text), ``session`` (what runs on one connection), ``checkout`` (the
checkout check), ``transaction`` (``Transaction``) and ``errors``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from dictamesh_connectors._compat import require
from dictamesh_connectors.base import Connector
from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError, RetryHint
from dictamesh_connectors.observability_pools import psycopg_pool_stats
from dictamesh_connectors.postgresql.checkout import Checkout
from dictamesh_connectors.postgresql.config import PostgreSQLConfig
from dictamesh_connectors.postgresql.errors import translate
from dictamesh_connectors.postgresql.query_builder import Table
from dictamesh_connectors.postgresql.results import ExecResult, QueryResult, RowStream, result_of
from dictamesh_connectors.postgresql.session import (
    Writable,
    connection_class,
    copy_rows,
    copy_to,
    deadline,
    execute,
    pipelined,
    rollback_quietly,
)
from dictamesh_connectors.postgresql.statements import (
    SQL,
    Params,
    begin_statement,
    copy_in_statement,
    copy_out_statement,
    operation_name,
)
from dictamesh_connectors.postgresql.transaction import Transaction
from dictamesh_connectors.retry import RetryPolicy, retry_call, retry_once

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool
else:
    psycopg = require("psycopg", extra="postgresql", connector="postgresql")
    psycopg_pool = require("psycopg_pool", extra="postgresql", connector="postgresql")

__all__ = ["ExecResult", "PostgreSQLConnector", "QueryResult", "RowStream", "Transaction"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TX_RETRY_CODES = frozenset({ErrorCode.SERIALIZATION_FAILURE, ErrorCode.DEADLOCK})
_stream_names = itertools.count(1)
_IDLE = psycopg.pq.TransactionStatus.IDLE
_INERROR = psycopg.pq.TransactionStatus.INERROR


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
        self._checkout = Checkout(config.health_check, config.max_open_conns)

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
            min_size=c.min_open_conns,
            max_size=c.max_open_conns,
            open=False,
            timeout=c.pool_timeout,
            max_lifetime=c.conn_max_lifetime,
            max_idle=c.conn_max_idle_time,
            configure=self._checkout.configure,
            # Every round trip on a pooled connection has a client-side deadline.
            connection_class=connection_class(c.statement_timeout, self._checkout.connected),
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
                    f"{c.min_open_conns} connection(s) in time",
                    code=ErrorCode.CONNECTION_FAILED,
                    connector=self.name,
                ) from err
            raise
        return pool

    def _close(self, handle: psycopg_pool.ConnectionPool[Any], timeout: float | None) -> None:
        handle.close(timeout=5.0 if timeout is None else timeout)

    def _ping(self, handle: psycopg_pool.ConnectionPool[Any], timeout: float | None) -> None:
        with translate("ping", self._target):
            conn = self._checkout.getconn(handle, timeout)
            try:
                limit = self.config.statement_timeout if timeout is None else timeout
                with deadline(conn, limit):
                    conn.execute("SELECT 1")
            finally:
                self._checkout.putconn(handle, conn)

    def _translate_errors(self) -> contextlib.AbstractContextManager[None]:
        return translate("connect", self._target, connecting=True)

    def _pool_stats(self, handle: psycopg_pool.ConnectionPool[Any]) -> dict[str, Any]:
        return psycopg_pool_stats(handle)  # psycopg_pool's get_stats(): no I/O

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

    def _after_fork_in_child(self) -> None:
        # Called by the core's fork hook (_fork) and by its pid check. The
        # checkout state describes the parent's connections: forget it too.
        in_child = self._pid != os.getpid()
        super()._after_fork_in_child()
        if in_child:
            self._checkout.reset()

    # --------------------------------------------------------- plumbing

    def _op(
        self,
        operation: str,
        body: Callable[[psycopg.Connection[Any]], T],
        *,
        write: bool,
        may_repeat: Callable[[], bool] | None = None,
        sql: SQL | None = None,
    ) -> T:
        """Run ``body(conn)`` on a pooled connection as one in-flight operation.

        Reads whose connection was lost are retried once on a fresh
        connection (when ``may_repeat`` allows it); writes never are. This
        is the hot path of every operation: ``_use()`` does the in-flight
        accounting, without the general retry loop of ``_run()``. ``sql``
        (the statement) gives listeners its verb, worked out only when one
        is subscribed.
        """
        translator = translate(operation, self._target, write=write)
        checkout = self._checkout

        def attempt() -> T:
            op = self._use(operation)
            with op as pool, translator:
                if sql is not None and op._started:  # a listener is subscribed
                    _name_operation(op, sql)
                conn = checkout.getconn(pool)
                try:
                    return body(conn)
                finally:
                    checkout.putconn(pool, conn)

        def retry_if(err: ConnectorError, number: int) -> bool:
            repeat = not write and self.config.retry_reads and (may_repeat is None or may_repeat())
            return self._retry_lost(operation, err, number, repeat)

        return retry_once(attempt, retry_if)

    def _retry_lost(self, operation: str, err: ConnectorError, attempt: int, allowed: bool) -> bool:
        """After attempt ``attempt`` failed with ``err``: run it once more?

        Only a lost connection (hint RECONNECT) on the first attempt of an
        operation that may safely run twice (``allowed``) is retried, on a
        connection the checkout then health-checks whatever the 25 ms rule.
        """
        if err.retry_hint is not RetryHint.RECONNECT:
            return False
        self._checkout.note_lost()
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
            lambda conn: result_of(
                QueryResult,
                execute(conn, sql, params, timeout, local=False),
            ),
            write=False,
            sql=sql,
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
            lambda conn: result_of(
                ExecResult,
                execute(conn, sql, params, timeout, local=False),
            ),
            write=True,
            sql=sql,
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
                    pipelined(conn, cur, sql, params_seq)
                except BaseException:
                    rollback_quietly(conn)
                    raise
            with translate("commit", target, write=True):
                conn.execute("COMMIT")
            return ExecResult([], [], cur.rowcount)

        return self._op("executemany", body, write=True, sql=sql)

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
        statement = copy_in_statement(table, columns)
        return self._op(
            "copy_in",
            lambda conn: copy_rows(conn.cursor(), statement, rows),
            write=True,
            sql="COPY",
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
        out: Writable,
        format: str = "csv",
        header: bool = False,
    ) -> int: ...

    def copy_out(
        self,
        sql: SQL,
        params: Params = None,
        *,
        out: Writable | None = None,
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
        statement = copy_out_statement(sql, format, header)
        buffer = io.BytesIO()
        sink: Writable = buffer if out is None else out
        written = [0]
        count = self._op(
            "copy_out",
            lambda conn: copy_to(conn.cursor(), statement, params, sink, written),
            write=False,
            may_repeat=lambda: written[0] == 0,
            sql="COPY",
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
            op = self._use("stream")
            with op as pool:
                if op._started:  # a listener is subscribed
                    _name_operation(op, sql)
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

        def open_cursor() -> tuple[
            psycopg.Connection[Any], psycopg.ServerCursor[Any], list[tuple[Any, ...]]
        ]:
            with translate("stream", target):
                conn = self._checkout.getconn(pool)
                cur = conn.cursor(name=f"dictamesh_stream_{next(_stream_names)}")
                try:
                    conn.execute("BEGIN")
                    cur.execute(query, params)
                    return conn, cur, cur.fetchmany(batch_size)
                except BaseException:
                    self._end_stream(pool, conn, cur)
                    raise

        retry_reads = self.config.retry_reads
        conn, cur, batch = retry_once(
            open_cursor, lambda err, number: self._retry_lost("stream", err, number, retry_reads)
        )
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
            self._end_stream(pool, conn, cur)

    def _end_stream(
        self,
        pool: psycopg_pool.ConnectionPool[Any],
        conn: psycopg.Connection[Any],
        cur: psycopg.ServerCursor[Any],
    ) -> None:
        if conn.pgconn.transaction_status != _IDLE:
            # Stopped early or failed: the rollback also drops the server cursor.
            rollback_quietly(conn)
        with contextlib.suppress(psycopg.Error):
            cur.close()  # the connection is idle now: this only marks it closed
        self._checkout.putconn(pool, conn)

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
        begin = begin_statement(isolation_level, read_only, deferrable)
        target = self._target
        with self._use("transaction") as pool:
            conn = self._begin(pool, begin)
            tx = Transaction(conn, target)
            try:
                try:
                    yield tx
                except BaseException as exc:
                    tx._finish()
                    if isinstance(exc, ConnectorError) and exc.retry_hint is RetryHint.RECONNECT:
                        self._checkout.note_lost()
                    rollback_quietly(conn)
                    raise
                tx._finish()
                if conn.pgconn.transaction_status == _INERROR:
                    rollback_quietly(conn)
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
                    rollback_quietly(conn)
                self._checkout.putconn(pool, conn)

    def _begin(self, pool: psycopg_pool.ConnectionPool[Any], begin: str) -> psycopg.Connection[Any]:
        target = self._target

        def begin_once() -> psycopg.Connection[Any]:
            with translate("transaction", target):
                conn = self._checkout.getconn(pool)
                try:
                    conn.execute(begin)
                except BaseException:
                    self._checkout.putconn(pool, conn)
                    raise
                return conn

        # Nothing has happened yet, so a connection found dead at BEGIN is
        # replaced once, whatever the transaction does later.
        return retry_once(
            begin_once, lambda err, number: self._retry_lost("BEGIN", err, number, True)
        )

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
        backoff, up to ``retry`` (default: the config's policy), by the core
        retry loop (``retry.retry_call``, a WARNING per rerun). Any other
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

        def attempt() -> T:
            with self.transaction(isolation_level, read_only, deferrable) as tx:
                return fn(tx)

        return retry_call(
            attempt,
            retry or self.config.retry,
            retry_if=_is_conflict,
            description=f"postgresql: transaction on {self._target}",
            sleep=self._sleep,
            clock=self._clock,
            rand=self._rand,
        )


def _name_operation(op: Any, sql: SQL) -> None:
    """Give ``op``'s listeners the statement's verb (never its text)."""
    verb = operation_name(sql)
    if verb is not None:
        op._target = verb


def _is_conflict(err: ConnectorError) -> bool:
    """A serialization failure or a deadlock: rerunning the whole transaction may succeed."""
    return err.code in _TX_RETRY_CODES


def _escape_option(value: str) -> str:
    # libpq splits ``options`` on whitespace; a backslash escapes the next character.
    return value.replace("\\", "\\\\").replace(" ", "\\ ")
