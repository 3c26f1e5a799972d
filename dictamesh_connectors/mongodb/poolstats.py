"""Pool numbers of a ``MongoClient`` from pymongo's own connection pool events (CMAP).

pymongo publishes the pool's life as monitoring events; this listener,
given to the client at construction (``event_listeners=[counter]``),
counts them so ``connector.stats().pool`` reads the numbers without
touching the client's internals and without I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dictamesh_connectors import _fork
from dictamesh_connectors._compat import require

if TYPE_CHECKING:
    from pymongo import monitoring
else:
    monitoring = require("pymongo.monitoring", extra="mongodb", connector="mongodb")

__all__ = ["PoolCounter"]


class PoolCounter(monitoring.ConnectionPoolListener):
    """Counts connections created/closed and checkouts started/done/returned, all servers.

    Thread safety: pymongo calls it from every operation's thread; one small
    lock guards the counters (never held across anything but an addition).
    """

    def __init__(self) -> None:
        self._lock = _fork.create_lock()
        self._open = 0  # guarded by _lock, as every counter below
        self._in_use = 0
        self._waiting = 0
        self._created = 0
        self._checkouts = 0
        self._failed = 0

    def snapshot(self, max_pool_size: int) -> dict[str, Any]:
        """``in_use``, ``idle``, ``waiting``, ``size``, ``max`` and the running totals."""
        with self._lock:  # counters
            size, in_use, waiting = self._open, self._in_use, self._waiting
            created, checkouts, failed = self._created, self._checkouts, self._failed
        return {
            "in_use": in_use,
            "idle": max(0, size - in_use),
            "waiting": waiting,
            "size": size,
            "max": max_pool_size,
            "connections_made": created,
            "checkouts": checkouts,
            "checkout_failures": failed,
        }

    # pymongo's ConnectionPoolListener methods

    def pool_created(self, event: Any) -> None:
        pass

    def pool_ready(self, event: Any) -> None:
        pass

    def pool_cleared(self, event: Any) -> None:
        pass

    def pool_closed(self, event: Any) -> None:
        pass

    def connection_created(self, event: Any) -> None:
        with self._lock:  # counters
            self._open += 1
            self._created += 1

    def connection_ready(self, event: Any) -> None:
        pass

    def connection_closed(self, event: Any) -> None:
        with self._lock:  # counters
            self._open -= 1

    def connection_check_out_started(self, event: Any) -> None:
        with self._lock:  # counters
            self._waiting += 1

    def connection_check_out_failed(self, event: Any) -> None:
        with self._lock:  # counters
            self._waiting -= 1
            self._failed += 1

    def connection_checked_out(self, event: Any) -> None:
        with self._lock:  # counters
            self._waiting -= 1
            self._in_use += 1
            self._checkouts += 1

    def connection_checked_in(self, event: Any) -> None:
        with self._lock:  # counters
            self._in_use -= 1
