"""Pool numbers of a ``MongoClient``, read from pymongo's own connection pools.

pymongo keeps, per server, the counters its CMAP pool works with (under
the pool's own lock): connections checked out (``active_sockets``), idle
connections (``conns``), operations that entered ``checkout``
(``operation_count``) and those past the ``maxPoolSize`` gate
(``requests``). ``stats().pool`` reads them when asked, without I/O and
without a lock, so an operation pays nothing for the numbers.

Pool *events* (a ``ConnectionPoolListener``) would give the same numbers
through the public API, but pymongo then builds and publishes three event
objects on every operation (about 28,000 instructions per ``find_one``,
measured with callgrind: more than the connector's own path); reading
the counters costs an operation nothing. These attributes have kept their
names across pymongo 4.x; a pymongo without them yields no numbers (an
empty mapping) rather than wrong ones, and ``tests/integration/observability``
proves them on the installed version.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pool_snapshot"]


def pool_snapshot(client: Any, max_pool_size: int) -> dict[str, Any]:
    """``in_use``, ``idle``, ``waiting``, ``size``, ``max`` and ``connections_made``, all servers.

    ``waiting`` counts the operations queued at the ``maxPoolSize`` gate;
    ``connections_made`` the connections opened since the client was built.
    Safe from any thread: each value is one read of an int or a length
    (atomic under the GIL), so a snapshot taken while operations run may
    mix two instants, never invent a number.
    """
    try:
        pools = [server.pool for server in list(client._topology._servers.values())]
        in_use = idle = waiting = made = 0
        for pool in pools:
            active = int(pool.active_sockets)
            in_use += active
            idle += len(pool.conns)
            waiting += max(0, int(pool.operation_count) - int(pool.requests))
            made += max(0, int(pool.next_connection_id) - 1)
    except (AttributeError, TypeError):
        return {}  # another pymongo: no numbers rather than wrong ones
    return {
        "in_use": in_use,
        "idle": idle,
        "waiting": waiting,
        "size": in_use + idle,
        "max": max_pool_size,
        "connections_made": made,
    }
