"""``FakePostgreSQL``: the ``PostgreSQLConnector`` API over programmed results, no server.

There is no SQL engine: the fake records every statement (text and
parameters) and answers from results programmed with ``add_result`` (rows,
columns, rowcount) or errors programmed with ``add_error`` (a SQLSTATE,
classified by the real ``postgresql/errors.py`` table, so a programmed
``23505`` is the same CONSTRAINT_VIOLATION the real connector raises). A
statement nothing was programmed for returns an empty result (or raises
INVALID_REQUEST with ``strict=True``).

What is real: the lifecycle, in-flight accounting and ``disconnect()``
draining (the base ``Connector``), the result types (``QueryResult``,
``ExecResult``, ``RowStream``), the argument checks (isolation levels,
``COPY`` formats, table and column names, timeouts), the statements the
real connector sends for ``BEGIN``/savepoints/``COPY``, the retry rules (a
read that lost its connection is retried once, writes never,
``run_in_transaction`` reruns on serialization failures and deadlocks) and
the transaction rules (a failed statement aborts the transaction: later
ones raise TRANSACTION_FAILED, and a block that swallowed the error is
rolled back and raises TRANSACTION_FAILED).

Transactions are recorded: ``BEGIN``, ``COMMIT`` and ``ROLLBACK`` appear in
``statements``; a rollback (of the transaction, or to a savepoint) marks the
statements it undid ``rolled_back``; ``applied`` lists the writes that took
effect.

Operation names for ``fail_next`` / ``set_latency``: ``"connect"``,
``"ping"``, ``"query"``, ``"execute"``, ``"executemany"``, ``"copy_in"``,
``"copy_out"``, ``"stream"``, ``"transaction"`` (its ``BEGIN``) and
``"commit"`` (a transaction's ``COMMIT``); statements inside a transaction
use the names of its methods (``"query"``, ``"execute"``...).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from dictamesh_connectors import _fork
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
from dictamesh_connectors.postgresql.query_builder import Table
from dictamesh_connectors.postgresql.results import ExecResult, QueryResult, RowStream
from dictamesh_connectors.postgresql.session import Writable
from dictamesh_connectors.postgresql.statements import (
    SQL,
    Params,
    begin_statement,
    copy_in_statement,
    copy_out_statement,
    savepoint_statements,
)
from dictamesh_connectors.retry import RetryPolicy, retry_call, retry_once
from dictamesh_connectors.testing.fakes._faults import FaultInjection, FaultPlan, fault_operations
from dictamesh_connectors.testing.fakes._pg_program import (
    Program,
    Rows,
    RowsFactory,
    Statement,
    check_timeout,
    matcher,
    normalise,
    optional_int,
    render_copy,
    sql_text,
    words,
)

psycopg = require("psycopg", extra="postgresql", connector="postgresql")

__all__ = ["FakePostgreSQL", "FakeTransaction", "Program", "Statement"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R", bound=QueryResult)

_TX_RETRY_CODES = frozenset({ErrorCode.SERIALIZATION_FAILURE, ErrorCode.DEADLOCK})
_IN_FAILED = "25P02"
_IN_FAILED_MESSAGE = (
    "current transaction is aborted, commands ignored until end of transaction block"
)


class _Server:
    """The fake's handle: stands for the pool the real connector opens."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False


class FakePostgreSQL(FaultInjection, Connector[PostgreSQLConfig, _Server]):
    """The ``PostgreSQLConnector`` API answering from programmed results.

    Thread safety: as ``PostgreSQLConnector``: share one instance between
    threads; ``FakeTransaction`` and ``RowStream`` objects belong to the
    thread that opened them. Programs and the statement log may be read and
    changed from any thread; callables given as ``rows`` run with no lock held.

    Example::

        from dictamesh_connectors.testing.fakes import FakePostgreSQL

        with FakePostgreSQL() as db:
            db.add_result("SELECT name FROM users WHERE id = %s", rows=[{"name": "Ada"}])
            db.add_error("INSERT INTO users (id) VALUES (%s)", sqlstate="23505")
            assert db.query("SELECT name FROM users WHERE id = %s", [1]).scalar() == "Ada"

    Args:
        config: A ``PostgreSQLConfig``, a ``postgresql://`` URL, or ``None``
            (``PostgreSQLConfig(host="fake.invalid", database="fake")``).
        strict: Raise INVALID_REQUEST for a statement nothing was programmed
            for, instead of answering an empty result.

    Raises:
        InvalidConfigError: ``config`` is invalid.
    """

    name: ClassVar[str] = "postgresql"
    config_class: ClassVar[type[PostgreSQLConfig]] = PostgreSQLConfig

    def __init__(
        self, config: PostgreSQLConfig | str | None = None, *, strict: bool = False
    ) -> None:
        if config is None:
            config = PostgreSQLConfig(host="fake.invalid", database="fake")
        elif isinstance(config, str):
            config = PostgreSQLConfig.from_url(config)
        super().__init__(config)
        self._target = config.target
        self._strict = bool(strict)
        self._faults = FaultPlan(self.name, operations=fault_operations(type(self), "commit"))
        # Guards _programs, _log, _transactions and each Program's counters;
        # never held while a rows callable or a latency runs.
        self._data_lock = _fork.create_lock()
        self._programs: list[Program] = []  # guarded by _data_lock
        self._log: list[Statement] = []  # guarded by _data_lock
        self._transactions = 0  # guarded by _data_lock

    # ------------------------------------------------------------ programming

    def add_result(
        self,
        sql: str | re.Pattern[str],
        rows: Rows | RowsFactory | None = None,
        columns: Sequence[str] | None = None,
        rowcount: int | None = None,
        *,
        times: int | None = None,
    ) -> Program:
        """Program the result of the statements matching ``sql``.

        Programs are tried in the order they were added; one with ``times``
        answers that many statements and is then used up.

        Args:
            sql: The statement text (compared with whitespace runs collapsed
                and a trailing ``;`` dropped), or a compiled regex searched in it.
            rows: The rows, as dicts (column -> value) or tuples; or a
                callable computing them from the statement's parameters.
            columns: The column names (default: the keys of the first dict
                row; ``column1, column2...`` for tuples).
            rowcount: What ``rowcount`` / ``rows_affected`` reports
                (default: the number of rows).
            times: How many statements it answers (``None``: any number).

        Returns:
            The ``Program`` (its ``calls`` counts the statements it answered).

        Raises:
            InvalidConfigError: ``times`` below 1.
            TypeError: Arguments of the wrong type.
        """
        program = Program(
            matcher(sql),
            rows=rows,
            columns=columns,
            rowcount=optional_int("rowcount", rowcount, minimum=-1),
            error=None,
            times=optional_int("times", times, minimum=1),
        )
        with self._data_lock:  # programs
            self._programs.append(program)
        return program

    def add_error(
        self,
        sql: str | re.Pattern[str],
        sqlstate: str,
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        times: int | None = None,
    ) -> Program:
        """Program the statements matching ``sql`` to fail as the server would.

        The error is the psycopg exception for ``sqlstate``, translated by
        the real error table: ``"42P01"`` is NOT_FOUND, ``"23505"``
        CONSTRAINT_VIOLATION, ``"40001"`` SERIALIZATION_FAILURE (which
        ``run_in_transaction`` reruns), ``"57014"`` TIMEOUT...

        Args:
            sql: As ``add_result``.
            sqlstate: The five-character SQLSTATE.
            message: The server's primary message (default: the SQLSTATE's name).
            details: Extra ``details`` (``constraint``, ``table``...).
            times: How many statements fail (``None``: every one).

        Raises:
            InvalidConfigError: An unknown SQLSTATE, ``times`` below 1.
            TypeError: Arguments of the wrong type.
        """
        if not isinstance(sqlstate, str):
            raise TypeError(f"sqlstate must be a str, got {type(sqlstate).__name__}")
        try:
            cls = psycopg.errors.lookup(sqlstate)
        except KeyError:
            raise InvalidConfigError(f"unknown SQLSTATE {sqlstate!r:.10}") from None
        text = message if message is not None else words(cls.__name__)
        program = Program(
            matcher(sql),
            rows=None,
            columns=None,
            rowcount=None,
            error=(sqlstate, text, dict(details or {})),
            times=optional_int("times", times, minimum=1),
        )
        with self._data_lock:  # programs
            self._programs.append(program)
        return program

    @property
    def programs(self) -> list[Program]:
        """The programs still in use, in matching order."""
        with self._data_lock:  # programs
            return list(self._programs)

    @property
    def statements(self) -> list[Statement]:
        """Every statement received, in order, transaction control included."""
        with self._data_lock:  # statement log
            return list(self._log)

    @property
    def applied(self) -> list[Statement]:
        """The writes that took effect: autocommit ones and those of committed transactions."""
        with self._data_lock:  # statement log
            committed = {
                s.transaction for s in self._log if s.operation == "commit" and not s.rolled_back
            }
            return [
                s
                for s in self._log
                if s.is_write
                and not s.rolled_back
                and (s.transaction is None or s.transaction in committed)
            ]

    def reset(self) -> None:
        """Forget every program, recorded statement, fault and latency."""
        with self._data_lock:  # programs, statement log
            self._programs.clear()
            self._log.clear()
        self._faults.clear()

    # ------------------------------------------------------------------ hooks

    def _open(self) -> _Server:
        self._faults.check("connect")
        return _Server()

    def _close(self, handle: _Server, timeout: float | None) -> None:
        handle.closed = True

    def _ping(self, handle: _Server, timeout: float | None) -> None:
        self._faults.check("ping")

    def _on_connection_lost(self, handle: _Server, error: ConnectorError) -> None:
        # As the real connector: its pool replaces a broken connection by itself.
        logger.debug("postgresql: connection lost (%s); the pool replaces it", error.code.value)

    # --------------------------------------------------------------- the server

    def _record(self, statement: Statement) -> None:
        with self._data_lock:  # statement log
            self._log.append(statement)

    def _answer(
        self,
        cls: type[R],
        operation: str,
        sql: SQL,
        params: Any,
        *,
        transaction: int | None = None,
    ) -> R:
        """Record one statement and return (or raise) what was programmed for it.

        Raises:
            psycopg.Error: A programmed error (the caller's ``translate`` maps it).
            ConnectorError: ``strict`` and nothing programmed.
        """
        text = sql_text(sql)
        key = normalise(text)
        statement = Statement(sql=text, params=params, operation=operation, transaction=transaction)
        with self._data_lock:  # statement log, programs and their counters
            self._log.append(statement)
            program = self._match(key)
            if program is not None and program._error is not None:
                statement.rolled_back = True  # a failed statement did nothing
        if program is None:
            if self._strict:
                err = ConnectorError(
                    f"postgresql: {operation} on {self._target}: no result programmed on the "
                    f"fake for {key[:200]!r} (fake.add_result(...))",
                    code=ErrorCode.INVALID_REQUEST,
                    connector=self.name,
                    details={"unmatched": True},
                )
                raise err
            return cls([], [], 0)
        if program._error is not None:
            sqlstate, message, details = program._error
            exc = psycopg.errors.lookup(sqlstate)(message)
            exc._dm_details = details  # read back by _translating
            raise exc
        return program._result(cls, params)

    def _match(self, key: str) -> Program | None:
        """The first program for statement ``key``, its use counted (lock held)."""
        for index, program in enumerate(self._programs):
            if program._matches(key):
                program.calls += 1
                if program._left is not None:
                    program._left -= 1
                    if program._left <= 0:
                        del self._programs[index]
                return program
        return None

    @contextlib.contextmanager
    def _translating(
        self, operation: str, *, write: bool = False, in_transaction: bool = False
    ) -> Iterator[None]:
        """The real ``translate``, plus a programmed error's extra ``details``."""
        try:
            with translate(operation, self._target, write=write, in_transaction=in_transaction):
                yield
        except ConnectorError as err:
            extra = getattr(err.__cause__, "_dm_details", None)
            if extra:
                err.details.update(extra)
            raise

    # --------------------------------------------------------- plumbing

    def _op(
        self,
        operation: str,
        body: Callable[[int | None], T],
        *,
        write: bool,
        batch: int | None = None,
        may_repeat: Callable[[], bool] | None = None,
    ) -> T:
        """Run ``body(applied)`` as one in-flight operation, with the real connector's retry rule.

        ``applied`` is what the fault plan returned: ``None``, or how many
        items of the batch a partial fault lets through.
        """

        def attempt() -> T:
            with self._use(operation), self._translating(operation, write=write):
                return body(self._faults.check(operation, batch))

        def retry_if(err: ConnectorError, number: int) -> bool:
            repeat = not write and self.config.retry_reads and (may_repeat is None or may_repeat())
            return self._retry_lost(operation, err, number, repeat)

        return retry_once(attempt, retry_if)

    def _retry_lost(self, operation: str, err: ConnectorError, attempt: int, allowed: bool) -> bool:
        """The real rule: only a lost connection, on the first attempt, of a repeatable read."""
        if err.retry_hint is not RetryHint.RECONNECT or attempt > 1 or not allowed:
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
        """Run a read and return its programmed rows (``PostgreSQLConnector.query``).

        Raises:
            ConnectorTimeoutError: A programmed timeout (``57014``, or a fault).
            NotConnectedError: The connector is not connected.
            ConnectorError: A programmed error or fault.
            InvalidConfigError: A bad ``timeout``.
        """
        check_timeout(timeout)
        return self._op(
            "query", lambda _: self._answer(QueryResult, "query", sql, params), write=False
        )

    def execute(
        self, sql: SQL, params: Params = None, *, timeout: float | None = None
    ) -> ExecResult:
        """Run a write (its own transaction) (``PostgreSQLConnector.execute``).

        Never retried.

        Raises:
            NotConnectedError: The connector is not connected.
            ConnectorError: A programmed error or fault.
            InvalidConfigError: A bad ``timeout``.
        """
        check_timeout(timeout)
        return self._op(
            "execute", lambda _: self._answer(ExecResult, "execute", sql, params), write=True
        )

    def executemany(
        self, sql: SQL, params_seq: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> ExecResult:
        """Run one write per parameter set, all in one transaction (all or nothing).

        A programmed partial fault records the prefix of the batch it let
        through as rolled back (the batch is atomic) before raising.

        Returns:
            ``rows_affected``: the total over all parameter sets.

        Raises:
            NotConnectedError: The connector is not connected.
            ConnectorError: A statement failed (nothing was applied), or a fault.
        """
        batch = list(params_seq)
        return self._op(
            "executemany",
            lambda applied: self._run_batch("executemany", sql, batch, None, applied),
            write=True,
            batch=len(batch),
        )

    def _run_batch(
        self,
        operation: str,
        sql: SQL,
        batch: list[Any],
        transaction: int | None,
        applied: int | None = None,
    ) -> ExecResult:
        """Each parameter set as one statement; outside a transaction a failure undoes them all."""
        start = self._log_length()
        total = 0
        try:
            for params in batch if applied is None else batch[:applied]:
                result = self._answer(ExecResult, operation, sql, params, transaction=transaction)
                total += max(result.rowcount, 0)
        except BaseException:
            if transaction is None:
                self._mark_rolled_back(start)
            raise
        if applied is not None:
            if transaction is None:
                self._mark_rolled_back(start)
            raise self._faults.partial_error(operation, applied, len(batch))
        return ExecResult([], [], total)

    def copy_in(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Record a bulk load (``COPY ... FROM STDIN``, the real statement text).

        Returns:
            The number of rows copied.

        Raises:
            InvalidConfigError: Bad table or column names.
            NotConnectedError: The connector is not connected.
            ConnectorError: A programmed error (on the ``COPY`` text) or fault.
        """
        statement = copy_in_statement(table, columns)
        data = [tuple(row) for row in rows]
        return self._op(
            "copy_in",
            lambda applied: self._copy_in(statement, data, None, applied),
            write=True,
            batch=len(data),
        )

    def _copy_in(
        self,
        statement: SQL,
        data: list[tuple[Any, ...]],
        transaction: int | None,
        applied: int | None,
    ) -> int:
        """Record the ``COPY``; a partial fault loads a prefix that the failure then undoes."""
        if applied is None:
            self._answer(ExecResult, "copy_in", statement, data, transaction=transaction)
            return len(data)
        start = self._log_length()
        self._answer(ExecResult, "copy_in", statement, data[:applied], transaction=transaction)
        if transaction is None:
            self._mark_rolled_back(start)
        raise self._faults.partial_error("copy_in", applied, len(data))

    def copy_out(
        self,
        sql: SQL,
        params: Params = None,
        *,
        out: Writable | None = None,
        format: str = "csv",
        header: bool = False,
    ) -> bytes | int:
        """Export the programmed rows of ``sql`` as ``COPY ... TO STDOUT`` would.

        ``csv`` and ``text`` formats are rendered from the rows; ``binary``
        is UNSUPPORTED by the fake.

        Returns:
            With ``out``: the number of rows exported. Without: the data.

        Raises:
            InvalidConfigError: A bad format.
            NotConnectedError: The connector is not connected.
            ConnectorError: A programmed error or fault; UNSUPPORTED for binary.
        """
        copy_out_statement(sql, format, header)  # the real argument checks
        if format == "binary":
            raise ConnectorError(
                "postgresql: copy_out: FakePostgreSQL cannot produce COPY binary data",
                code=ErrorCode.UNSUPPORTED,
                connector=self.name,
            )

        def body(_: int | None) -> tuple[bytes, int]:
            result = self._answer(QueryResult, "copy_out", sql, params)
            return render_copy(result, format, header), len(result)

        data, count = self._op("copy_out", body, write=False)
        if out is None:
            return data
        out.write(data)
        return count

    def stream(self, sql: SQL, params: Params = None, *, batch_size: int = 1000) -> RowStream:
        """Iterate over the programmed rows of ``sql`` (``PostgreSQLConnector.stream``).

        As with the real one, nothing happens before the first ``next()``;
        the stream is an in-flight operation until exhausted or closed.

        Raises:
            InvalidConfigError: ``batch_size`` is not a positive int.
            NotConnectedError: (while iterating) The connector is not connected.
            ConnectorError: (while iterating) A programmed error or fault.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidConfigError("batch_size must be a positive int")

        def open_result() -> QueryResult:
            with self._translating("stream"):
                self._faults.check("stream")
                return self._answer(QueryResult, "stream", sql, params)

        def rows(columns: list[str]) -> Generator[dict[str, Any], None, None]:
            with self._use("stream"):
                retry_reads = self.config.retry_reads
                result = retry_once(
                    open_result,
                    lambda err, number: self._retry_lost("stream", err, number, retry_reads),
                )
                columns[:] = result.columns
                yield from result.rows

        return RowStream(rows)

    # ------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(
        self,
        isolation_level: str | None = None,
        read_only: bool = False,
        deferrable: bool = False,
    ) -> Iterator[FakeTransaction]:
        """A recorded transaction: commit on success, roll back on error.

        As ``PostgreSQLConnector.transaction``: an exception leaving the
        block rolls back and propagates; a block that swallowed a failed
        statement and ended normally is rolled back and raises
        TRANSACTION_FAILED. A failed ``COMMIT`` (a ``"commit"`` fault)
        undoes the transaction's statements unless the error has
        ``maybe_applied`` (then they stay applied: one possible truth).

        Raises:
            InvalidConfigError: An unknown isolation level.
            NotConnectedError: The connector is not connected.
            ConnectorError: A fault on ``"transaction"`` (BEGIN) or ``"commit"``.
        """
        begin = begin_statement(isolation_level, read_only, deferrable)
        target = self._target
        with self._use("transaction"):

            def begin_once() -> None:
                with translate("transaction", target):
                    self._faults.check("transaction")

            # As the real one: nothing has happened yet, so a connection
            # found dead at BEGIN is replaced once.
            retry_once(begin_once, lambda err, n: self._retry_lost("BEGIN", err, n, True))
            with self._data_lock:  # transaction numbers, statement log
                self._transactions += 1
                number = self._transactions
                start = len(self._log)
                self._log.append(Statement(sql=begin, operation="begin", transaction=number))
            tx = FakeTransaction(self, number, target)
            try:
                yield tx
            except BaseException:
                tx._finish()
                self._rollback(number, start)
                raise
            tx._finish()
            if tx._failed:
                self._rollback(number, start)
                raise ConnectorError(
                    f"postgresql: transaction on {target}: a statement failed inside "
                    "the block; the transaction was rolled back",
                    code=ErrorCode.TRANSACTION_FAILED,
                    connector=self.name,
                )
            try:
                with translate("commit", target, write=True):
                    self._faults.check("commit")
            except ConnectorError as err:
                if err.maybe_applied:  # the fake decides the COMMIT did arrive
                    self._record(Statement(sql="COMMIT", operation="commit", transaction=number))
                else:
                    self._rollback(number, start)
                raise
            self._record(Statement(sql="COMMIT", operation="commit", transaction=number))

    def _rollback(self, number: int, start: int) -> None:
        """Record ``ROLLBACK`` and mark what transaction ``number`` did since ``start`` undone."""
        self._mark_rolled_back(start, number)
        self._record(Statement(sql="ROLLBACK", operation="rollback", transaction=number))

    def _mark_rolled_back(self, start: int, transaction: int | None = None) -> None:
        with self._data_lock:  # statement log
            for statement in self._log[start:]:
                if statement.transaction == transaction and statement.operation != "rollback":
                    statement.rolled_back = True

    def _log_length(self) -> int:
        with self._data_lock:  # statement log
            return len(self._log)

    def run_in_transaction(
        self,
        fn: Callable[[FakeTransaction], T],
        *,
        isolation_level: str | None = "serializable",
        read_only: bool = False,
        deferrable: bool = False,
        retry: RetryPolicy | None = None,
    ) -> T:
        """Run ``fn(tx)`` in a transaction, rerun on serialization failure or deadlock.

        The real rule and loop (``retry.retry_call`` with the connector's
        ``_sleep``/``_clock``/``_rand``): program ``add_error(..., "40001",
        times=1)`` or ``fail_next("commit", code=ErrorCode.SERIALIZATION_FAILURE)``
        to see it rerun.

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
            retry_if=lambda err: err.code in _TX_RETRY_CODES,
            description=f"postgresql: transaction on {self._target}",
            sleep=self._sleep,
            clock=self._clock,
            rand=self._rand,
        )


class FakeTransaction:
    """One recorded transaction of a ``FakePostgreSQL`` (the ``Transaction`` API).

    Not thread-safe: a transaction belongs to the thread that opened it.
    After its block ends, every method raises TRANSACTION_FAILED. After a
    statement failed, every later one raises TRANSACTION_FAILED (the
    server's "current transaction is aborted"), until a savepoint block
    around the failure rolls back to its savepoint.

    Example::

        with db.transaction() as tx:
            tx.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", [10, 1])
    """

    def __init__(self, fake: FakePostgreSQL, number: int, target: str) -> None:
        self._fake = fake
        self._number = number
        self._target = target
        self._active = True
        self._failed = False
        self._savepoints = 0

    @property
    def is_active(self) -> bool:
        """True until the ``with`` block that opened the transaction ends."""
        return self._active

    def _finish(self) -> None:
        self._active = False

    def _check(self) -> None:
        if not self._active:
            raise ConnectorError(
                f"postgresql: transaction on {self._target}: the transaction is finished",
                code=ErrorCode.TRANSACTION_FAILED,
                connector="postgresql",
            )
        if self._failed:
            raise psycopg.errors.lookup(_IN_FAILED)(_IN_FAILED_MESSAGE)

    @contextlib.contextmanager
    def _statement(
        self, operation: str, *, write: bool, batch: int | None = None
    ) -> Iterator[int | None]:
        """Translate, check the fault plan, and mark the transaction failed on an error."""
        try:
            with self._fake._translating(operation, write=write, in_transaction=True):
                self._check()
                yield self._fake._faults.check(operation, batch)
        except ConnectorError:
            if self._active:
                self._failed = True  # the server aborts the transaction
            raise

    def query(
        self, sql: SQL, params: Params = None, *, timeout: float | None = None
    ) -> QueryResult:
        """Run a statement in the transaction and return its programmed rows.

        Raises:
            ConnectorError: A programmed error or fault (the transaction is
                then aborted), TRANSACTION_FAILED after a failure or the block.
        """
        check_timeout(timeout)
        with self._statement("query", write=False):
            return self._fake._answer(QueryResult, "query", sql, params, transaction=self._number)

    def execute(
        self, sql: SQL, params: Params = None, *, timeout: float | None = None
    ) -> ExecResult:
        """Run a write in the transaction.

        Raises:
            ConnectorError: A programmed error or fault; the transaction is aborted.
        """
        check_timeout(timeout)
        with self._statement("execute", write=True):
            return self._fake._answer(ExecResult, "execute", sql, params, transaction=self._number)

    def executemany(
        self, sql: SQL, params_seq: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> ExecResult:
        """Run one statement for each parameter set in the transaction.

        A partial fault runs the prefix it lets through, then fails (and
        aborts the transaction).

        Raises:
            ConnectorError: A statement failed; the transaction is aborted.
        """
        batch = list(params_seq)
        with self._statement("executemany", write=True, batch=len(batch)) as applied:
            return self._fake._run_batch("executemany", sql, batch, self._number, applied)

    def copy_in(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Record a bulk load of ``rows`` into ``table`` in the transaction.

        Returns:
            The number of rows copied.

        Raises:
            InvalidConfigError: Bad table or column names.
            ConnectorError: A programmed error or fault; the transaction is aborted.
        """
        statement = copy_in_statement(table, columns)
        data = [tuple(row) for row in rows]
        with self._statement("copy_in", write=True):
            self._fake._answer(ExecResult, "copy_in", statement, data, transaction=self._number)
            return len(data)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested block that can fail without aborting the whole transaction.

        On an exception the block's statements are marked rolled back (to
        the savepoint) and the exception propagates; the transaction stays
        usable.

        Raises:
            ConnectorError: The transaction is finished or already failed.
        """
        with translate("savepoint", self._target, in_transaction=True):
            self._check()
        self._savepoints += 1
        create, rollback_to, release = (sql_text(s) for s in savepoint_statements(self._savepoints))
        fake = self._fake
        fake._record(Statement(sql=create, operation="savepoint", transaction=self._number))
        start = fake._log_length()
        try:
            yield
        except BaseException:
            fake._mark_rolled_back(start, self._number)
            for text in (rollback_to, release):
                fake._record(Statement(sql=text, operation="savepoint", transaction=self._number))
            self._failed = False
            raise
        fake._record(Statement(sql=release, operation="savepoint", transaction=self._number))

    def __repr__(self) -> str:
        state = "active" if self._active else "finished"
        return f"<FakeTransaction {state} on {self._target}>"
