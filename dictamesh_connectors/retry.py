"""Retry policy (a value object) and the one retry loop every connector uses."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from dictamesh_connectors.errors import ConnectorError, InvalidConfigError

__all__ = ["RetryPolicy", "retry_call"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


# No sane policy makes more attempts; the cap also keeps every field printable.
MAX_ATTEMPTS_LIMIT = 1_000_000


def _number(
    minimum: float,
    *,
    integer: bool = False,
    optional: bool = False,
    maximum: float = float("inf"),
) -> Callable[..., object]:
    def convert(value: object) -> object:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidConfigError(f"retry policy: expected a number, got {type(value).__name__}")
        try:
            number: float = int(value) if integer else float(value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidConfigError(f"retry policy: not a number: {_show(value)}") from None
        if not (minimum <= number <= maximum) or number in (float("inf"), float("-inf")):
            bounds = f">= {minimum}" if maximum == float("inf") else f"{minimum}..{maximum}"
            raise InvalidConfigError(f"retry policy: {_show(number)} is out of range ({bounds})")
        return number

    return convert


def _show(value: object) -> str:
    """A short repr for error messages that never raises (huge ints included)."""
    if isinstance(value, int) and type(value) is int and value.bit_length() > 128:
        return f"an int with {value.bit_length()} bits"
    if type(value) in (int, float, str):
        return f"{value!r:.40}"
    return type(value).__name__


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
        initial_backoff: Base delay in seconds before the first retry.
        max_backoff: Cap on any single delay, ``retry_after`` included.
        multiplier: Growth factor of the base delay per attempt.
        jitter: Full jitter (uniform in ``[0, base]``) when true.
        deadline: Overall budget in seconds for all attempts and waits, or
            ``None`` for no budget beyond ``max_attempts``.

    Example::

        policy = RetryPolicy(max_attempts=5, initial_backoff=0.2, deadline=10)
        policy.delay(3)            # up to 0.8 s with jitter
    """

    max_attempts: int = _number_field(3, 1, integer=True, maximum=MAX_ATTEMPTS_LIMIT)
    initial_backoff: float = _number_field(0.1, 0.0)
    max_backoff: float = _number_field(10.0, 0.0)
    multiplier: float = _number_field(2.0, 1.0)
    jitter: bool = attrs.field(default=True)
    deadline: float | None = _number_field(30.0, 0.0, optional=True)

    @jitter.validator
    def _check_jitter(self, _attr: attrs.Attribute[bool], value: object) -> None:
        if not isinstance(value, bool):
            raise InvalidConfigError(f"retry policy: jitter must be a bool, got {_show(value)}")

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
                the computed delay, clamped to ``max_backoff``; a zero
                ``retry_after`` still waits ``initial_backoff`` (no hot loop).

        Returns:
            The delay in seconds, never negative and never above ``max_backoff``.
        """
        if retry_after is not None:
            return min(max(retry_after, self.initial_backoff), self.max_backoff)
        try:
            growth = self.multiplier ** max(0, attempt - 1)
        except OverflowError:  # a large multiplier or attempt: far past any cap
            growth = math.inf
        base = min(self.initial_backoff * growth, self.max_backoff) if self.initial_backoff else 0.0
        return base * rand if self.jitter else base


def retry_call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    idempotent: bool = True,
    before_retry: Callable[[ConnectorError], None] | None = None,
    description: str = "operation",
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
) -> T:
    """Call ``fn`` until it succeeds or ``policy`` says stop.

    Only ``ConnectorError`` with ``transient`` set is retried; one with
    ``maybe_applied`` set is retried only when ``idempotent``. Anything else
    propagates at once. When retries run out (attempts or deadline), the last
    error is re-raised unchanged.

    Args:
        fn: The attempt; takes no argument.
        policy: Attempts, backoff and deadline.
        idempotent: Whether repeating ``fn`` is harmless even if it took effect.
        before_retry: Called with the error before each wait (reconnects, token
            refreshes); an error it raises propagates.
        description: Names the operation in the WARNING logged per retry.
        sleep, clock, rand: Injected for tests (a fake clock never sleeps).

    Raises:
        ConnectorError: The last error, once retrying is not allowed or has
            run out.
    """
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except ConnectorError as err:
            if not _may_retry(err, idempotent) or attempt >= policy.max_attempts:
                raise
            wait = policy.delay(attempt, rand(), err.retry_after)
            if policy.deadline is not None and clock() - start + wait > policy.deadline:
                raise
            logger.warning(
                "%s failed (attempt %d of %d, %s: %s); retrying in %.3fs",
                description,
                attempt,
                policy.max_attempts,
                err.code.value,
                err.message,
                wait,
            )
            if before_retry is not None:
                before_retry(err)
            sleep(wait)


def _may_retry(err: ConnectorError, idempotent: bool) -> bool:
    if not err.transient:
        return False
    return idempotent or not err.maybe_applied
