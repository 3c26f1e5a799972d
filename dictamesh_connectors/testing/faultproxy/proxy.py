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

Faults
======

=======================  ===================================================
``set_latency``          each chunk waits ``latency +- jitter`` seconds
                         (order kept), per direction
``set_bandwidth``        at most N bytes per second, per direction
``blackhole``            nothing is forwarded (the bytes wait in the proxy
                         and the kernel, as in a network partition, and flow
                         when it is lifted); new connections are accepted
``half_open``            the server end vanishes: the upstream socket is
                         reset, the client's stays open, is read and never
                         answered, even after the fault is lifted
``reset_connections``    RST (``SO_LINGER`` 0) both ends of every open
                         connection, now
``reset_next``           RST the next connection(s) that carry data in one
                         direction, optionally after N more bytes
``slow_close``           an end-of-stream (FIN) reaches the other side only
                         after N seconds
``refuse``               the listening socket is closed: new connections
                         get ECONNREFUSED; open ones carry on
=======================  ===================================================

Directions: ``"upstream"`` is client -> server, ``"downstream"`` is
server -> client, ``"both"`` is both.

Why not toxiproxy
=================

Toxiproxy (``github.com/Shopify/toxiproxy/v2``) is served by the Go module
proxy and would build with the machine's Go. It is still not what we ship:

- this proxy is for our users' tests as much as for ours; a pure-Python
  module comes with the wheel, needs no Go toolchain, no extra process to
  start, find a port for and kill, and no HTTP control API;
- faults here are exact and synchronous: ``reset_connections()`` returns
  after every socket was reset, ``refuse`` gives a real ECONNREFUSED (a
  disabled toxiproxy proxy does the same, but a toxic cannot), and
  ``half_open`` leaves a silent client socket, which toxiproxy has no toxic
  for;
- ``stats`` counts connections, bytes and the faults actually applied, so a
  test can check that its fault happened.

Design: one selector loop thread owns every socket (the listener, both ends
of each connection, a wake-up socket pair). API calls change settings under
a lock held for memory only, or hand the loop a command and wait for it (a
bounded wait); the lock is never held across socket I/O. ``close()`` stops
the loop and joins it within a timeout; nothing is left open. The layers:
this module is the API, ``_state.py`` what it shares with the loop (under
the lock), ``_loop.py`` the loop and its sockets.
"""

from __future__ import annotations

import math
import random
import socket
from collections.abc import Callable
from typing import Literal, TypeVar

from dictamesh_connectors._convert import to_seconds
from dictamesh_connectors._fork import register_child_reset
from dictamesh_connectors.testing.faultproxy._loop import Loop
from dictamesh_connectors.testing.faultproxy._state import (
    DOWN,
    UP,
    Command,
    FaultProxyError,
    FaultProxyStats,
    ResetPlan,
    Shape,
    State,
    noop,
)

__all__ = ["Direction", "FaultProxy", "FaultProxyError", "FaultProxyStats"]

Direction = Literal["upstream", "downstream", "both"]
"""``"upstream"`` (client -> server), ``"downstream"`` (server -> client) or ``"both"``."""

_T = TypeVar("_T")


def _check_direction(direction: str) -> tuple[str, ...]:
    if not isinstance(direction, str):
        raise TypeError(f"direction must be a str, not {type(direction).__name__}")
    if direction == "both":
        return (UP, DOWN)
    if direction in (UP, DOWN):
        return (direction,)
    raise ValueError(f"direction must be 'upstream', 'downstream' or 'both', not {direction!r}")


def _check_seconds(name: str, value: float) -> float:
    # The core's duration check: finite, >= 0, no upper bound; its
    # InvalidConfigError is the ValueError this API documents.
    return to_seconds(value, name=name, maximum=math.inf, no_limit=None)


def _check_count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value!r}")
    return value


class FaultProxy:
    """A TCP proxy on 127.0.0.1 that injects faults between a client and a server.

    It starts listening (an ephemeral port unless ``listen_port`` is given)
    and serving when constructed; ``close()`` (or leaving the ``with``
    block) stops it. Every method may be called from any thread, at any
    time, and acts on open connections as well as on new ones.

    Thread safety: all state is guarded by one lock held for memory only;
    socket work happens on the proxy's own loop thread. Methods that act on
    sockets (``reset_connections``, ``refuse``, ``half_open``, ``clear``)
    return once the loop has done it.

    Example::

        with FaultProxy(upstream=("127.0.0.1", 57017)) as proxy:
            client = pymongo.MongoClient("127.0.0.1", proxy.port, directConnection=True)
            proxy.blackhole(True)
            ...  # the client's timeout fires
            proxy.clear()

    Args:
        upstream: the ``(host, port)`` of the real server.
        listen_port: the port to listen on (0: an ephemeral one).
        seed: seeds the jitter's random numbers, for a replayable run.
        command_timeout: how long a method waits for the loop thread.

    Raises:
        FaultProxyError: the port cannot be bound or the upstream address
            cannot be resolved.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        listen_port: int = 0,
        seed: int | None = None,
        command_timeout: float = 5.0,
    ) -> None:
        host, port = upstream
        _check_count("listen_port", listen_port, 0)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise FaultProxyError(f"cannot resolve upstream {host}:{port}: {exc}") from None
        family, _, _, _, address = infos[0]
        self.upstream: tuple[str, int] = (host, port)
        """The real server's ``(host, port)``."""
        self._command_timeout = _check_seconds("command_timeout", command_timeout)
        self._state = State()
        self._loop = Loop(self._state, listen_port, (family, address), random.Random(seed))
        self.port: int = self._loop.port
        """The port the proxy listens on (127.0.0.1)."""
        self._loop.start()
        register_child_reset(self)

    # -- public API ---------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the proxy listens on: always ``"127.0.0.1"``."""
        return "127.0.0.1"

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` to point a client at."""
        return (self.host, self.port)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (or the loop died)."""
        with self._state.lock:  # lifecycle flags
            return self._state.closed or self._state.failure is not None

    @property
    def stats(self) -> FaultProxyStats:
        """A consistent snapshot of the counters (see ``FaultProxyStats``)."""
        return self._state.snapshot()

    def set_latency(
        self, latency: float, jitter: float = 0.0, *, direction: Direction = "both"
    ) -> None:
        """Delay every chunk by ``latency`` seconds, give or take ``jitter``.

        The delay of each chunk is drawn uniformly from ``[latency - jitter,
        latency + jitter]`` (never below 0); chunks keep their order. It
        applies to data read from now on. ``set_latency(0)`` switches it off.

        Raises:
            ValueError: a negative or non-finite value, or a bad direction.
            FaultProxyError: the proxy is closed.
        """
        latency = _check_seconds("latency", latency)
        jitter = _check_seconds("jitter", jitter)
        directions = _check_direction(direction)
        with self._state.lock:  # settings
            self._check_usable()
            for name in directions:
                self._state.shapes[name].latency, self._state.shapes[name].jitter = latency, jitter
        self._sync()

    def set_bandwidth(
        self, bytes_per_second: float | None, *, direction: Direction = "both"
    ) -> None:
        """Forward at most ``bytes_per_second`` (``None``: no limit).

        Beyond 1 MiB held per direction the proxy stops reading, so the
        sender's TCP window fills as it would on a slow link.

        Raises:
            ValueError: a rate that is not a finite number > 0, or a bad
                direction.
            FaultProxyError: the proxy is closed.
        """
        if bytes_per_second is not None:
            rate = _check_seconds("bytes_per_second", bytes_per_second)
            if rate <= 0:
                raise ValueError("bytes_per_second must be > 0 (None: no limit)")
        directions = _check_direction(direction)
        with self._state.lock:  # settings
            self._check_usable()
            for name in directions:
                self._state.shapes[name].bandwidth = (
                    None if bytes_per_second is None else float(bytes_per_second)
                )
        self._sync()

    def blackhole(self, enabled: bool = True, *, direction: Direction = "both") -> None:
        """Forward nothing in ``direction`` while enabled (accept, never answer).

        The proxy stops reading that direction: bytes already read wait in
        the proxy and the rest in the kernel buffers, so nothing is lost or
        reordered and it all flows on when the blackhole is lifted (by then
        a client has usually timed out and dropped the connection). New
        connections are still accepted and connected upstream.
        ``direction="downstream"`` lets requests reach the server and drops
        nothing but holds every answer: the case of a write that was
        applied although the client never hears so.

        Raises:
            ValueError: a bad direction.
            FaultProxyError: the proxy is closed.
        """
        directions = _check_direction(direction)
        with self._state.lock:  # settings, counters
            self._check_usable()
            for name in directions:
                shape = self._state.shapes[name]
                if enabled and not shape.blackhole:
                    shape.blackhole_epoch += 1
                shape.blackhole = bool(enabled)
        self._sync()

    def half_open(self, enabled: bool = True) -> None:
        """Make every connection half open: the server end vanishes, the client's stays.

        While enabled, each open connection has its upstream socket reset
        and its client socket kept open: what the client sends is read and
        dropped, nothing is ever answered, no FIN or RST is sent to it (a
        server that crashed without the client noticing). New connections
        are accepted the same way, never connected upstream. Lifting it
        does not heal those connections (they have no server end): only
        new ones work. Returns once the open connections were cut.

        Raises:
            FaultProxyError: the proxy is closed or its loop did not answer.
        """
        with self._state.lock:  # settings
            self._check_usable()
            self._state.half_open = bool(enabled)
        self._call(self._loop.cut_all if enabled else noop)

    def slow_close(self, seconds: float) -> None:
        """Pass an end of stream (FIN) on only ``seconds`` after it came (0: at once).

        Applies to closes that happen from now on.

        Raises:
            ValueError: a negative or non-finite value.
            FaultProxyError: the proxy is closed.
        """
        seconds = _check_seconds("seconds", seconds)
        with self._state.lock:  # settings
            self._check_usable()
            self._state.slow_close = seconds
        self._sync()

    def reset_connections(self) -> int:
        """Reset (RST, ``SO_LINGER`` 0) both ends of every open connection now.

        Returns:
            How many connections were reset; they are gone when it returns.

        Raises:
            FaultProxyError: the proxy is closed or its loop did not answer.
        """
        return self._call(self._loop.reset_all)

    def reset_next(
        self, count: int = 1, *, direction: Direction = "upstream", after_bytes: int = 0
    ) -> None:
        """Reset the next ``count`` connections that carry data in ``direction``.

        From this call on, bytes arriving in ``direction`` (on any
        connection) are counted; the connection whose data takes the count
        past ``after_bytes`` gets the first ``after_bytes`` forwarded and
        is then reset on both ends (the rest of its data is dropped). The
        count restarts for the next of the ``count`` connections. Calling
        it again replaces what was armed; ``clear()`` disarms it.
        ``direction="downstream"`` lets a request reach the server and
        resets the connection when the answer comes back. Any data counts:
        bytes a blackhole held flow when it is lifted and may take the
        reset, so arm it after they did (or before the blackhole).

        Raises:
            ValueError: ``count`` < 1, ``after_bytes`` < 0, or a bad
                direction (``"both"`` arms both).
            FaultProxyError: the proxy is closed.
        """
        _check_count("count", count, 1)
        _check_count("after_bytes", after_bytes, 0)
        directions = _check_direction(direction)
        with self._state.lock:  # settings
            self._check_usable()
            for name in directions:
                self._state.reset_plans[name] = ResetPlan(count=count, after_bytes=after_bytes)

    def refuse(self, enabled: bool = True) -> None:
        """Refuse new connections (ECONNREFUSED) while enabled; open ones carry on.

        The listening socket is closed, and opened again on the same port
        when refusing ends.

        Raises:
            FaultProxyError: the port could not be bound again (another
                process took it), the proxy is closed, or its loop did not
                answer.
        """
        with self._state.lock:  # settings
            self._check_usable()
            if self._state.refusing == bool(enabled):
                return
            self._state.refusing = bool(enabled)
        self._call(self._loop.sync_listening)

    def clear(self) -> None:
        """Switch every fault off: a plain proxy again (counters are kept).

        Latency, bandwidth, blackholes, half open, slow close, armed resets
        and refusing all end; connections already cut by ``half_open`` stay
        dead.

        Raises:
            FaultProxyError: as ``refuse``.
        """
        with self._state.lock:  # settings
            self._check_usable()
            self._state.shapes = {UP: Shape(), DOWN: Shape()}
            self._state.half_open = False
            self._state.slow_close = 0.0
            self._state.reset_plans.clear()
        self.refuse(False)
        self._sync()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the proxy: close every socket and join the loop thread.

        Idempotent. Open connections are closed (a FIN to both ends).

        Raises:
            FaultProxyError: the loop thread did not stop within ``timeout``
                seconds, or it had died of an error (the error is its
                ``__cause__``).
        """
        with self._state.lock:  # lifecycle flags
            if self._state.forked:
                return
            already = self._state.close_called
            self._state.close_called = self._state.closed = self._state.stopping = True
            failure = self._state.failure
        if not already:
            self._loop.wake()
            if not self._loop.join(timeout):
                raise FaultProxyError(
                    f"fault proxy on port {self.port} did not stop within {timeout} s"
                )
        if failure is not None and not already:
            raise FaultProxyError(
                f"fault proxy on port {self.port} failed: {failure!r}"
            ) from failure

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<FaultProxy 127.0.0.1:{self.port} -> {self.upstream[0]}:{self.upstream[1]} {state}>"
        )

    def _after_fork_in_child(self) -> None:
        # The loop thread does not exist in the child and the sockets are the
        # parent's: the child's copy is unusable (and never closes them).
        self._state.forked = True

    # -- calling into the loop ---------------------------------------------

    def _check_usable(self) -> None:
        # Called with _lock held.
        if self._state.forked:
            raise FaultProxyError("this fault proxy belongs to the parent process")
        if self._state.failure is not None:
            raise FaultProxyError(
                f"fault proxy failed: {self._state.failure!r}"
            ) from self._state.failure
        if self._state.closed:
            raise FaultProxyError("fault proxy is closed")

    def _sync(self) -> None:
        """Return once the loop has taken up the settings as they are now."""
        self._call(noop)

    def _call(self, fn: Callable[[], _T]) -> _T:
        command = Command(fn)
        with self._state.lock:  # commands
            self._check_usable()
            self._state.commands.append(command)
        self._loop.wake()
        if not command.done.wait(self._command_timeout):
            raise FaultProxyError(
                f"fault proxy loop did not answer within {self._command_timeout} s"
            )
        if command.error is not None:
            raise command.error
        return command.result  # type: ignore[return-value]  # what fn returned
