"""``FaultPlan``: the faults a fake connector is programmed to inject.

Every fake owns one plan (``fake.faults``) and asks it, first thing inside
each public operation's in-flight block, what to do::

    applied = self._faults.check("insert_many", batch_size=len(documents))
    if applied is not None:          # a programmed partial failure
        store(documents[:applied])
        raise self._faults.partial_error("insert_many", applied)

``check`` records the call, sleeps the programmed latency (outside the
plan's lock), then raises the next programmed error for that operation, or
returns how many items of a batch to apply before failing, or ``None``
(carry on normally). The errors are built with ``errors.build_error`` from
the code's default rule, so a fault is indistinguishable from the real
connector's error with that code: ``ConnectorTimeoutError`` for TIMEOUT,
``transient`` and ``retry_hint`` as the shared error model gives them. The
fake raises it inside the base class's operation path, so retries, events
and ``stats()`` treat it exactly as they treat a real failure.

Matching: a fault programmed for an operation name (a public method name
such as ``"query"`` or ``"insert_one"``) is tried first, then one programmed
for ``"*"`` (any operation). Faults for the same name queue up in the order
they were programmed; only the head of each queue sees calls.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from dictamesh_connectors import _fork
from dictamesh_connectors._convert import to_seconds
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    ErrorRule,
    InvalidConfigError,
    build_error,
)

__all__ = ["ANY", "FaultInjection", "FaultPlan", "fault_operations"]

ANY = "*"
"""The operation name that matches every operation."""

# Latencies and counts past these are programming mistakes, not tests.
_MAX_SECONDS = 3600.0
_MAX_COUNT = 10**9


@attrs.define(kw_only=True)
class _Fault:
    """One programmed error: raised ``times`` times, after skipping ``after`` calls."""

    operation: str
    code: ErrorCode
    times: int
    after: int
    message: str | None
    maybe_applied: bool
    retry_after: float | None
    partial: bool | int
    details: dict[str, Any]


def _default_rule(code: ErrorCode, retry_after: float | None) -> ErrorRule:
    """The transient flag and hint the shared error model gives ``code`` by default."""
    probe = ConnectorError("", code=code, retry_after=retry_after)
    return ErrorRule(code, probe.transient, probe.retry_hint)


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not minimum <= value <= _MAX_COUNT:
        raise InvalidConfigError(f"{name} must be between {minimum} and {_MAX_COUNT}, got {value}")
    return value


def _seconds(name: str, value: object) -> float:
    # The core's duration check, bounded by an hour (an int past any float is
    # out of range, not an OverflowError).
    return to_seconds(value, name=name, maximum=_MAX_SECONDS, no_limit=None)


def _operation_name(operation: object, known: frozenset[str] | None = None) -> str:
    if not isinstance(operation, str):
        raise TypeError(f"operation must be a str, got {type(operation).__name__}")
    if not operation:
        raise InvalidConfigError("operation must be a method name or '*'")
    if known is not None and operation != ANY and operation not in known:
        # A misspelt name would never fire: the test meant to see a fault
        # would pass without one.
        raise InvalidConfigError(
            f"no operation {operation!r} can fail here; the operations are: "
            + ", ".join(sorted(known))
        )
    return operation


def fault_operations(cls: type, *extra: str) -> frozenset[str]:
    """The operation names a fake of class ``cls`` checks: its public methods, plus ``extra``.

    ``extra`` names the checks that are not methods of the fake itself
    (``"commit"`` of a transaction, ``"getMore"`` of a stream, a consumer's
    ``"poll"``...).
    """
    public = {
        name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))
    }
    return frozenset(public | set(extra))


class FaultPlan:
    """The programmed faults, latencies and call record of one fake connector.

    Thread safety: every method may be called from any thread, also while
    the fake runs operations in others. The plan's lock guards its queues
    and call record only; latency sleeps happen outside it.

    Example::

        fake = FakePostgreSQL()
        fake.faults.fail_next("query", code=ErrorCode.TIMEOUT, times=2)
        fake.faults.set_latency("execute", 0.05, jitter=0.01)
        ...
        assert fake.faults.call_count("query") == 3   # two failures, one retry that worked

    Args:
        connector: The name the injected errors carry (``"postgresql"``...).
        classes: The connector's own code -> error class overrides (as its
            translation table passes to ``build_error``).
        operations: The operation names the fake checks (see
            ``fault_operations``); ``fail_next``/``set_latency`` refuse any
            other name with InvalidConfigError, so a misspelt one cannot
            silently never fire. ``None`` accepts any name.
        sleep: How latency is waited for (tests may pass a fake).
        rand: Uniform [0, 1) numbers for the latency jitter.
    """

    def __init__(
        self,
        connector: str,
        *,
        classes: Mapping[ErrorCode, type[ConnectorError]] | None = None,
        operations: Iterable[str] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._connector = connector
        self._classes = dict(classes) if classes is not None else None
        self._operations = None if operations is None else frozenset(operations)
        self._sleep = sleep
        self._rand = rand
        # Guards _faults, _latency and _calls; never held across a sleep.
        self._lock = _fork.create_lock()
        self._faults: dict[str, deque[_Fault]] = {}  # guarded by _lock
        self._latency: dict[str, tuple[float, float]] = {}  # guarded by _lock
        self._calls: list[str] = []  # guarded by _lock
        # The partial fault each thread's last check() returned a count for.
        self._pending = threading.local()

    # ------------------------------------------------------------ programming

    def fail_next(
        self,
        operation: str,
        *,
        code: ErrorCode = ErrorCode.UNAVAILABLE,
        times: int = 1,
        message: str | None = None,
        maybe_applied: bool = False,
        retry_after: float | None = None,
        after: int = 0,
        partial: bool | int = False,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``operation`` raise a ``ConnectorError`` with ``code``.

        The error's class, ``transient`` flag and ``retry_hint`` are the ones
        the shared error model gives ``code`` (a ``retry_after`` on a
        transient code makes the hint RETRY_AFTER), exactly as the real
        connector's translation would build them.

        Args:
            operation: A public method name (``"query"``, ``"insert_one"``,
                ``"get"``...) or ``"*"`` for any operation.
            code: The error code to raise.
            times: How many consecutive calls fail.
            message: The error message (default: names the connector, the
                operation and that the fault was injected).
            maybe_applied: Set the error's ``maybe_applied``.
            retry_after: Set the error's ``retry_after`` (seconds).
            after: Let this many calls succeed first.
            partial: For batch operations: apply a prefix of the batch, then
                raise with ``maybe_applied=True`` and ``details["applied"]``
                / ``details["total"]``. ``True`` applies half the batch
                (rounded down), an int applies that many (at most the
                whole batch). Operations without a batch raise as usual.
            details: Extra ``details`` for the error.

        Raises:
            InvalidConfigError: ``times`` below 1, ``after`` or ``partial``
                negative, ``operation`` empty or not an operation of the
                fake, an unknown ``code``.
            TypeError: An argument of the wrong type.
        """
        operation = _operation_name(operation, self._operations)
        try:
            error_code = ErrorCode(code)
        except ValueError:
            raise InvalidConfigError(f"unknown error code {code!r}") from None
        if not isinstance(partial, bool):
            _count("partial", partial, 0)
        if retry_after is not None:
            retry_after = _seconds("retry_after", retry_after)
        fault = _Fault(
            operation=operation,
            code=error_code,
            times=_count("times", times, 1),
            after=_count("after", after, 0),
            message=message,
            maybe_applied=bool(maybe_applied),
            retry_after=retry_after,
            partial=partial,
            details=dict(details or {}),
        )
        with self._lock:  # fault queues
            self._faults.setdefault(operation, deque()).append(fault)

    def set_latency(self, operation: str = ANY, seconds: float = 0.0, jitter: float = 0.0) -> None:
        """Sleep ``seconds`` (plus up to ``jitter`` more, uniformly) before each ``operation``.

        A latency for a named operation wins over the one for ``"*"``.
        ``set_latency(op)`` with no delay removes it. The sleep happens in
        the calling thread, inside the operation (it counts as in flight, so
        ``disconnect()`` drains it), with no lock held.

        Raises:
            InvalidConfigError: A negative, NaN or over-an-hour value, or
                ``operation`` not an operation of the fake.
            TypeError: An argument of the wrong type.
        """
        operation = _operation_name(operation, self._operations)
        delay = (_seconds("seconds", seconds), _seconds("jitter", jitter))
        with self._lock:  # latencies
            if delay == (0.0, 0.0):
                self._latency.pop(operation, None)
            else:
                self._latency[operation] = delay

    def clear(self) -> None:
        """Forget every programmed fault and latency, and the call record."""
        with self._lock:  # fault queues, latencies, call record
            self._faults.clear()
            self._latency.clear()
            self._calls.clear()

    @property
    def pending(self) -> int:
        """How many programmed failures are still to come (each ``times`` counts)."""
        with self._lock:  # fault queues
            return sum(fault.times for queue in self._faults.values() for fault in queue)

    # -------------------------------------------------------------- assertions

    @property
    def calls(self) -> list[str]:
        """Every operation checked so far, in order (failed and retried calls included)."""
        with self._lock:  # call record
            return list(self._calls)

    def call_count(self, operation: str = ANY) -> int:
        """How many times ``operation`` was called (``"*"``: all operations)."""
        with self._lock:  # call record
            if operation == ANY:
                return len(self._calls)
            return self._calls.count(operation)

    # ------------------------------------------------------------- fake side

    def check(self, operation: str, batch_size: int | None = None) -> int | None:
        """Record a call of ``operation`` and apply what is programmed for it.

        The fakes call this first thing inside every public operation.

        Args:
            operation: The public method name.
            batch_size: The number of items of a batch operation, if it is one.

        Returns:
            ``None`` to carry on normally, or (for a partial fault on a
            batch) how many items to apply before raising
            ``partial_error(operation, applied)``.

        Raises:
            ConnectorError: The programmed error.
        """
        with self._lock:  # call record, latencies, fault queues
            self._calls.append(operation)
            delay = self._latency.get(operation) or self._latency.get(ANY)
            fault = self._take(operation)
        if delay is not None:
            seconds, jitter = delay
            self._sleep(seconds + jitter * self._rand())  # no lock held
        if fault is None:
            return None
        if fault.partial is not False and batch_size is not None:
            if fault.partial is True:
                applied = batch_size // 2
            else:
                applied = min(int(fault.partial), batch_size)
            pending = getattr(self._pending, "faults", None)
            if pending is None:
                pending = self._pending.faults = {}
            pending[operation] = fault
            return applied
        raise self._error(fault, operation, fault.maybe_applied, {})

    def partial_error(
        self, operation: str, applied: int, total: int | None = None
    ) -> ConnectorError:
        """The error to raise after a partial fault applied ``applied`` items of a batch.

        Call it in the thread whose ``check()`` returned the count. The
        error has ``maybe_applied=True`` and ``details["applied"]`` (and
        ``details["total"]`` when ``total`` is given).
        """
        pending = getattr(self._pending, "faults", None) or {}
        fault = pending.pop(operation, None)
        if fault is None:  # not programmed as partial: still a plain injected failure
            fault = _Fault(
                operation=operation,
                code=ErrorCode.UNAVAILABLE,
                times=1,
                after=0,
                message=None,
                maybe_applied=True,
                retry_after=None,
                partial=True,
                details={},
            )
        extra: dict[str, Any] = {"applied": applied}
        if total is not None:
            extra["total"] = total
        return self._error(fault, operation, True, extra)

    def _take(self, operation: str) -> _Fault | None:
        """The fault that fires for this call, if any (called with the lock held)."""
        fired: _Fault | None = None
        for name in (operation, ANY):
            queue = self._faults.get(name)
            if not queue:
                continue
            head = queue[0]
            if head.after:
                head.after -= 1
                continue
            if fired is not None:
                continue  # the specific fault won; the "*" one waits for a later call
            fired = head
            head.times -= 1
            if head.times <= 0:
                queue.popleft()
                if not queue:
                    del self._faults[name]
        return fired

    def _error(
        self, fault: _Fault, operation: str, maybe_applied: bool, extra: dict[str, Any]
    ) -> ConnectorError:
        message = fault.message or (
            f"{self._connector}: {operation}: injected fault ({fault.code.value})"
        )
        details = {"injected": True, "operation": operation, **fault.details, **extra}
        return build_error(
            message,
            _default_rule(fault.code, fault.retry_after),
            connector=self._connector,
            maybe_applied=maybe_applied,
            retry_after=fault.retry_after,
            details=details,
            classes=self._classes,
        )

    def __repr__(self) -> str:
        with self._lock:  # fault queues, latencies, call record
            faults = sum(len(queue) for queue in self._faults.values())
            return (
                f"<FaultPlan {self._connector} faults={faults} "
                f"latencies={len(self._latency)} calls={len(self._calls)}>"
            )


class FaultInjection:
    """Mixin of every fake: ``fake.faults`` and the two shortcuts that forward to it.

    A fake lists it before ``Connector`` in its bases and sets
    ``self._faults = FaultPlan(self.name, ...)`` in ``__init__``; each of its
    public operations calls ``self._faults.check(name)`` first thing inside
    its in-flight block (the function it passes to ``_run``, or its
    ``with self._use(...)`` block), so a programmed fault travels the real
    operation path: retries, events and ``stats()`` see it.
    """

    _faults: FaultPlan

    @property
    def faults(self) -> FaultPlan:
        """The programmed faults and latencies, and the record of calls."""
        return self._faults

    def fail_next(
        self,
        operation: str,
        *,
        code: ErrorCode = ErrorCode.UNAVAILABLE,
        times: int = 1,
        message: str | None = None,
        maybe_applied: bool = False,
        retry_after: float | None = None,
        after: int = 0,
        partial: bool | int = False,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Program the next ``times`` calls of ``operation`` to fail: ``FaultPlan.fail_next``.

        Raises:
            InvalidConfigError: An invalid count or code.
            TypeError: An argument of the wrong type.
        """
        self._faults.fail_next(
            operation,
            code=code,
            times=times,
            message=message,
            maybe_applied=maybe_applied,
            retry_after=retry_after,
            after=after,
            partial=partial,
            details=details,
        )

    def set_latency(self, operation: str = ANY, seconds: float = 0.0, jitter: float = 0.0) -> None:
        """Delay each call of ``operation``: ``FaultPlan.set_latency``.

        Raises:
            InvalidConfigError: A negative, NaN or over-an-hour value.
            TypeError: An argument of the wrong type.
        """
        self._faults.set_latency(operation, seconds, jitter)
