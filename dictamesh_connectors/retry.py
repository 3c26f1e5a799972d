"""Retry policy (a value object) and the one retry loop every connector uses."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from dictamesh_connectors._convert import describe_value, parse_number
from dictamesh_connectors.errors import ConnectorError, InvalidConfigError

__all__ = ["RetryPolicy", "default_retry_if", "retry_call", "retry_once"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


# No sane policy makes more attempts or waits longer; the caps also keep every
# field printable and every sum of waits finite.
MAX_ATTEMPTS_LIMIT = 1_000_000
MAX_SECONDS = 7 * 24 * 3600.0


def _number(minimum: float, **kwargs: Any) -> Callable[[object], object]:
    def convert(value: object) -> object:
        try:
            return parse_number(value, minimum=minimum, **kwargs)
        except InvalidConfigError as err:
            raise InvalidConfigError(f"retry policy: {err.message}") from None

    return convert


def _number_field(default: float | None, minimum: float, **kwargs: Any) -> Any:
    return attrs.field(default=default, converter=_number(minimum, **kwargs))


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped, bounded by a deadline.

    Pure data: immutable, hashable, safe to share between threads and
    connectors. Vary it with ``attrs.evolve(policy, max_attempts=5)``.

    Attributes:
        max_attempts: Total attempts including the first (1 = no retry, at most
            1,000,000).
        initial_backoff: Base delay in seconds before the first retry
            (0 to 7 days).
        max_backoff: Cap on any single computed delay (0 to 7 days). A
            server's ``retry_after`` longer than this is not shortened: the
            error is raised instead, with ``retry_after`` set.
        multiplier: Growth factor of the base delay per attempt (at least 1).
        jitter: Full jitter (uniform in ``[0, base]``) when true.
        deadline: Overall budget in seconds for all attempts and waits (0 to
            7 days), or ``None`` for no budget beyond ``max_attempts``.

    Example::

        policy = RetryPolicy(max_attempts=5, initial_backoff=0.2, deadline=10)
        policy.delay(3)            # up to 0.8 s with jitter
    """

    max_attempts: int = _number_field(3, 1, integer=True, maximum=MAX_ATTEMPTS_LIMIT)
    initial_backoff: float = _number_field(0.1, 0.0, maximum=MAX_SECONDS)
    max_backoff: float = _number_field(10.0, 0.0, maximum=MAX_SECONDS)
    multiplier: float = _number_field(2.0, 1.0)
    jitter: bool = attrs.field(default=True)
    deadline: float | None = _number_field(30.0, 0.0, optional=True, maximum=MAX_SECONDS)

    @jitter.validator
    def _check_jitter(self, _attr: attrs.Attribute[bool], value: object) -> None:
        if not isinstance(value, bool):
            raise InvalidConfigError(
                f"retry policy: jitter must be a bool, got {describe_value(value)}"
            )

    @classmethod
    def no_retry(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(max_attempts=1)

    def delay(self, attempt: int, rand: float = 1.0, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Args:
            attempt: The attempt that just failed (1 for the first).
            rand: A number in ``[0, 1]``; the jitter factor when ``jitter``.
            retry_after: What the server asked for, if anything. It wins over
                the computed delay and is honoured in full (a zero
                ``retry_after`` still waits ``initial_backoff``: no hot loop).

        Returns:
            The delay in seconds, never negative. Only with ``retry_after``
            can it exceed ``max_backoff``; ``allows()`` tells whether the
            retry loop may wait that long.
        """
        if retry_after is not None:
            return max(retry_after, min(self.initial_backoff, self.max_backoff))
        try:
            growth = self.multiplier ** max(0, attempt - 1)
        except OverflowError:  # a large multiplier or attempt: far past any cap
            growth = math.inf
        base = min(self.initial_backoff * growth, self.max_backoff) if self.initial_backoff else 0.0
        return base * rand if self.jitter else base

    def allows(self, wait: float, elapsed: float) -> bool:
        """Whether a retry after ``wait`` seconds fits the cap and the deadline.

        Args:
            wait: The delay ``delay()`` computed.
            elapsed: Seconds spent since the first attempt started.
        """
        if wait > self.max_backoff:
            return False
        return self.deadline is None or elapsed + wait <= self.deadline


def default_retry_if(err: ConnectorError, idempotent: bool) -> bool:
    """The default rule: transient, and not ``maybe_applied`` unless ``idempotent``."""
    if not err.transient:
        return False
    return idempotent or not err.maybe_applied


def retry_call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    idempotent: bool = True,
    retry_if: Callable[[ConnectorError], bool] | None = None,
    before_retry: Callable[[ConnectorError], None] | None = None,
    on_retry: Callable[[int, float, ConnectorError], None] | None = None,
    description: str = "operation",
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
) -> T:
    """Call ``fn`` until it succeeds or ``policy`` says stop.

    By default only a ``ConnectorError`` with ``transient`` set is retried,
    and one with ``maybe_applied`` set only when ``idempotent``; ``retry_if``
    replaces that rule. Anything else propagates at once. When retries run
    out (attempts or deadline), the last error is re-raised, the same
    object; its ``maybe_applied`` is set when an earlier attempt may have
    taken effect (a write sent, then a retry refused, may still have
    happened). A
    server's ``retry_after`` is honoured in full: when it is longer than
    ``max_backoff`` or the time left before the deadline, the error is
    raised at once (its ``retry_after`` tells the caller, or Celery's
    countdown, how long to wait) rather than retried early.

    Args:
        fn: The attempt; takes no argument.
        policy: Attempts, backoff and deadline.
        idempotent: Whether repeating ``fn`` is harmless even if it took effect.
        retry_if: Decides whether an error may be retried (replaces the
            default rule above; attempts and deadline still apply).
        before_retry: Called with the error before each wait (reconnects, token
            refreshes); an error it raises propagates.
        on_retry: Told ``(attempt, wait, error)`` before each wait (events
            and counters: see ``observability``).
        description: Names the operation in the WARNING logged per retry.
        sleep, clock, rand: Injected for tests (a fake clock never sleeps).

    Raises:
        ConnectorError: The last error, once retrying is not allowed or has
            run out.
    """
    start = clock()
    attempt = 0
    applied = False  # an earlier attempt may have taken effect
    while True:
        attempt += 1
        try:
            return fn()
        except ConnectorError as err:
            if applied:
                err.maybe_applied = True
            applied = err.maybe_applied
            allowed = retry_if(err) if retry_if is not None else default_retry_if(err, idempotent)
            if not allowed or attempt >= policy.max_attempts:
                raise
            wait = policy.delay(attempt, rand(), err.retry_after)
            if not policy.allows(wait, clock() - start):
                raise
            logger.warning(
                "%s failed (attempt %d%s, %s: %s); retrying in %.3fs",
                description,
                attempt,
                # No "of 1000000" for a loop bounded by its deadline alone.
                f" of {policy.max_attempts}" if policy.max_attempts < MAX_ATTEMPTS_LIMIT else "",
                err.code.value,
                err.message,
                wait,
            )
            if on_retry is not None:
                on_retry(attempt, wait, err)
            if before_retry is not None:
                before_retry(err)
            sleep(wait)


def retry_once(fn: Callable[[], T], retry_if: Callable[[ConnectorError, int], bool]) -> T:
    """Call ``fn``; after a failure that ``retry_if`` allows, call it once more.

    The one "retry once on a fresh connection" shape (a connection found dead
    at checkout, a token refused once). No wait: the second attempt runs at
    once, and its error propagates.

    Args:
        fn: The attempt; takes no argument.
        retry_if: ``retry_if(err, attempt)`` is called after each failed
            attempt (1, then 2) with its ``ConnectorError``, so it can also
            record the failure; a true answer after attempt 1 reruns ``fn``.

    Raises:
        ConnectorError: From the last attempt made.
    """
    try:
        return fn()
    except ConnectorError as err:
        if not retry_if(err, 1):
            raise
    try:
        return fn()
    except ConnectorError as err:
        retry_if(err, 2)
        raise
