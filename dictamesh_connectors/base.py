"""The ``Connector`` base class: lifecycle, lock discipline, in-flight accounting, fork safety.

A connector owns one *handle*: whatever its driver needs to talk to the
server (a urllib3 pool, a ``psycopg_pool.ConnectionPool``, a ``MongoClient``,
a librdkafka producer). The base class manages that handle's life; a
subclass supplies four hooks:

* ``_open()``: build and return a ready handle (network I/O, no lock held);
* ``_close(handle, timeout)``: close it (network I/O, no lock held);
* ``_ping(handle, timeout)``: raise if the server is unhealthy;
* ``_translate_errors()``: a context manager mapping driver errors to
  ``ConnectorError`` (its ``errors.py`` table).

and runs its operations through ``self._run(fn, idempotent=...)``, which
registers the operation as in-flight, reconnects a lost handle, translates
errors and retries what is safe to retry.

Lock discipline: one ``RLock`` per connector guards memory only (state,
handle, counters). No network I/O, sleep or user callback ever runs with it
held; concurrency comes from the driver's own pool.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from dictamesh_connectors import _fork, observability
from dictamesh_connectors._convert import check_timeout
from dictamesh_connectors._version import __version__
from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.errors import (
    ConnectorError,
    InvalidConfigError,
    NotConnectedError,
    RetryHint,
)
from dictamesh_connectors.retry import RetryPolicy, retry_call

__all__ = ["Connector", "State"]

logger = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound=BaseConfig)
HandleT = TypeVar("HandleT")
T = TypeVar("T")


class State(enum.Enum):
    """Lifecycle: DISCONNECTED -> CONNECTING -> CONNECTED -> DISCONNECTING -> DISCONNECTED."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"


class Connector(Generic[ConfigT, HandleT]):
    """Base class of every connector.

    Thread safety: one instance is meant to be shared by every thread of a
    process. ``connect``, ``disconnect``, ``ping`` and every operation may be
    called concurrently from any thread. After ``os.fork()`` the child drops
    (never closes) the parent's handle and opens its own on first use.

    Lifecycle: ``connect()`` and ``disconnect()`` are idempotent. A failed
    ``connect()`` leaves the connector DISCONNECTED and reusable. Once
    ``disconnect()`` starts, new operations raise ``NotConnectedError``, the
    ones in flight finish (up to ``timeout``), then the handle is closed.

    Example::

        with PostgreSQLConnector(PostgreSQLConfig.from_url(url)) as db:
            db.query("SELECT 1")
    """

    name: ClassVar[str] = "connector"
    """Short name of the technology ("http", "postgresql", ...)."""
    version: ClassVar[str] = __version__
    """Version of the connector implementation."""
    config_class: ClassVar[type[BaseConfig]] = BaseConfig
    """The config class ``__init__`` accepts."""

    def __init__(self, config: ConfigT) -> None:
        """Validate ``config`` and prepare a DISCONNECTED connector (no I/O).

        Raises:
            InvalidConfigError: ``config`` is not a valid ``config_class``.
        """
        if not isinstance(config, self.config_class):
            raise InvalidConfigError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}",
                connector=self.name,
            )
        config.validate()
        self.config: ConfigT = config
        # Guards the lifecycle state, the handle, the epoch and the in-flight
        # accounting; never held across I/O, sleep, logging or callbacks.
        # Forkable: a child gets it back unlocked (see _fork).
        self._lock = _fork.create_rlock()
        # Signalled (under _lock) whenever _state changes, and when an operation
        # ends while a disconnect() drains.
        self._changed = _fork.create_condition(self._lock)
        self._state = State.DISCONNECTED
        self._handle: HandleT | None = None
        self._epoch = 0  # bumped by disconnect(); a connect() from an older epoch lost the race
        # The operations in flight (their _InFlight objects). set.add and
        # set.discard are single atomic calls under the GIL, so the hot path
        # registers without the lock (see _InFlight for the ordering that
        # makes that safe). Replaced by a new set when the count restarts at
        # zero (a fork, or a disconnect() that gave up waiting): operations
        # registered in an older set no longer count, and their end is ignored.
        self._ops: set[_InFlight[HandleT]] = set()
        self._pid = os.getpid()
        self._forks = _fork.generation  # the hot path's fork check (os.getpid() is a syscall)
        # Counters for stats(). Finished operations: one atomic next() per
        # operation, read (under _lock) by stats(); errors and retries,
        # rarer, under _lock.
        self._finished = _Counter()
        self._errors: dict[str, int] = {}
        self._retries = 0
        # Event listeners of this connector (observability); copy-on-write,
        # so the hot path reads it without the lock.
        self._listeners: tuple[Any, ...] = ()
        # The retry loop's time and randomness; tests substitute fakes.
        self._sleep: Callable[[float], object] = time.sleep
        self._clock: Callable[[], float] = time.monotonic
        self._rand: Callable[[], float] = random.random
        # Whether _translate_errors is overridden: the base's does nothing, and
        # a connector that translates inside its operations (HTTP) skips it.
        self._translates = type(self)._translate_errors is not Connector._translate_errors
        _fork.register_child_reset(self)

    # ------------------------------------------------------------------ hooks

    def _open(self) -> HandleT:
        """Open and return a ready handle. Runs without the lock held."""
        raise NotImplementedError

    def _close(self, handle: HandleT, timeout: float | None) -> None:
        """Close ``handle``. Runs without the lock held."""
        raise NotImplementedError

    def _ping(self, handle: HandleT, timeout: float | None) -> None:
        """Raise if the server behind ``handle`` is unhealthy."""
        raise NotImplementedError

    def _discard_after_fork(self, handle: HandleT) -> None:
        """Forget a handle inherited from the parent without closing its sockets.

        The default just drops the reference. Override when the driver needs
        a word to not touch the parent's sockets when the object is collected.
        """

    def _translate_errors(self) -> contextlib.AbstractContextManager[None]:
        """Map driver exceptions raised inside the block to ``ConnectorError``."""
        return contextlib.nullcontext()

    def _on_connection_lost(self, handle: HandleT, error: ConnectorError) -> None:
        """React to an error whose hint is RECONNECT.

        The default discards the handle so the next operation opens a new
        one. Connectors whose driver pool heals itself (it drops broken
        connections on checkout) override this to do nothing.
        """
        self._invalidate(handle)

    # -------------------------------------------------------------- lifecycle

    @property
    def state(self) -> State:
        """The current lifecycle state."""
        return self._state

    @property
    def is_connected(self) -> bool:
        """True once ``connect()`` succeeded and until ``disconnect()`` starts."""
        return self._state is State.CONNECTED

    def connect(self) -> None:
        """Open the connection (pool). Idempotent; safe to race from many threads.

        Raises:
            ConnectorError: The server could not be reached or refused us;
                the connector stays DISCONNECTED and may be connected again.
            NotConnectedError: ``disconnect()`` ran while this call was connecting.
        """
        with self._lock:  # state, handle, epoch
            while self._state is State.CONNECTING or self._state is State.DISCONNECTING:
                self._changed.wait()
            if self._state is State.CONNECTED and self._handle is not None:
                return
            was_connected = self._state is State.CONNECTED
            self._state, epoch = State.CONNECTING, self._epoch
            self._changed.notify_all()
        self._open_outside_lock(epoch, restore=State.CONNECTED if was_connected else None)

    def _open_outside_lock(self, epoch: int, restore: State | None) -> None:
        try:
            with self._translate_errors():
                handle = self._open()
        except BaseException:
            with self._lock:  # state
                if self._state is State.CONNECTING and self._epoch == epoch:
                    # A reconnect that failed stays CONNECTED-without-handle so
                    # the next operation tries again; a first connect goes back.
                    self._state = restore or State.DISCONNECTED
                self._changed.notify_all()
            raise
        with self._lock:  # state, handle
            won = self._state is State.CONNECTING and self._epoch == epoch
            if won:
                self._handle, self._state = handle, State.CONNECTED
                self._changed.notify_all()
        if won:
            logger.debug("%s: connected", self.name)  # outside the lock: handlers may do I/O
            if self._listeners or observability._global:
                observability.notify(self._listeners, "on_connect", self)
            return
        self._close_quietly(handle, timeout=0)  # lost the race with disconnect(): don't leak it
        raise NotConnectedError(f"{self.name}: disconnected while connecting", connector=self.name)

    def disconnect(self, timeout: float | None = None) -> None:
        """Stop new operations, wait for in-flight ones, then close. Idempotent.

        A ``connect()`` (or an automatic reconnection) still opening when
        this is called loses the race: it closes what it opened and raises
        ``NotConnectedError``. A second ``disconnect()`` racing the first
        waits for it to finish.

        Args:
            timeout: Seconds to wait for in-flight operations before closing
                anyway (``None`` waits as long as they take). Operations still
                running then keep their (closed) handle and fail on their own.
                ``inf`` is the same as ``None``.

        Raises:
            InvalidConfigError: ``timeout`` is NaN, negative or over 7 days
                (checked before anything changes).
            TypeError: ``timeout`` is not a number.
        """
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        abandoned = 0
        interrupt: BaseException | None = None
        with self._lock:  # state, handle, in-flight count
            if self._state is State.DISCONNECTED:
                return
            if self._state is State.DISCONNECTING:
                while self._state is State.DISCONNECTING:
                    self._changed.wait()
                return
            # A connect() or reconnect from an older epoch closes what it opens.
            self._epoch += 1
            self._state = State.DISCONNECTING
            self._changed.notify_all()
            # This thread's own open operations can only end after we return:
            # waiting for them would never end.
            me = threading.get_ident()
            ops = self._ops
            own = sum(1 for op in ops.copy() if op._owner == me)
            try:
                while True:
                    # A copy: other threads add and discard without the lock.
                    others = sum(1 for op in ops.copy() if op._owner != me)
                    if not others:
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        # Give up on them: they fail on the closed handle, and
                        # a later connect()/disconnect() does not wait for them.
                        abandoned = others
                        break
                    self._changed.wait(remaining)
            except BaseException as exc:
                # KeyboardInterrupt in wait(): finish the disconnect anyway
                # (closing at once, abandoning what still runs), never leave
                # DISCONNECTING behind, where connect() and disconnect() would
                # wait forever.
                interrupt = exc
            if ops:
                # What still runs fails on the closed handle, and its end is
                # not counted: a later connect()/disconnect() does not wait for it.
                self._ops = set()
            handle, self._handle = self._handle, None
        if abandoned:
            logger.warning(
                "%s: closing with %d operation(s) still in flight after %.1fs",
                self.name,
                abandoned,
                timeout,
            )
        if own:
            logger.warning(
                "%s: disconnect() called by a thread with %d of its own operation(s) open "
                "(a stream or transaction): not waited for; each ends on the connection "
                "it holds",
                self.name,
                own,
            )
        try:
            if handle is not None:
                if interrupt is not None:
                    close_timeout: float | None = 0.0
                elif deadline is None:
                    close_timeout = None
                else:
                    close_timeout = max(0.0, deadline - time.monotonic())
                self._close_quietly(handle, timeout=close_timeout)
        finally:
            with self._lock:  # state
                self._state = State.DISCONNECTED
                self._changed.notify_all()
            logger.debug("%s: disconnected", self.name)
            if self._listeners or observability._global:
                observability.notify(self._listeners, "on_disconnect", self)
        if interrupt is not None:
            raise interrupt

    def _close_quietly(self, handle: HandleT, timeout: float | None) -> None:
        try:
            self._close(handle, timeout)
        except Exception:
            logger.warning("%s: error while closing", self.name, exc_info=True)

    def ping(self, timeout: float | None = None) -> None:
        """Check the server answers. Never holds the connector lock while waiting.

        Raises:
            NotConnectedError: The connector is not connected.
            ConnectorError: The server is unreachable or unhealthy.
            InvalidConfigError: ``timeout`` is NaN, not above 0 or over 7
                days (``None`` or ``inf``: the connector's default).
            TypeError: ``timeout`` is not a number.
        """
        timeout = check_timeout(timeout, positive=True)
        self._run(
            lambda handle: self._ping(handle, timeout),
            idempotent=True,
            retry=RetryPolicy.no_retry(),
            description="ping",
        )

    def __enter__(self: T) -> T:
        """``connect()`` and return the connector."""
        self.connect()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc_info: object) -> None:
        """``disconnect()``, draining in-flight operations (no timeout).

        Operations of other threads are waited for. Ones the exiting thread
        itself still holds open (a stream it did not finish, a transaction
        block it is still inside) cannot end before this returns, so they are
        not waited for: each ends normally on the connection it already holds
        (closed when it is given back, or failing if the driver closed it).
        It never deadlocks; see docs/lifecycle.md.
        """
        self.disconnect()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state.value} {self._describe()}>"

    def _describe(self) -> str:
        """Where this connector points, credentials masked (for reprs and messages)."""
        try:
            return self.config.connection_string(redact=True)
        except NotImplementedError:
            return ""

    # ------------------------------------------------------------- operations

    def _use(self, operation: str = "operation") -> _InFlight[HandleT]:
        """Register an in-flight operation; ``with self._use("query") as handle: ...``.

        Reopens a handle lost to a connection failure or to ``fork()``.
        Driver errors are *not* translated here (see ``_run``): translate
        inside the block, so that the operation's end is counted (and
        reported to listeners) with its ``ConnectorError``.

        Raises:
            NotConnectedError: Not connected, or ``disconnect()`` has started.
        """
        op: _InFlight[HandleT] = _new_in_flight(_InFlight)
        op._connector, op._operation = self, operation
        return op

    def _acquire(self, op: _InFlight[HandleT]) -> HandleT:
        """Register ``op`` the slow way, under the lock; return the handle.

        ``_InFlight`` comes here when its lock-free registration found no
        handle or a state other than CONNECTED: it waits for a connect() in
        progress, reopens a lost or forked handle, or refuses.

        Raises:
            NotConnectedError: Not connected, or ``disconnect()`` has started.
        """
        if self._pid != os.getpid():
            # The second net behind the fork hook: a fork that bypassed
            # os.register_at_fork (a C extension's) must not reuse our handle.
            self._after_fork_in_child()
        while True:
            with self._lock:  # state, handle, in-flight set
                while self._state is State.CONNECTING and self._handle is None:
                    self._changed.wait()
                handle = self._handle
                if self._state is State.CONNECTED and handle is not None:
                    op._ops = ops = self._ops
                    ops.add(op)
                    return handle
                if self._state is not State.CONNECTED:
                    raise NotConnectedError(
                        f"{self.name}: not connected ({self._state.value}); call connect() first",
                        connector=self.name,
                    )
                # CONNECTED without a handle: lost or forked; reopen it outside the lock.
                self._state, epoch = State.CONNECTING, self._epoch
            self._open_outside_lock(epoch, restore=State.CONNECTED)

    def _count_error(self, error: ConnectorError) -> None:
        code = error.code.value
        with self._lock:  # counters
            self._errors[code] = self._errors.get(code, 0) + 1

    def _wake_drain(self) -> None:
        """Tell a draining disconnect() that an operation ended."""
        with self._lock:  # the condition's lock
            self._changed.notify_all()

    def _run(
        self,
        fn: Callable[[HandleT], T],
        *,
        idempotent: bool,
        retry: RetryPolicy | None = None,
        description: str = "operation",
    ) -> T:
        """Run ``fn(handle)`` as one in-flight operation, with translation and retries.

        The first attempt runs straight away; the retry loop (``retry_call``)
        is entered only once it failed, so an operation that succeeds pays
        for no retry machinery.

        Args:
            fn: The operation; it receives the handle.
            idempotent: Whether repeating ``fn`` is harmless even if it took
                effect (errors with ``maybe_applied`` are retried only then).
            retry: Overrides the config's retry policy for this call.
            description: Names the operation in retry warnings.

        Raises:
            ConnectorError: Translated from the driver; the last one when
                retries ran out.
        """
        clock = self._clock
        started = clock()
        try:
            return self._run_attempt(fn, description)
        except ConnectorError as err:
            first: ConnectorError | None = err
        # The loop takes over from the failed first attempt: it is told that
        # failure (instead of running the attempt again) and the time the
        # attempt started (so the deadline counts it).
        starts = [started]

        def attempt() -> T:
            nonlocal first
            if first is not None:
                error, first = first, None
                raise error
            return self._run_attempt(fn, description)

        def clock_from_first_attempt() -> float:
            return starts.pop() if starts else clock()

        policy = retry or self.config.retry
        return retry_call(
            attempt,
            policy,
            idempotent=idempotent,
            description=f"{self.name}: {description}",
            on_retry=lambda n, wait, err: self._note_retry(description, n, wait, err),
            sleep=self._sleep,
            clock=clock_from_first_attempt,
            rand=self._rand,
        )

    def _run_attempt(self, fn: Callable[[HandleT], T], description: str) -> T:
        """One attempt of ``_run``: in flight, translated, a lost handle invalidated."""
        op: _InFlight[HandleT] = _new_in_flight(_InFlight)  # self._use(description), inline
        op._connector, op._operation = self, description
        with op as handle:
            try:
                if not self._translates:  # nothing to translate: no context manager
                    return fn(handle)
                with self._translate_errors():
                    return fn(handle)
            except ConnectorError as err:
                if err.retry_hint is RetryHint.RECONNECT:
                    self._on_connection_lost(handle, err)
                raise

    def _operation_clock(self) -> float:
        """The start of an operation recorded with ``_record_operation``.

        ``time.perf_counter()`` while a listener is subscribed, else ``0.0``
        (no clock read): the same rule ``_InFlight`` follows.
        """
        return time.perf_counter() if self._listeners or observability._global else 0.0

    def _record_operation(
        self, operation: str, started: float, error: ConnectorError | None = None
    ) -> None:
        """Count and report an operation that ran *outside* the in-flight accounting.

        For objects the connector makes but does not own the calls of (a
        thread-confined Kafka consumer): their calls are not in-flight
        operations of the connector (``disconnect()`` does not wait for a
        blocked poll), but they are counted in ``stats()`` and reported to
        listeners exactly as ``_use`` does for its operations. ``started``
        comes from ``_operation_clock()``; ``operation`` may be an
        ``observability.Operation`` (built only when ``started`` is set).
        With no listener this costs one atomic increment (and the error
        count when ``error`` is given).
        """
        self._finished.increment()
        if error is not None:
            self._count_error(error)
        if started:
            self._report_operation(operation, started, error)

    def _report_operation(
        self, operation: str, started: float, error: ConnectorError | None
    ) -> None:
        """Tell the listeners an operation begun at ``started`` ended (with ``error``)."""
        duration = time.perf_counter() - started
        listeners = self._listeners
        observability.notify(listeners, "on_operation", self, operation, duration, error)
        if error is not None:
            observability.notify(listeners, "on_error", self, operation, error)

    def _note_retry(self, operation: str, attempt: int, wait: float, error: ConnectorError) -> None:
        """Count a retry and tell the listeners (pass it as ``retry_call(on_retry=...)``)."""
        with self._lock:  # counters
            self._retries += 1
        if self._listeners or observability._global:
            observability.notify(self._listeners, "on_retry", self, operation, attempt, wait, error)

    # ---------------------------------------------------------- observability

    def add_listener(self, listener: Any) -> None:
        """Subscribe ``listener`` to this connector's events (see ``observability``).

        Listeners run in the thread of the event, never under the connector
        lock; one that raises is logged and does not break the operation.
        """
        with self._lock:  # listeners (copy-on-write)
            if listener not in self._listeners:
                self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Any) -> None:
        """Unsubscribe ``listener`` (no error if it was not subscribed)."""
        with self._lock:  # listeners (copy-on-write)
            self._listeners = tuple(item for item in self._listeners if item is not listener)

    def stats(self) -> observability.Stats:
        """Counters since creation, operations in flight and the driver pool's numbers.

        Never raises and does no network I/O; the pool numbers come from the
        driver's own bookkeeping (``_pool_stats``).
        """
        with self._lock:  # counters, handle
            operations, errors, retries = self._finished.read(), dict(self._errors), self._retries
            in_flight, handle = _count_admitted(self._ops), self._handle
        pool: dict[str, Any] = {}
        if handle is not None:
            try:
                pool = dict(self._pool_stats(handle))
            except Exception:
                logger.debug("%s: pool statistics unavailable", self.name, exc_info=True)
        return observability.Stats(
            operations=operations, errors=errors, retries=retries, in_flight=in_flight, pool=pool
        )

    @property
    def _inflight(self) -> int:
        """How many admitted operations are in flight (of the current in-flight set)."""
        with self._lock:  # in-flight set
            return _count_admitted(self._ops)

    def _in_flight_threads(self) -> dict[int, int]:
        """Admitted operations in flight, per thread ident (for tests and the conformance suite).

        An operation counts once it has been admitted (it saw CONNECTED and
        will run to its end, even through a ``disconnect()``), never while it
        is still checking the state: one that is then refused never shows.
        """
        owners: dict[int, int] = {}
        with self._lock:  # in-flight set
            ops = self._ops.copy()  # a copy: other threads add and discard without the lock
        for op in ops:
            if _is_admitted(op):
                owners[op._owner] = owners.get(op._owner, 0) + 1
        return owners

    def _pool_stats(self, handle: HandleT) -> dict[str, Any]:
        """The driver pool's own numbers (``in_use``, ``idle``, ``waiting``, ``size``...).

        Override per connector; runs without the lock and must do no I/O.
        """
        return {}

    def _invalidate(self, handle: HandleT) -> None:
        """Discard ``handle`` (if still current) and close it outside the lock.

        With ``auto_reconnect`` the next operation opens a new handle;
        without it the connector goes DISCONNECTED until ``connect()``.
        """
        with self._lock:  # handle, state
            if self._handle is not handle:
                return  # another thread already replaced it
            self._handle = None
            if not self.config.auto_reconnect and self._state is State.CONNECTED:
                self._state = State.DISCONNECTED
                self._changed.notify_all()
        logger.warning(
            "%s: connection lost; %s",
            self.name,
            "will reconnect" if self.config.auto_reconnect else "call connect() to reconnect",
        )
        self._close_quietly(handle, timeout=0)

    # ------------------------------------------------------------------- fork

    def _after_fork_in_child(self) -> None:
        """In a forked child: forget the parent's handle, keep the lifecycle state.

        Called by the fork hook (``_fork``) and, as nets, by the first
        operation that sees a new fork generation (a reset the hook missed)
        and by the slow path that sees a new pid (a fork that bypassed the
        hook). Subclasses with more per-process state extend it (calling
        ``super()``).
        """
        self._forks = _fork.generation
        if self._pid == os.getpid():
            return
        # The hook re-initialised both already; a fork that bypassed it did not.
        self._lock._at_fork_reinit()  # type: ignore[attr-defined]
        self._changed._at_fork_reinit()  # type: ignore[attr-defined]
        self._pid = os.getpid()
        handle, self._handle = self._handle, None
        # The parent's operations do not run here; one the forking thread
        # itself holds ends in its old set, uncounted.
        self._ops = set()
        self._finished, self._errors, self._retries = _Counter(), {}, 0
        if self._state is State.CONNECTING:
            # The connecting thread does not exist here: open lazily on first use.
            self._state = State.CONNECTED
        elif self._state is State.DISCONNECTING:
            self._state = State.DISCONNECTED
        if handle is not None:
            try:
                self._discard_after_fork(handle)
            except Exception:
                logger.debug("%s: error discarding the parent's handle", self.name, exc_info=True)


# Hot-path names, bound once.
_CONNECTED = State.CONNECTED
_DISCONNECTING = State.DISCONNECTING
_get_ident = threading.get_ident
_new_in_flight = object.__new__


def _is_admitted(op: _InFlight[Any]) -> bool:
    """Whether ``op`` passed admission (see ``_InFlight``): its ``_started`` is set."""
    return getattr(op, "_started", None) is not None


def _count_admitted(ops: set[_InFlight[Any]]) -> int:
    """How many operations of ``ops`` passed admission (``ops`` is copied first)."""
    return sum(1 for op in ops.copy() if _is_admitted(op))


class _Counter:
    """An exact event counter whose increment is one atomic call, without a lock.

    ``next()`` on an ``itertools.count`` is a single C call, atomic under the
    GIL, so ``increment`` (that bound ``__next__``) loses no count when many
    threads call it at once, where ``n += 1`` could. Reading advances the
    count too, so ``read()`` subtracts its own earlier reads; callers
    serialise ``read()`` (``stats()`` holds the connector lock).
    """

    __slots__ = ("_reads", "increment")

    def __init__(self) -> None:
        self.increment = itertools.count().__next__
        self._reads = 0

    def read(self) -> int:
        value = self.increment() - self._reads
        self._reads += 1
        return value


class _InFlight(Generic[HandleT]):
    """Context manager for one in-flight operation (a class: it is on every hot path).

    Registration is lock-free: ``__enter__`` adds the operation to the
    connector's in-flight set *first* and reads the state and handle
    *second*; ``disconnect()`` sets DISCONNECTING (under the lock) *first*
    and reads the set *second*. Under the GIL each of those steps is atomic
    and they happen in some single order, so either the operation sees
    DISCONNECTING (and withdraws, going the slow way, which refuses), or
    ``disconnect()`` sees it in the set (and waits for it). An operation that
    ends while a disconnect() drains takes the lock only to wake it. Every
    other case (connecting, reconnecting, not connected) goes through
    ``Connector._acquire``, under the lock.

    So a member of the set is not yet *admitted*: until it has read the
    state it may still withdraw and be refused. ``_started`` is stored only
    once it is admitted (by either path), and ``stats().in_flight`` and
    ``_in_flight_threads()`` count only the members that have it, so an
    operation that is refused never shows as in flight, and one that shows
    always runs to its end (``disconnect()`` waits for it). ``disconnect()``
    itself waits for every member, admitted or not.
    """

    # _target (optional, never set by the base class): what the operation acts
    # on (a MongoDB collection), stored by a connector that knows it; only
    # read when listeners are subscribed (see observability.Operation).
    __slots__ = ("_connector", "_operation", "_ops", "_owner", "_started", "_target")
    _target: str

    def __init__(self, connector: Connector[Any, HandleT], operation: str) -> None:
        # Connector._use skips this (object.__new__ and two stores): hot path.
        self._connector = connector
        self._operation = operation

    def __enter__(self) -> HandleT:
        connector = self._connector
        if connector._forks != _fork.generation:  # a fork whose reset missed us
            connector._after_fork_in_child()
        self._owner = _get_ident()
        self._ops = ops = connector._ops
        ops.add(self)  # first: see the class docstring
        handle = connector._handle
        if connector._state is not _CONNECTED or handle is None:
            ops.discard(self)
            if connector._state is _DISCONNECTING:
                connector._wake_drain()  # it may have counted us meanwhile
            handle = connector._acquire(self)
        # Admitted: stored last (see the class docstring); never None.
        self._started = (
            time.perf_counter() if connector._listeners or observability._global else 0.0
        )
        return handle

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        connector = self._connector
        connector._finished.increment()  # counted before a draining disconnect() returns
        if exc is not None and isinstance(exc, ConnectorError):
            connector._count_error(exc)
        self._ops.discard(self)  # an abandoned operation's old set: no effect
        if connector._state is _DISCONNECTING:
            connector._wake_drain()
        if self._started:  # listeners were subscribed when it began
            operation = self._operation
            target = getattr(self, "_target", None)  # unset on most connectors' operations
            if target is not None:
                operation = observability.Operation(operation, target)
            connector._report_operation(
                operation, self._started, exc if isinstance(exc, ConnectorError) else None
            )
