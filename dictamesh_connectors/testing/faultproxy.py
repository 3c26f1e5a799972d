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
the loop and joins it within a timeout; nothing is left open.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import math
import random
import selectors
import socket
import struct
import threading
import time
import types
from collections.abc import Callable, Mapping
from typing import Literal, TypeVar

import attrs

from dictamesh_connectors._fork import create_lock, register_child_reset

__all__ = ["Direction", "FaultProxy", "FaultProxyError", "FaultProxyStats"]

logger = logging.getLogger(__name__)

Direction = Literal["upstream", "downstream", "both"]
"""``"upstream"`` (client -> server), ``"downstream"`` (server -> client) or ``"both"``."""

_UP = "upstream"
_DOWN = "downstream"
_CHUNK = 65536
# Bytes read but not yet forwarded (latency, bandwidth) per direction of one
# connection; beyond it the proxy stops reading, so TCP pushes back.
_HELD_LIMIT = 1 << 20
_CONNECT_TIMEOUT = 10.0
_MAX_WAIT = 1.0
_LINGER_ZERO = struct.pack("ii", 1, 0)
_FAULT_KINDS = (
    "bandwidth",
    "blackhole",
    "half_open",
    "latency",
    "refuse",
    "reset",
    "slow_close",
)

_T = TypeVar("_T")


class FaultProxyError(Exception):
    """The proxy itself failed: it could not listen, its loop did not answer
    in time or died, or it is closed."""


@attrs.frozen
class FaultProxyStats:
    """A snapshot of what a ``FaultProxy`` has done since it started.

    Attributes:
        accepted: connections accepted from clients.
        active: connections open now.
        bytes_upstream: bytes delivered to the server.
        bytes_downstream: bytes delivered to clients.
        upstream_failures: connections whose server end could not be opened
            (the client end was then reset).
        faults: how often each fault was applied: ``reset`` (connections
            reset), ``half_open`` (connections cut), ``blackhole``
            (connections held, once per switch-on), ``latency`` (chunks
            delayed), ``bandwidth`` (sends paced), ``slow_close`` (closes
            delayed), ``refuse`` (times the listener was closed).
    """

    accepted: int
    active: int
    bytes_upstream: int
    bytes_downstream: int
    upstream_failures: int
    faults: Mapping[str, int]


@attrs.define
class _Shape:
    """The settings of one direction (guarded by FaultProxy._lock)."""

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    blackhole: bool = False
    blackhole_epoch: int = 0


@attrs.define
class _ResetPlan:
    """A ``reset_next`` armed for one direction (guarded by FaultProxy._lock)."""

    count: int
    after_bytes: int
    seen: int = 0


@attrs.frozen
class _Settings:
    """What the loop reads once per turn (a copy, so no lock is held after)."""

    shapes: Mapping[str, _Shape]
    half_open: bool
    slow_close: float


class _Command:
    """A function the loop thread runs for a caller that waits for it."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # handed to the caller, who re-raises it
            self.error = exc
        finally:
            self.done.set()


def _noop() -> None:
    """A command that only waits for the loop's next turn."""


class _Broken(Exception):
    """A socket of a connection failed: the connection is torn down."""


class _Pipe:
    """One direction of one connection: read from ``src``, write to ``dst``.

    Owned by the loop thread only.
    """

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.src: socket.socket | None = None
        self.dst: socket.socket | None = None
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.held = 0  # bytes in queue
        self.last_release = 0.0  # keeps chunks in order under jitter
        self.not_before = 0.0  # bandwidth pacing
        self.blocked = False  # the last send would have blocked: wait for writable
        self.eof = False  # src sent FIN
        self.eof_at = 0.0  # when to pass the FIN on (slow close)
        self.shut = False  # FIN passed on to dst
        self.discard = False  # half open: read and drop
        self.reset_when_drained = False  # reset_next cut here: RST once queue is sent
        self.blackhole_epoch = 0

    def wants_read(self, shape: _Shape) -> bool:
        return (
            self.src is not None
            and not self.eof
            and not shape.blackhole
            and (self.discard or self.held < _HELD_LIMIT)
        )

    def wants_write(self) -> bool:
        return self.blocked and bool(self.queue)


class _Link:
    """One proxied connection: a client socket, an upstream socket, two pipes.

    Owned by the loop thread only.
    """

    def __init__(self, number: int, client: socket.socket) -> None:
        self.number = number
        self.client: socket.socket | None = client
        self.upstream: socket.socket | None = None
        self.connecting = False
        self.connect_deadline = 0.0
        self.up = _Pipe(_UP)
        self.down = _Pipe(_DOWN)
        self.half = False
        self.done = False

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.client, self.upstream) if s is not None]


def _close(sock: socket.socket | None, *, rst: bool) -> None:
    if sock is None:
        return
    if rst:
        with contextlib.suppress(OSError):  # already dead: a plain close is all there is
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    sock.close()


def _check_direction(direction: str) -> tuple[str, ...]:
    if not isinstance(direction, str):
        raise TypeError(f"direction must be a str, not {type(direction).__name__}")
    if direction == "both":
        return (_UP, _DOWN)
    if direction in (_UP, _DOWN):
        return (direction,)
    raise ValueError(f"direction must be 'upstream', 'downstream' or 'both', not {direction!r}")


def _check_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
    return float(value)


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
        self._upstream_family = family
        self._upstream_address = address
        self.upstream: tuple[str, int] = (host, port)
        """The real server's ``(host, port)``."""
        self._command_timeout = _check_seconds("command_timeout", command_timeout)
        self._rand = random.Random(seed)

        self._lock = create_lock()
        # Guarded by _lock: settings, counters, commands, lifecycle flags.
        self._shapes = {_UP: _Shape(), _DOWN: _Shape()}
        self._half_open = False
        self._slow_close = 0.0
        self._refusing = False
        self._reset_plans: dict[str, _ResetPlan] = {}
        self._commands: list[_Command] = []
        self._stopping = False
        self._closed = False
        self._close_called = False
        self._failure: BaseException | None = None
        self._forked = False
        self._accepted = 0
        self._active = 0
        self._bytes = {_UP: 0, _DOWN: 0}
        self._upstream_failures = 0
        self._faults = dict.fromkeys(_FAULT_KINDS, 0)

        # Owned by the loop thread once it runs.
        self._links: list[_Link] = []
        self._registered: dict[socket.socket, int] = {}
        self._numbers = 0

        self._listener: socket.socket | None = self._listen(listen_port)
        self.port: int = self._listener.getsockname()[1]
        """The port the proxy listens on (127.0.0.1)."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        # The wake-up socket stays registered; everything else is (un)registered
        # by _update_interest, which keeps _registered in step with the selector.
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(
            target=self._serve, name=f"faultproxy-{self.port}", daemon=True
        )
        self._thread.start()
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
        with self._lock:  # lifecycle flags
            return self._closed or self._failure is not None

    @property
    def stats(self) -> FaultProxyStats:
        """A consistent snapshot of the counters (see ``FaultProxyStats``)."""
        with self._lock:  # counters
            return FaultProxyStats(
                accepted=self._accepted,
                active=self._active,
                bytes_upstream=self._bytes[_UP],
                bytes_downstream=self._bytes[_DOWN],
                upstream_failures=self._upstream_failures,
                faults=types.MappingProxyType(dict(self._faults)),
            )

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
        with self._lock:  # settings
            self._check_usable()
            for name in directions:
                self._shapes[name].latency, self._shapes[name].jitter = latency, jitter
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
        with self._lock:  # settings
            self._check_usable()
            for name in directions:
                self._shapes[name].bandwidth = (
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
        with self._lock:  # settings, counters
            self._check_usable()
            for name in directions:
                shape = self._shapes[name]
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
        with self._lock:  # settings
            self._check_usable()
            self._half_open = bool(enabled)
        self._call(self._cut_all if enabled else _noop)

    def slow_close(self, seconds: float) -> None:
        """Pass an end of stream (FIN) on only ``seconds`` after it came (0: at once).

        Applies to closes that happen from now on.

        Raises:
            ValueError: a negative or non-finite value.
            FaultProxyError: the proxy is closed.
        """
        seconds = _check_seconds("seconds", seconds)
        with self._lock:  # settings
            self._check_usable()
            self._slow_close = seconds
        self._sync()

    def reset_connections(self) -> int:
        """Reset (RST, ``SO_LINGER`` 0) both ends of every open connection now.

        Returns:
            How many connections were reset; they are gone when it returns.

        Raises:
            FaultProxyError: the proxy is closed or its loop did not answer.
        """
        return self._call(self._reset_all)

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
        with self._lock:  # settings
            self._check_usable()
            for name in directions:
                self._reset_plans[name] = _ResetPlan(count=count, after_bytes=after_bytes)

    def refuse(self, enabled: bool = True) -> None:
        """Refuse new connections (ECONNREFUSED) while enabled; open ones carry on.

        The listening socket is closed, and opened again on the same port
        when refusing ends.

        Raises:
            FaultProxyError: the port could not be bound again (another
                process took it), the proxy is closed, or its loop did not
                answer.
        """
        with self._lock:  # settings
            self._check_usable()
            if self._refusing == bool(enabled):
                return
            self._refusing = bool(enabled)
        self._call(self._sync_listening)

    def clear(self) -> None:
        """Switch every fault off: a plain proxy again (counters are kept).

        Latency, bandwidth, blackholes, half open, slow close, armed resets
        and refusing all end; connections already cut by ``half_open`` stay
        dead.

        Raises:
            FaultProxyError: as ``refuse``.
        """
        with self._lock:  # settings
            self._check_usable()
            self._shapes = {_UP: _Shape(), _DOWN: _Shape()}
            self._half_open = False
            self._slow_close = 0.0
            self._reset_plans.clear()
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
        with self._lock:  # lifecycle flags
            if self._forked:
                return
            already = self._close_called
            self._close_called = self._closed = self._stopping = True
            failure = self._failure
        if not already:
            self._wake()
            self._thread.join(timeout)
            if self._thread.is_alive():
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
        self._forked = True

    # -- calling into the loop ---------------------------------------------

    def _check_usable(self) -> None:
        # Called with _lock held.
        if self._forked:
            raise FaultProxyError("this fault proxy belongs to the parent process")
        if self._failure is not None:
            raise FaultProxyError(f"fault proxy failed: {self._failure!r}") from self._failure
        if self._closed:
            raise FaultProxyError("fault proxy is closed")

    def _wake(self) -> None:
        # BlockingIOError: already woken (buffer full); OSError: closed. Either way done.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _sync(self) -> None:
        """Return once the loop has taken up the settings as they are now."""
        self._call(_noop)

    def _call(self, fn: Callable[[], _T]) -> _T:
        command = _Command(fn)
        with self._lock:  # commands
            self._check_usable()
            self._commands.append(command)
        self._wake()
        if not command.done.wait(self._command_timeout):
            raise FaultProxyError(
                f"fault proxy loop did not answer within {self._command_timeout} s"
            )
        if command.error is not None:
            raise command.error
        return command.result  # type: ignore[return-value]  # what fn returned

    # -- the loop (its own thread) -------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(128)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            raise FaultProxyError(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
        return listener

    def _serve(self) -> None:
        try:
            while self._turn():
                pass
        except BaseException as exc:
            logger.exception("fault proxy on port %s failed", self.port)
            with self._lock:  # lifecycle flags
                self._failure = exc
        finally:
            self._shutdown()

    def _turn(self) -> bool:
        with self._lock:  # commands
            if self._stopping:
                return False
            commands, self._commands = self._commands, []
        # Commands first, the settings after: a caller whose command (or
        # barrier) has run knows every later event sees its settings.
        for command in commands:
            command.run()
        with self._lock:  # settings: copied, then released
            settings = _Settings(
                shapes={name: attrs.evolve(shape) for name, shape in self._shapes.items()},
                half_open=self._half_open,
                slow_close=self._slow_close,
            )
        now = time.monotonic()
        wake_at = now + _MAX_WAIT
        for link in list(self._links):
            when = self._pump_link(link, settings, now)
            if when is not None:
                wake_at = min(wake_at, when)
        self._links = [link for link in self._links if not link.done]
        self._update_interest(settings)
        with self._lock:  # counters
            self._active = len(self._links)
        for key, events in self._selector.select(max(0.0, wake_at - time.monotonic())):
            self._on_event(key, events, settings)
        return True

    def _update_interest(self, settings: _Settings) -> None:
        wanted: dict[socket.socket, int] = {}
        if self._listener is not None:
            wanted[self._listener] = selectors.EVENT_READ
        for link in self._links:
            if link.client is not None:
                mask = 0
                if link.up.wants_read(settings.shapes[_UP]) and not link.connecting:
                    mask |= selectors.EVENT_READ
                if link.down.wants_write():
                    mask |= selectors.EVENT_WRITE
                wanted[link.client] = mask
            if link.upstream is not None:
                if link.connecting:
                    mask = selectors.EVENT_WRITE
                else:
                    mask = 0
                    if link.down.wants_read(settings.shapes[_DOWN]):
                        mask |= selectors.EVENT_READ
                    if link.up.wants_write():
                        mask |= selectors.EVENT_WRITE
                wanted[link.upstream] = mask
        for sock in list(self._registered):
            if wanted.get(sock, 0) == 0:
                self._selector.unregister(sock)
                del self._registered[sock]
        for sock, mask in wanted.items():
            if mask == 0:
                continue
            old = self._registered.get(sock)
            if old is None:
                self._selector.register(sock, mask)
            elif old != mask:
                self._selector.modify(sock, mask)
            self._registered[sock] = mask

    def _find(self, sock: socket.socket) -> _Link | None:
        for link in self._links:
            if link.client is sock or link.upstream is sock:
                return link
        return None

    def _on_event(self, key: selectors.SelectorKey, events: int, settings: _Settings) -> None:
        sock = key.fileobj
        if sock is self._wake_r:
            try:
                while self._wake_r.recv(4096):
                    pass
            except BlockingIOError:
                pass
            return
        if sock is self._listener:
            self._accept(settings)
            return
        assert isinstance(sock, socket.socket)
        link = self._find(sock)
        if link is None or link.done:
            return
        # An error or hang-up comes as READ|WRITE whatever was asked for:
        # serve only what this socket asked for (a blackholed side asks none).
        events &= key.events
        try:
            if sock is link.upstream and link.connecting:
                self._finish_connect(link)
                return
            if events & selectors.EVENT_WRITE:
                (link.down if sock is link.client else link.up).blocked = False
            if events & selectors.EVENT_READ:
                self._read(link, link.up if sock is link.client else link.down, settings)
        except _Broken:
            self._abort(link)

    def _accept(self, settings: _Settings) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ECONNABORTED and friends: that client gave up already.
                logger.debug("fault proxy accept failed: %s", exc)
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._numbers += 1
            link = _Link(self._numbers, client)
            link.up.src = link.down.dst = client
            self._links.append(link)
            with self._lock:  # counters
                self._accepted += 1
            if settings.half_open:
                self._cut(link)
                continue
            self._open_upstream(link)

    def _open_upstream(self, link: _Link) -> None:
        upstream = socket.socket(self._upstream_family, socket.SOCK_STREAM)
        upstream.setblocking(False)
        link.upstream = upstream
        err = upstream.connect_ex(self._upstream_address)
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
            self._upstream_failed(link, err)
            return
        link.connecting = True
        link.connect_deadline = time.monotonic() + _CONNECT_TIMEOUT

    def _finish_connect(self, link: _Link) -> None:
        assert link.upstream is not None
        err = link.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._upstream_failed(link, err)
            return
        link.connecting = False
        link.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link.up.dst = link.down.src = link.upstream

    def _upstream_failed(self, link: _Link, err: int) -> None:
        logger.debug(
            "fault proxy link %s: upstream connect failed: %s",
            link.number,
            errno.errorcode.get(err, err),
        )
        with self._lock:  # counters
            self._upstream_failures += 1
        self._abort(link)

    def _read(self, link: _Link, pipe: _Pipe, settings: _Settings) -> None:
        assert pipe.src is not None
        try:
            data = pipe.src.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise _Broken from exc
        now = time.monotonic()
        if not data:
            pipe.eof = True
            pipe.eof_at = now + settings.slow_close
            if settings.slow_close > 0:
                self._count("slow_close")
            return
        if pipe.discard:
            return
        data, cut = self._apply_reset_plan(pipe.direction, data)
        if cut:
            if not data:
                self._reset(link)
                return
            pipe.reset_when_drained = True
        shape = settings.shapes[pipe.direction]
        release = now
        if shape.latency or shape.jitter:
            delay = shape.latency + self._rand.uniform(-shape.jitter, shape.jitter)
            release = max(now + max(0.0, delay), pipe.last_release)
            self._count("latency")
        pipe.last_release = release
        pipe.queue.append((release, data))
        pipe.held += len(data)

    def _apply_reset_plan(self, direction: str, data: bytes) -> tuple[bytes, bool]:
        with self._lock:  # reset plans, counters
            plan = self._reset_plans.get(direction)
            if plan is None:
                return data, False
            room = plan.after_bytes - plan.seen
            if len(data) <= room:
                plan.seen += len(data)
                return data, False
            plan.count -= 1
            plan.seen = 0
            if plan.count == 0:
                del self._reset_plans[direction]
            return data[:room], True

    def _pump_link(self, link: _Link, settings: _Settings, now: float) -> float | None:
        """Write what is due on both pipes; return when the link next needs a turn."""
        if link.done:
            return None
        if link.connecting:
            if now >= link.connect_deadline:
                self._upstream_failed(link, errno.ETIMEDOUT)
                return None
            return link.connect_deadline
        if settings.half_open and not link.half:
            self._cut(link)
        if link.half:
            if link.up.eof:
                self._close_link(link, rst=False)
            return None
        wake: float | None = None
        try:
            for pipe in (link.up, link.down):
                if link.done:  # the other pipe reset it
                    return None
                shape = settings.shapes[pipe.direction]
                if shape.blackhole and pipe.blackhole_epoch != shape.blackhole_epoch:
                    pipe.blackhole_epoch = shape.blackhole_epoch
                    self._count("blackhole")
                when = self._pump(link, pipe, shape, now)
                if when is not None:
                    wake = when if wake is None else min(wake, when)
        except _Broken:
            self._abort(link)
            return None
        if link.up.shut and link.down.shut:
            self._close_link(link, rst=False)
        return wake

    def _pump(self, link: _Link, pipe: _Pipe, shape: _Shape, now: float) -> float | None:
        if shape.blackhole or pipe.shut:
            return None
        assert pipe.dst is not None
        while pipe.queue:
            release, data = pipe.queue[0]
            if release > now:
                return release
            if pipe.blocked:
                return None
            chunk = data
            if shape.bandwidth is not None:
                if pipe.not_before > now:
                    return pipe.not_before
                quantum = max(1, min(_CHUNK, int(shape.bandwidth / 50)))
                chunk = data[:quantum]
            try:
                sent = pipe.dst.send(chunk)
            except (BlockingIOError, InterruptedError):
                pipe.blocked = True
                return None
            except OSError as exc:
                raise _Broken from exc
            with self._lock:  # counters
                self._bytes[pipe.direction] += sent
                if shape.bandwidth is not None:
                    self._faults["bandwidth"] += 1
            pipe.held -= sent
            if sent < len(data):
                pipe.queue[0] = (release, data[sent:])
            else:
                pipe.queue.popleft()
            if shape.bandwidth is not None:
                pipe.not_before = max(pipe.not_before, now) + sent / shape.bandwidth
            if sent < len(chunk):
                pipe.blocked = True
                return None
        if pipe.reset_when_drained:
            self._reset(link)
            return None
        if pipe.eof and not pipe.shut:
            if now < pipe.eof_at:
                return pipe.eof_at
            try:
                pipe.dst.shutdown(socket.SHUT_WR)
            except OSError as exc:
                raise _Broken from exc
            pipe.shut = True
        return None

    def _count(self, kind: str, n: int = 1) -> None:
        with self._lock:  # counters
            self._faults[kind] += n

    def _forget(self, link: _Link) -> None:
        for sock in link.sockets():
            if sock in self._registered:
                self._selector.unregister(sock)
                del self._registered[sock]

    def _close_link(self, link: _Link, *, rst: bool) -> None:
        # Unregister before closing: a closed socket's fd may be reused at once.
        self._forget(link)
        _close(link.client, rst=rst)
        _close(link.upstream, rst=rst)
        link.client = link.upstream = None
        link.up.src = link.up.dst = link.down.src = link.down.dst = None
        link.done = True

    def _abort(self, link: _Link) -> None:
        """A socket failed (or the upstream could not be reached): RST both ends."""
        if not link.done:
            self._close_link(link, rst=True)

    def _reset(self, link: _Link) -> None:
        """Inject a reset: RST both ends, counted as a fault."""
        if link.done:
            return
        self._count("reset")  # first: a client that sees the RST may read stats at once
        self._abort(link)

    def _cut(self, link: _Link) -> None:
        """Half open: reset the server end, keep the client end reading into the void."""
        if link.done or link.half:
            return
        self._count("half_open")
        if link.upstream is not None:
            if link.upstream in self._registered:
                self._selector.unregister(link.upstream)
                del self._registered[link.upstream]
            _close(link.upstream, rst=True)
            link.upstream = None
        link.connecting = False
        link.half = True
        link.up.discard = True
        link.up.queue.clear()
        link.up.held = 0
        link.down.queue.clear()
        link.down.held = 0
        link.up.dst = link.down.src = None

    def _reset_all(self) -> int:
        count = 0
        for link in self._links:
            if not link.done:
                self._reset(link)
                count += 1
        self._links = [link for link in self._links if not link.done]
        with self._lock:  # counters
            self._active = len(self._links)
        return count

    def _cut_all(self) -> None:
        for link in self._links:
            self._cut(link)

    def _sync_listening(self) -> None:
        """Open or close the listener to match ``_refusing`` (read now, so racing
        ``refuse`` calls end in the state of the last one)."""
        with self._lock:  # settings
            refusing = self._refusing
        if refusing and self._listener is not None:
            if self._listener in self._registered:
                self._selector.unregister(self._listener)
                del self._registered[self._listener]
            self._listener.close()
            self._listener = None
            self._count("refuse")
        elif not refusing and self._listener is None:
            try:
                self._listener = self._listen(self.port)
            except FaultProxyError:
                with self._lock:  # settings: still refusing, as the port says
                    self._refusing = True
                raise

    def _shutdown(self) -> None:
        """Close everything the loop owns (on the loop thread, as it exits)."""
        for link in self._links:
            _close(link.client, rst=False)
            _close(link.upstream, rst=False)
            link.client = link.upstream = None
            link.done = True
        self._links = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._registered.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        with self._lock:  # commands, counters, lifecycle flags
            self._closed = self._stopping = True
            self._active = 0
            commands, self._commands = self._commands, []
        for command in commands:
            command.error = FaultProxyError("fault proxy is closed")
            command.done.set()
