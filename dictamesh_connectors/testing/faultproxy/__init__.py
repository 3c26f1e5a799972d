"""A TCP fault-injection proxy for tests: latency, bandwidth, resets, blackholes.

``FaultProxy`` sits between a client (a connector) and a real server on
127.0.0.1. Faults are switched on and off at run time from Python, from any
thread, and act on the connections already open as well as on new ones::

    with FaultProxy(upstream=("127.0.0.1", 55432)) as proxy:
        dsn = f"postgresql://app:pw@127.0.0.1:{proxy.port}/app"
        proxy.set_latency(0.2, jitter=0.05)     # every chunk, both ways
        proxy.blackhole(True)                   # nothing gets through
        proxy.reset_connections()               # RST every open connection
        proxy.clear()                           # back to a plain proxy

The faults, what they do and why this is not toxiproxy: ``proxy.py``.
"""

from __future__ import annotations

from dictamesh_connectors.testing.faultproxy.proxy import (
    Direction,
    FaultProxy,
    FaultProxyError,
    FaultProxyStats,
)

__all__ = ["Direction", "FaultProxy", "FaultProxyError", "FaultProxyStats"]
