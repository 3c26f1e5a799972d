"""``MongoDBConnector``: pymongo's ``MongoClient``, shared by every thread.

The connector's handle is one ``MongoClient`` (its connection pool serves
every thread) plus a cache of ``Collection`` objects, so an operation costs
a dict lookup on top of pymongo. Every verb returns plain Python values
(ids, counts, documents, lists), never pymongo result objects, and every
pymongo/bson exception leaves as a ``ConnectorError`` (see ``errors.py``).

Retries are pymongo's: retryable reads and writes are retried once by the
driver (``retry_reads``/``retry_writes``); the connector adds nothing on top,
and a write whose outcome the driver cannot know carries ``maybe_applied``.
``run_in_transaction`` follows the driver's transaction rules (rerun on
TransientTransactionError, retry the commit on UnknownTransactionCommitResult).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import attrs

from dictamesh_connectors._compat import require
from dictamesh_connectors.base import Connector
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    ErrorRule,
    InvalidConfigError,
    RetryHint,
    build_error,
)
from dictamesh_connectors.mongodb.config import READ_CONCERNS, READ_PREFERENCES, MongoDBConfig
from dictamesh_connectors.mongodb.documents import (
    bad_request,
    call_timeout,
    check_collection,
    check_database,
    max_time_ms,
    seconds,
    wrong_type,
)
from dictamesh_connectors.mongodb.errors import translate
from dictamesh_connectors.mongodb.poolstats import pool_snapshot
from dictamesh_connectors.mongodb.verbs import (
    Body,
    Document,
    DocumentStream,
    _iterate,
    _Verbs,
)
from dictamesh_connectors.retry import MAX_ATTEMPTS_LIMIT, MAX_SECONDS, retry_call

if TYPE_CHECKING:
    import pymongo
    from pymongo.client_session import ClientSession
    from pymongo.collection import Collection
else:
    pymongo = require("pymongo", extra="mongodb", connector="mongodb")
    require("pymongo.errors", extra="mongodb", connector="mongodb")
    require("pymongo.read_concern", extra="mongodb", connector="mongodb")
    require("pymongo.write_concern", extra="mongodb", connector="mongodb")
    require("pymongo.read_preferences", extra="mongodb", connector="mongodb")

__all__ = ["DocumentStream", "MongoDBConnector", "Transaction"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT_TX = "TransientTransactionError"
_UNKNOWN_COMMIT = "UnknownTransactionCommitResult"
_MAX_CACHED_COLLECTIONS = 1024
_FINISHED = ErrorRule(ErrorCode.TRANSACTION_FAILED, False, RetryHint.NONE)
_DEFAULT_TX_DEADLINE = 120.0  # pymongo's with_transaction limit


# ------------------------------------------------------------------- handle


class _Handle:
    """The connector's handle: the client, its database and a Collection cache.

    The cache is a plain dict: lookups and inserts are atomic under the GIL,
    and a lost race only builds one Collection twice.
    """

    __slots__ = ("client", "collections", "database")

    def __init__(self, client: pymongo.MongoClient[Document], database: str) -> None:
        self.client = client
        self.database = client.get_database(database)
        self.collections: dict[str, Collection[Document]] = {}

    def collection(self, name: str) -> Collection[Document]:
        try:
            coll = self.collections.get(name)
        except TypeError:  # unhashable, so not a str: say so as any other wrong type
            check_collection(name)
            raise
        if coll is None:
            coll = self.database.get_collection(check_collection(name))
            if len(self.collections) < _MAX_CACHED_COLLECTIONS:
                self.collections[name] = coll
        return coll

    def __repr__(self) -> str:
        return f"<mongodb handle {self.database.name}>"


def _has_label(err: ConnectorError, label: str) -> bool:
    return label in err.details.get("labels", ())


def _rerun_transaction(err: ConnectorError) -> bool:
    """``run_in_transaction``'s ``retry_if``: the error carries TransientTransactionError."""
    return _has_label(err, _TRANSIENT_TX)


def _transaction_options(
    read_concern: str | None,
    write_concern: Mapping[str, Any] | None,
    read_preference: str | None,
    max_commit_time: float | None,
) -> dict[str, Any]:
    """``ClientSession.start_transaction`` keywords, checked before any I/O."""
    options: dict[str, Any] = {}
    if read_concern is not None:
        if not isinstance(read_concern, str) or read_concern not in READ_CONCERNS:
            raise InvalidConfigError(
                f"read_concern must be one of {', '.join(sorted(READ_CONCERNS))}",
                connector="mongodb",
            )
        options["read_concern"] = pymongo.read_concern.ReadConcern(read_concern)
    if write_concern is not None:
        if not isinstance(write_concern, Mapping) or set(write_concern) - {"w", "j", "wtimeout"}:
            raise InvalidConfigError(
                "write_concern is a mapping of w, j and wtimeout (ms)", connector="mongodb"
            )
        try:
            options["write_concern"] = pymongo.write_concern.WriteConcern(**write_concern)
        except (TypeError, ValueError, pymongo.errors.ConfigurationError):
            raise InvalidConfigError("invalid write_concern", connector="mongodb") from None
    if read_preference is not None:
        if not isinstance(read_preference, str) or read_preference not in READ_PREFERENCES:
            raise InvalidConfigError(
                f"read_preference must be one of {', '.join(sorted(READ_PREFERENCES))}",
                connector="mongodb",
            )
        options["read_preference"] = pymongo.read_preferences.read_pref_mode_from_name(
            read_preference
        )
    if max_commit_time is not None:
        options["max_commit_time_ms"] = max_time_ms(max_commit_time)
    return options


def _abort_quietly(session: ClientSession) -> None:
    # The original error matters, not this one; the server aborts an
    # abandoned transaction by itself after transactionLifetimeLimitSeconds.
    try:
        if session.in_transaction:
            session.abort_transaction()
    except Exception:
        logger.debug("mongodb: abortTransaction failed", exc_info=True)


# --------------------------------------------------------------- transaction


class Transaction(_Verbs):
    """One open transaction on one ``ClientSession`` (from ``MongoDBConnector.transaction``).

    It has every verb of the connector, bound to the session. Not
    thread-safe: a transaction belongs to the thread that opened it. After
    the block ends, every verb raises TRANSACTION_FAILED. Operations inside
    a transaction are never retried on their own; rerun the whole
    transaction (``run_in_transaction`` does that on TransientTransactionError).

    Example::

        with db.transaction() as tx:
            tx.update_one("accounts", {"_id": 1}, {"$inc": {"balance": -10}})
            tx.update_one("accounts", {"_id": 2}, {"$inc": {"balance": 10}})
    """

    def __init__(self, handle: _Handle, session: ClientSession, target: str) -> None:
        self._handle = handle
        self._session = session
        self._target = target
        self._active = True

    @property
    def is_active(self) -> bool:
        """True until the block that opened the transaction ends."""
        return self._active

    def _check(self) -> ClientSession:
        if not self._active:
            raise build_error(
                f"mongodb: transaction on {self._target}: the transaction is finished",
                _FINISHED,
                connector="mongodb",
            )
        return self._session

    def _call(
        self,
        operation: str,
        name: str,
        body: Body[T],
        write: bool,
        retried: bool,
        timeout: float | None,
        session: Transaction | None,
    ) -> T:
        if session is not None and session is not self:
            raise wrong_type("a verb of a Transaction cannot run in another session")
        limit = call_timeout(timeout)
        s = self._check()
        with translate(operation, self._target, write=write, in_transaction=True):
            coll = self._handle.collection(name)
            if limit is None:
                return body(coll, s)
            with pymongo.timeout(limit):
                return body(coll, s)

    def _open_stream(
        self,
        operation: str,
        name: str,
        open_cursor: Callable[[Collection[Document], ClientSession | None], Any],
        timeout: float | None,
        session: Transaction | None,
    ) -> DocumentStream:
        if session is not None and session is not self:
            raise wrong_type("a verb of a Transaction cannot run in another session")
        s = self._check()
        t = call_timeout(timeout)
        translator = translate(operation, self._target, in_transaction=True)
        with translator:
            cursor = open_cursor(self._handle.collection(name), s)
        return DocumentStream(_iterate(cursor, translator, t))

    def execute(
        self,
        command: str | Mapping[str, Any],
        *,
        database: str | None = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> Document:
        """Run a database command in this transaction (``MongoDBConnector.execute``).

        Raises:
            ArgumentTypeError: As ``MongoDBConnector.execute``, or ``session``
                is another transaction.
            ConnectorError: TRANSACTION_FAILED after the block ended; the
                command failed (classified by code).
        """
        if session is not None and session is not self:
            raise wrong_type("a verb of a Transaction cannot run in another session")
        cmd, limit = _command_args(command, database, timeout)
        return self._execute(cmd, database, limit)

    def _execute(self, command: Any, database: str | None, limit: float | None) -> Document:
        s = self._check()
        with translate("execute", self._target, write=True, in_transaction=True):
            return _run_command(self._handle, command, database, limit, s)

    def __repr__(self) -> str:
        state = "active" if self._active else "finished"
        return f"<Transaction {state} on {self._target}>"


# ----------------------------------------------------------------- connector


# Seconds close() gets for endSessions/killCursors even when disconnect's
# time is already spent (0 would be "no limit" to pymongo.timeout).
_MIN_CLOSE_TIMEOUT = 0.05


class MongoDBConnector(_Verbs, Connector[MongoDBConfig, _Handle]):
    """A thread-safe MongoDB client on one pymongo ``MongoClient``.

    Thread safety: share one instance between every thread of a process.
    Every method may be called concurrently; the client's pool gives each
    operation a connection, and the connector lock is never held across
    network I/O. ``Transaction`` and ``DocumentStream`` objects belong to
    the thread that opened them. After ``os.fork()`` the child builds its
    own client on first use and never touches the parent's sockets.

    Retries: pymongo retries retryable reads and writes once
    (``retry_reads``/``retry_writes``); nothing is added on top. A write
    whose outcome is unknown carries ``maybe_applied=True``.
    ``run_in_transaction`` reruns a transaction function on
    TransientTransactionError and retries its commit on
    UnknownTransactionCommitResult.

    Example::

        from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector

        config = MongoDBConfig.from_url("mongodb://app:pw@db1,db2/app?replicaSet=rs0")
        with MongoDBConnector(config) as db:
            user_id = db.insert_one("users", {"name": "Ada"})
            print(db.find_one("users", {"_id": user_id}))
    """

    name: ClassVar[str] = "mongodb"
    config_class: ClassVar[type[MongoDBConfig]] = MongoDBConfig

    def __init__(self, config: MongoDBConfig) -> None:
        """Validate ``config`` and prepare a DISCONNECTED connector (no I/O).

        Raises:
            InvalidConfigError: ``config`` is not a valid ``MongoDBConfig``.
        """
        super().__init__(config)
        # The config is frozen: compute once what every operation needs.
        self._target = config.target
        self._retry_writes = config.retry_writes
        # (operation, write, retried) -> its translator (a dict store or
        # lookup is atomic: racing threads at worst make one twice).
        self._translators: dict[tuple[str, bool, bool], translate] = {}

    # -------------------------------------------------------------- hooks

    def _client_kwargs(self) -> dict[str, Any]:
        """``MongoClient`` keywords. Holds the password: never log it."""
        c = self.config
        kwargs: dict[str, Any] = {
            "host": f"mongodb+srv://{c.hosts[0]}/" if c.srv else list(c.hosts),
            "connect": False,
            "appname": c.app_name,
            "maxPoolSize": c.max_pool_size,
            "minPoolSize": c.min_pool_size,
            "waitQueueTimeoutMS": _ms(c.wait_queue_timeout),
            "connectTimeoutMS": _ms(c.connect_timeout),
            "serverSelectionTimeoutMS": _ms(c.server_selection_timeout),
            "socketTimeoutMS": _ms(c.socket_timeout),
            "heartbeatFrequencyMS": _ms(c.heartbeat_frequency),
            "retryWrites": c.retry_writes,
            "retryReads": c.retry_reads,
            "readPreference": c.read_preference,
            "uuidRepresentation": c.uuid_representation,
            "tz_aware": c.tz_aware,
            "tls": c.tls,
        }
        for key, value in (
            ("username", c.username),
            ("authSource", c.auth_source),
            ("authMechanism", c.auth_mechanism),
            ("replicaSet", c.replica_set),
            ("directConnection", c.direct_connection),
            ("tlsCAFile", c.ca_file),
            ("tlsCertificateKeyFile", c.cert_key_file),
            ("readConcernLevel", c.read_concern),
            ("w", c.w),
            ("journal", c.journal),
            ("maxIdleTimeMS", _ms(c.max_idle_time)),
            ("wTimeoutMS", _ms(c.wtimeout)),
        ):
            if value is not None:
                kwargs[key] = value
        if c.tls and c.allow_invalid_hostnames:
            kwargs["tlsAllowInvalidHostnames"] = True
        if c.password is not None:
            kwargs["password"] = c.password.get_secret_value()
        return kwargs

    def _open(self) -> _Handle:
        c = self.config
        with translate("connect", self._target):
            client: pymongo.MongoClient[Document] = pymongo.MongoClient(**self._client_kwargs())
        try:
            # Prove the server (and the credentials) within server_selection_timeout.
            with (
                translate("connect", self._target),
                pymongo.timeout(c.server_selection_timeout + c.connect_timeout),
            ):
                client.admin.command("ping")
        except BaseException:
            client.close()
            raise
        return _Handle(client, c.database)

    def _close(self, handle: _Handle, timeout: float | None) -> None:
        if timeout is None:
            handle.client.close()
            return
        # close() sends endSessions and killCursors, each after a server
        # selection: through a dead network that is twice
        # server_selection_timeout. Under pymongo's timeout() both give up
        # when disconnect's time is spent (close() ignores their errors, as
        # the driver spec says; the server expires the sessions itself), and
        # the sockets and monitors are closed all the same.
        with pymongo.timeout(max(timeout, _MIN_CLOSE_TIMEOUT)):
            handle.client.close()

    def _pool_stats(self, handle: _Handle) -> dict[str, Any]:
        return pool_snapshot(handle.client, self.config.max_pool_size)

    def _ping(self, handle: _Handle, timeout: float | None) -> None:
        limit = call_timeout(timeout)
        with translate("ping", self._target):
            if limit is None:
                handle.client.admin.command("ping")
            else:
                with pymongo.timeout(limit):
                    handle.client.admin.command("ping")

    def _translate_errors(self) -> contextlib.AbstractContextManager[None]:
        return translate("connect", self._target)

    def _on_connection_lost(self, handle: _Handle, error: ConnectorError) -> None:
        # pymongo's pool discards a broken connection and its monitor
        # rediscovers the server: keep the client (and every healthy socket).
        logger.debug("mongodb: connection lost (%s); the driver reconnects", error.code.value)

    def _discard_after_fork(self, handle: _Handle) -> None:
        # pymongo's own fork hook has already given the inherited client a
        # fresh, unopened topology in this child; closing it here would end
        # the parent's server sessions. Drop it: the child opens its own.
        handle.collections.clear()

    # --------------------------------------------------------- plumbing

    def _call(
        self,
        operation: str,
        name: str,
        body: Body[T],
        write: bool,
        retried: bool,
        timeout: float | None,
        session: Transaction | None,
    ) -> T:
        """Run ``body(collection, None)`` as one in-flight, translated operation.

        The hot path of every verb: ``_use()`` does the in-flight
        accounting, without the general retry loop of ``_run()`` (pymongo
        retries what is retryable).
        """
        if session is not None:
            if not isinstance(session, Transaction):
                raise wrong_type(f"session must be a Transaction, not {type(session).__name__}")
            return session._call(
                operation,
                name,
                body,
                write=write,
                retried=retried,
                timeout=timeout,
                session=session,
            )
        limit = None if timeout is None else call_timeout(timeout)
        op = self._use(operation)
        op._target = name  # the collection, for listeners (spans): read only by them
        if limit is None:
            with op as handle:
                # The translator's with-block, spelled out: its __enter__ and a
                # clean __exit__ were two Python calls on every operation, and
                # it is looked up only when there is an error to translate.
                try:
                    try:
                        coll = handle.collections[name]
                    except (KeyError, TypeError):  # not cached yet, or not a str
                        coll = handle.collection(name)
                    return body(coll, None)
                except BaseException as exc:
                    translator = self._translator(operation, write, retried)
                    translator.__exit__(type(exc), exc, exc.__traceback__)  # raises it translated
                    raise
        with op as handle, self._translator(operation, write, retried), pymongo.timeout(limit):
            return body(handle.collection(name), None)

    def _translator(self, operation: str, write: bool, retried: bool) -> translate:
        """The ``translate()`` context of a verb shape (they hold no per-call state: made once)."""
        translator = self._translators.get((operation, write, retried))
        if translator is None:
            translator = translate(
                operation, self._target, write=write, retried=retried and self._retry_writes
            )
            self._translators[(operation, write, retried)] = translator
        return translator

    def _open_stream(
        self,
        operation: str,
        name: str,
        open_cursor: Callable[[Collection[Document], ClientSession | None], Any],
        timeout: float | None,
        session: Transaction | None,
    ) -> DocumentStream:
        if session is not None:
            if not isinstance(session, Transaction):
                raise wrong_type(f"session must be a Transaction, not {type(session).__name__}")
            return session._open_stream(operation, name, open_cursor, timeout, session)
        check_collection(name)
        limit = call_timeout(timeout)
        translator = translate(operation, self._target)
        return DocumentStream(_stream(self, name, open_cursor, translator, limit))

    def execute(
        self,
        command: str | Mapping[str, Any],
        *,
        database: str | None = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> Document:
        """Run a database command (``{"collMod": ...}``, ``"dbStats"``) and return its reply.

        Never retried by the connector (a command may be a write).

        Args:
            command: The command document (its first key names the command),
                or a command name.
            database: Run it on this database instead of the config's.
            timeout: Seconds for the call, client side.
            session: A ``Transaction`` to run in.

        Raises:
            ArgumentTypeError: ``command`` is neither a str nor a mapping,
                ``database`` not a str, ``session`` not a ``Transaction``.
            ConnectorError: INVALID_REQUEST for an empty command or an
                invalid database name; the command failed (classified by code).
        """
        cmd, limit = _command_args(command, database, timeout)
        if session is not None:
            if not isinstance(session, Transaction):
                raise wrong_type(f"session must be a Transaction, not {type(session).__name__}")
            return session._execute(cmd, database, limit)
        translator = translate("execute", self._target, write=True)
        op = self._use("execute")
        op._target = cmd if isinstance(cmd, str) else str(next(iter(cmd)))  # the command's name
        with op as handle, translator:
            return _run_command(handle, cmd, database, limit, None)

    # ------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(
        self,
        *,
        read_concern: str | None = None,
        write_concern: Mapping[str, Any] | None = None,
        read_preference: str | None = None,
        max_commit_time: float | None = None,
    ) -> Iterator[Transaction]:
        """Open a transaction: commit when the block ends, abort on an exception.

        Args:
            read_concern: The transaction's read concern ("snapshot", "majority", ...).
            write_concern: ``{"w": "majority", "j": True, "wtimeout": ms}``.
            read_preference: Must be "primary" for reads in a transaction.
            max_commit_time: Seconds ``commitTransaction`` may take (``maxTimeMS``).

        Raises:
            InvalidConfigError: A bad option.
            NotConnectedError: The connector is not connected.
            ConnectorError: The commit failed: TransientTransactionError
                labels make it transient (hint RETRY_TRANSACTION: rerun the
                block); UnknownTransactionCommitResult has ``maybe_applied=True``.
        """
        options = _transaction_options(
            read_concern, write_concern, read_preference, max_commit_time
        )
        with self._started("transaction", options) as (tx, session):
            try:
                yield tx
            except BaseException:
                tx._active = False
                _abort_quietly(session)
                raise
            tx._active = False
            with translate("commit", self._target, write=True, commit=True):
                session.commit_transaction()

    @contextlib.contextmanager
    def _started(
        self, operation: str, options: dict[str, Any]
    ) -> Iterator[tuple[Transaction, ClientSession]]:
        """A started transaction on a checked-out client; its session ends with the block.

        Committing or aborting is the block's work.
        """
        target = self._target
        with self._use(operation) as handle:
            with translate("transaction", target):
                session = handle.client.start_session()
            try:
                with translate("transaction", target):
                    session.start_transaction(**options)
                yield Transaction(handle, session, target), session
            finally:
                session.end_session()

    def run_in_transaction(
        self,
        fn: Callable[[Transaction], T],
        *,
        read_concern: str | None = None,
        write_concern: Mapping[str, Any] | None = None,
        max_commit_time: float | None = None,
        deadline: float | None = None,
    ) -> T:
        """Run ``fn(tx)`` in a transaction with the driver's retry rules.

        The whole function is rerun when an error carries the
        TransientTransactionError label (a write conflict, a lost primary,
        a commit that failed transiently); only the commit is retried when
        its outcome is unknown (UnknownTransactionCommitResult), except
        after MaxTimeMSExpired. Every retry logs a WARNING with its attempt
        number; waits between reruns follow the config's retry policy
        (backoff and jitter, with the connector's ``_sleep``/``_rand``).
        ``fn`` must not have side effects outside the database.

        Args:
            fn: The transaction body; receives the ``Transaction``.
            read_concern, write_concern, max_commit_time: As ``transaction()``.
            deadline: Seconds after which no new attempt starts (default 120,
                pymongo's ``with_transaction`` limit).

        Returns:
            What ``fn`` returned, from the attempt that committed.

        Raises:
            ArgumentTypeError: ``fn`` is not callable (before any I/O).
            InvalidConfigError: A bad option.
            ConnectorError: The last error once the deadline passed, or any
                error without those labels at once.
        """
        if not callable(fn):
            raise wrong_type(f"fn must be a callable, not {type(fn).__name__}")
        options = _transaction_options(read_concern, write_concern, None, max_commit_time)
        limit = _DEFAULT_TX_DEADLINE if deadline is None else seconds(deadline, "deadline")
        # The core loop (retry_call), as pymongo's with_transaction: no attempt
        # limit, only the deadline; the config's policy gives the backoff.
        policy = attrs.evolve(
            self.config.retry, max_attempts=MAX_ATTEMPTS_LIMIT, deadline=min(limit, MAX_SECONDS)
        )
        start = self._clock()
        attempts = itertools.count(1)

        def attempt() -> T:
            ok, outcome = self._transaction_attempt(fn, options, start, limit, next(attempts))
            if not ok:
                raise outcome  # labelled TransientTransactionError: retry_if reruns it
            return outcome  # type: ignore[no-any-return]

        return retry_call(
            attempt,
            policy,
            retry_if=_rerun_transaction,
            description=f"mongodb: transaction on {self._target} (TransientTransactionError)",
            sleep=self._sleep,
            clock=self._clock,
            rand=self._rand,
        )

    def _transaction_attempt(
        self,
        fn: Callable[[Transaction], T],
        options: dict[str, Any],
        start: float,
        limit: float,
        attempt: int,
    ) -> tuple[bool, Any]:
        """One run of ``fn``: ``(True, result)``, or ``(False, error)`` to rerun it.

        Raises:
            BaseException: Anything that must not be retried.
        """
        target = self._target
        clock = self._clock
        with self._started("run_in_transaction", options) as (tx, session):
            try:
                result = fn(tx)
            except BaseException as exc:
                tx._active = False
                _abort_quietly(session)
                if isinstance(exc, ConnectorError) and _has_label(exc, _TRANSIENT_TX):
                    return False, exc
                raise
            tx._active = False
            commits = 0
            while True:
                commits += 1
                try:
                    with translate("commit", target, write=True, commit=True):
                        session.commit_transaction()
                    return True, result
                except ConnectorError as err:
                    if _has_label(err, _TRANSIENT_TX):
                        return False, err
                    if (
                        _has_label(err, _UNKNOWN_COMMIT)
                        and err.details.get("code") != 50
                        and clock() - start < limit
                    ):
                        logger.warning(
                            "mongodb: commit on %s has an unknown result (attempt %d, "
                            "commit %d, %s); retrying the commit",
                            target,
                            attempt,
                            commits,
                            err.code.value,
                        )
                        continue
                    raise


def _command_args(
    command: object, database: object, timeout: object
) -> tuple[str | Mapping[str, Any], float | None]:
    """``execute``'s checked command and timeout, before any I/O."""
    if not isinstance(command, (str, Mapping)):
        raise wrong_type(f"a command is a str or a mapping, not {type(command).__name__}")
    if not command:
        raise bad_request("a command needs a name")
    if database is not None:
        check_database(database)
    return command, call_timeout(timeout)


def _run_command(
    handle: _Handle,
    command: Any,
    database: str | None,
    limit: float | None,
    session: ClientSession | None,
) -> Document:
    db = handle.database if database is None else handle.client.get_database(database)
    if limit is None:
        return dict(db.command(command, session=session))
    with pymongo.timeout(limit):
        return dict(db.command(command, session=session))


def _stream(
    connector: MongoDBConnector,
    name: str,
    open_cursor: Callable[[Collection[Document], ClientSession | None], Any],
    translator: translate,
    timeout: float | None,
) -> Generator[Document, None, None]:
    # A module-level generator: it holds the connector, never the stream, so
    # dropping the stream finalises it (and closes the cursor) at once.
    op = connector._use(translator.operation)
    op._target = name  # the collection, for listeners (spans)
    with op as handle:
        with translator:
            cursor = open_cursor(handle.collection(name), None)
        yield from _iterate(cursor, translator, timeout)


def _ms(value: float | None) -> int | None:
    return None if value is None else max(1, round(value * 1000))
