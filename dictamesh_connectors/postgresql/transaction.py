"""``Transaction``: the statements of one open transaction, on one pooled connection.

``PostgreSQLConnector.transaction()`` checks the connection out, sends
``BEGIN``, hands out a ``Transaction``, and ends it (``COMMIT`` or
``ROLLBACK``, then ``_finish()``) when its block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.postgresql.errors import translate
from dictamesh_connectors.postgresql.query_builder import Table
from dictamesh_connectors.postgresql.results import ExecResult, QueryResult, result_of
from dictamesh_connectors.postgresql.session import copy_rows, execute, pipelined
from dictamesh_connectors.postgresql.statements import (
    SQL,
    Params,
    copy_in_statement,
    savepoint_statements,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["Transaction"]


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
        """A transaction open on ``conn`` (``target`` names the server in errors)."""
        self._conn = conn
        self._target = target
        self._active = True
        self._savepoints = 0

    @property
    def is_active(self) -> bool:
        """True until the ``with`` block that opened the transaction ends."""
        return self._active

    def _finish(self) -> None:
        """The block ended: from now on every method raises TRANSACTION_FAILED."""
        self._active = False

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
            return result_of(QueryResult, execute(conn, sql, params, timeout, local=True))

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
            result = result_of(ExecResult, execute(conn, sql, params, timeout, local=True))
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
            pipelined(conn, cur, sql, params_seq)
            return ExecResult([], [], cur.rowcount)

    def copy_in(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Bulk-load ``rows`` into ``table`` with ``COPY ... FROM STDIN``.

        Returns:
            The number of rows copied.

        Raises:
            InvalidConfigError: Bad table or column names.
            ConnectorError: The copy failed; the transaction is aborted.
        """
        statement = copy_in_statement(table, columns)
        conn = self._check()
        with translate("copy_in", self._target, write=True, in_transaction=True):
            return copy_rows(conn.cursor(), statement, rows)

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
        create, rollback_to, release = savepoint_statements(self._savepoints)
        with translate("savepoint", self._target, in_transaction=True):
            conn.execute(create)
        try:
            yield
        except BaseException:
            with translate("savepoint", self._target, in_transaction=True):
                conn.execute(rollback_to)
                conn.execute(release)
            raise
        with translate("savepoint", self._target, in_transaction=True):
            conn.execute(release)

    def __repr__(self) -> str:
        state = "active" if self._active else "finished"
        return f"<Transaction {state} on {self._target}>"
