"""Pool statistics read from each driver's own bookkeeping, for ``connector.stats().pool``.

Every connector's ``_pool_stats(handle)`` override calls one of these. They
import no driver (they read the objects they are given), do no network I/O
and take no connector lock. The common keys:

============  ================================================================
``in_use``    connections (or requests) checked out by an operation now
``idle``      open connections waiting in the pool
``waiting``   callers waiting for a connection (Kafka: messages queued)
``size``      open connections (``in_use + idle``)
``max``       the pool's upper bound
============  ================================================================

A driver that does not know a number leaves its key out rather than
guessing (urllib3 does not count the threads blocked on a full pool).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "librdkafka_pool_stats",
    "parse_librdkafka_stats",
    "psycopg_pool_stats",
    "urllib3_pool_stats",
]


def psycopg_pool_stats(pool: Any) -> dict[str, Any]:
    """From ``psycopg_pool.ConnectionPool.get_stats()`` (a dict of its measures)."""
    measures = pool.get_stats()
    size = int(measures.get("pool_size", 0))
    idle = int(measures.get("pool_available", 0))
    return {
        "in_use": max(0, size - idle),
        "idle": idle,
        "waiting": int(measures.get("requests_waiting", 0)),
        "size": size,
        "min": int(measures.get("pool_min", 0)),
        "max": int(measures.get("pool_max", 0)),
        "connections_made": int(measures.get("connections_num", 0)),
        "requests": int(measures.get("requests_num", 0)),
        "requests_queued": int(measures.get("requests_queued", 0)),
        "timeouts": int(measures.get("requests_errors", 0)),
    }


def urllib3_pool_stats(pools: Iterable[Any]) -> dict[str, Any]:
    """Summed over urllib3 ``HTTPConnectionPool`` objects (one per origin).

    A pool's queue holds idle connections and ``None`` placeholders for the
    slots not yet connected; a checked-out connection is not in it. So
    ``idle`` counts the connections in the queue and ``in_use`` the slots
    missing from it (a non-blocking pool may open more than ``maxsize``
    under load: those extra ones are not counted).
    """
    in_use = idle = maximum = made = origins = 0
    for pool in pools:
        queue = getattr(pool, "pool", None)
        if queue is None:  # closed
            continue
        origins += 1
        slots = list(queue.queue)  # a copy: the list may change under us
        pool_idle = sum(1 for conn in slots if conn is not None)
        idle += pool_idle
        in_use += max(0, queue.maxsize - len(slots))
        maximum += queue.maxsize
        made += pool.num_connections
    return {
        "in_use": in_use,
        "idle": idle,
        "size": in_use + idle,
        "max": maximum,
        "origins": origins,
        "connections_made": made,
    }


def parse_librdkafka_stats(payload: str) -> dict[str, Any]:
    """Reduce one librdkafka statistics JSON document (``stats_cb``) to its pool numbers.

    Brokers learned from the cluster (``nodeid >= 0``) count; the bootstrap
    placeholders do not.
    """
    doc = json.loads(payload)
    brokers: Mapping[str, Any] = doc.get("brokers") or {}
    up = busy = in_flight = 0
    for broker in brokers.values():
        if broker.get("nodeid", -1) < 0:
            continue
        if broker.get("state") == "UP":
            up += 1
            waiting_reply = int(broker.get("waitresp_cnt", 0))
            in_flight += waiting_reply
            busy += 1 if waiting_reply or broker.get("outbuf_cnt", 0) else 0
    return {
        "brokers_up": up,
        "brokers_busy": busy,
        "requests_in_flight": in_flight,
        "queue_max": int(doc.get("msg_max", 0)),
        "queue_bytes": int(doc.get("msg_size", 0)),
    }


def librdkafka_pool_stats(latest: Mapping[str, Any] | None, queued: int) -> dict[str, Any]:
    """A producer's pool numbers: broker connections from its latest statistics.

    Args:
        latest: ``parse_librdkafka_stats`` of the last ``stats_cb`` document,
            or ``None`` before the first one arrived.
        queued: ``len(producer)``, messages not yet delivered (exact, now).

    ``size`` is the broker connections up, ``in_use`` those with a request
    awaiting its reply, ``idle`` the others, ``waiting`` the messages queued.
    """
    stats: dict[str, Any] = {"waiting": queued}
    if latest is not None:
        up, busy = latest["brokers_up"], latest["brokers_busy"]
        stats.update(
            in_use=busy,
            idle=max(0, up - busy),
            size=up,
            requests_in_flight=latest["requests_in_flight"],
            queue_max=latest["queue_max"],
            queue_bytes=latest["queue_bytes"],
        )
    return stats
