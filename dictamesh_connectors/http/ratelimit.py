"""Client-side rate limiting: a token bucket shared by every thread of a connector."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from dictamesh_connectors import _fork

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` requests per second on average, up to ``burst`` at once.

    Thread safety: one bucket is shared by all threads of a connector. The
    lock guards only the bucket arithmetic; each caller *reserves* its token
    under the lock (the balance may go negative) and sleeps outside it, so
    waiting threads never block each other and are served in arrival order.

    Example::

        bucket = TokenBucket(rate=5, burst=2)
        bucket.acquire()          # returns at once, or after the wait it reserved

    Args:
        rate: Tokens added per second (> 0).
        burst: Bucket capacity; 0 means ``ceil(rate)`` (at least 1).
        clock, sleep: Injected for tests.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError("rate must be a positive number")
        self.rate = float(rate)
        self.capacity = float(burst or max(1, math.ceil(rate)))
        self._clock = clock
        self._sleep = sleep
        self._lock = _fork.create_lock()  # a forked child gets it back unlocked
        self._tokens = self.capacity
        self._updated = clock()

    def reserve(self) -> float:
        """Take one token and return the seconds to wait before using it (no sleep)."""
        with self._lock:  # _tokens, _updated
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Take one token, sleeping (outside the lock) until it is due.

        Returns:
            The seconds waited.
        """
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait
