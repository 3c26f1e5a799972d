"""The proxy's loop thread: every socket, one selector.

``Loop`` owns the listening socket, both ends of each proxied connection
(a ``Link`` of two ``Pipe`` s, one per direction) and a wake-up socket
pair. Nothing else touches them: the API (``proxy.py``) changes settings in
the shared ``State`` and hands the loop commands it runs at the start of a
turn. Per turn: run the commands, copy the settings, write what is due,
update the selector's interest, wait for events (or the next due time).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import random
import selectors
import socket
import struct
import threading
import time
from typing import Any

from dictamesh_connectors.testing.faultproxy._state import (
    DOWN,
    UP,
    FaultProxyError,
    Settings,
    Shape,
    State,
)

__all__ = ["Loop", "listen"]

logger = logging.getLogger(__name__)

_CHUNK = 65536
# Bytes read but not yet forwarded (latency, bandwidth) per direction of one
# connection; beyond it the proxy stops reading, so TCP pushes back.
_HELD_LIMIT = 1 << 20
_CONNECT_TIMEOUT = 10.0
_MAX_WAIT = 1.0
_LINGER_ZERO = struct.pack("ii", 1, 0)


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

    def wants_read(self, shape: Shape) -> bool:
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
        self.up = _Pipe(UP)
        self.down = _Pipe(DOWN)
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


def listen(port: int) -> socket.socket:
    """A non-blocking listening socket on 127.0.0.1:``port``.

    Raises:
        FaultProxyError: the port cannot be bound.
    """
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


class Loop:
    """The selector loop of one proxy, on its own thread.

    Args:
        state: the settings, counters and commands shared with the API.
        listen_port: the port to listen on (0: an ephemeral one).
        upstream: ``(family, sockaddr)`` of the real server.
        rand: the jitter's random numbers.

    Raises:
        FaultProxyError: the port cannot be bound.
    """

    def __init__(
        self,
        state: State,
        listen_port: int,
        upstream: tuple[socket.AddressFamily, tuple[Any, ...]],
        rand: random.Random,
    ) -> None:
        self._state = state
        self._upstream_family, self._upstream_address = upstream
        self._rand = rand
        # Owned by the loop thread once it runs.
        self._links: list[_Link] = []
        self._registered: dict[socket.socket, int] = {}
        self._numbers = 0
        self._listener: socket.socket | None = listen(listen_port)
        self.port: int = self._listener.getsockname()[1]
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

    def start(self) -> None:
        """Start the loop thread."""
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; whether it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wake(self) -> None:
        """Make the loop take a turn now (from any thread)."""
        # BlockingIOError: already woken (buffer full); OSError: closed. Either way done.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _serve(self) -> None:
        try:
            while self._turn():
                pass
        except BaseException as exc:
            logger.exception("fault proxy on port %s failed", self.port)
            with self._state.lock:  # lifecycle flags
                self._state.failure = exc
        finally:
            self._shutdown()

    def _turn(self) -> bool:
        with self._state.lock:  # commands
            if self._state.stopping:
                return False
            commands, self._state.commands = self._state.commands, []
        # Commands first, the settings after: a caller whose command (or
        # barrier) has run knows every later event sees its settings.
        for command in commands:
            command.run()
        settings = self._state.settings()
        now = time.monotonic()
        wake_at = now + _MAX_WAIT
        for link in list(self._links):
            when = self._pump_link(link, settings, now)
            if when is not None:
                wake_at = min(wake_at, when)
        self._links = [link for link in self._links if not link.done]
        self._update_interest(settings)
        with self._state.lock:  # counters
            self._state.active = len(self._links)
        for key, events in self._selector.select(max(0.0, wake_at - time.monotonic())):
            self._on_event(key, events, settings)
        return True

    def _update_interest(self, settings: Settings) -> None:
        wanted: dict[socket.socket, int] = {}
        if self._listener is not None:
            wanted[self._listener] = selectors.EVENT_READ
        for link in self._links:
            if link.client is not None:
                mask = 0
                if link.up.wants_read(settings.shapes[UP]) and not link.connecting:
                    mask |= selectors.EVENT_READ
                if link.down.wants_write():
                    mask |= selectors.EVENT_WRITE
                wanted[link.client] = mask
            if link.upstream is not None:
                if link.connecting:
                    mask = selectors.EVENT_WRITE
                else:
                    mask = 0
                    if link.down.wants_read(settings.shapes[DOWN]):
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

    def _on_event(self, key: selectors.SelectorKey, events: int, settings: Settings) -> None:
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

    def _accept(self, settings: Settings) -> None:
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
            with self._state.lock:  # counters
                self._state.accepted += 1
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
        with self._state.lock:  # counters
            self._state.upstream_failures += 1
        self._abort(link)

    def _read(self, link: _Link, pipe: _Pipe, settings: Settings) -> None:
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
                self._state.count("slow_close")
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
            self._state.count("latency")
        pipe.last_release = release
        pipe.queue.append((release, data))
        pipe.held += len(data)

    def _apply_reset_plan(self, direction: str, data: bytes) -> tuple[bytes, bool]:
        with self._state.lock:  # reset plans, counters
            plan = self._state.reset_plans.get(direction)
            if plan is None:
                return data, False
            room = plan.after_bytes - plan.seen
            if len(data) <= room:
                plan.seen += len(data)
                return data, False
            plan.count -= 1
            plan.seen = 0
            if plan.count == 0:
                del self._state.reset_plans[direction]
            return data[:room], True

    def _pump_link(self, link: _Link, settings: Settings, now: float) -> float | None:
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
                    self._state.count("blackhole")
                when = self._pump(link, pipe, shape, now)
                if when is not None:
                    wake = when if wake is None else min(wake, when)
        except _Broken:
            self._abort(link)
            return None
        if link.up.shut and link.down.shut:
            self._close_link(link, rst=False)
        return wake

    def _uncount(self, direction: str, n: int) -> None:
        """Take back ``n`` bytes counted for a send that did not happen."""
        with self._state.lock:  # counters
            self._state.bytes[direction] -= n

    def _pump(self, link: _Link, pipe: _Pipe, shape: Shape, now: float) -> float | None:
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
            # Counted before the send, the part not sent taken back after it:
            # the receiver is never ahead of the counter (a client that has its
            # answer sees it counted).
            with self._state.lock:  # counters
                self._state.bytes[pipe.direction] += len(chunk)
            try:
                sent = pipe.dst.send(chunk)
            except (BlockingIOError, InterruptedError):
                self._uncount(pipe.direction, len(chunk))
                pipe.blocked = True
                return None
            except OSError as exc:
                self._uncount(pipe.direction, len(chunk))
                raise _Broken from exc
            with self._state.lock:  # counters
                self._state.bytes[pipe.direction] -= len(chunk) - sent
                if shape.bandwidth is not None:
                    self._state.faults["bandwidth"] += 1
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
        self._state.count("reset")  # first: a client that sees the RST may read stats at once
        self._abort(link)

    def _cut(self, link: _Link) -> None:
        """Half open: reset the server end, keep the client end reading into the void."""
        if link.done or link.half:
            return
        self._state.count("half_open")
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

    def reset_all(self) -> int:
        count = 0
        for link in self._links:
            if not link.done:
                self._reset(link)
                count += 1
        self._links = [link for link in self._links if not link.done]
        with self._state.lock:  # counters
            self._state.active = len(self._links)
        return count

    def cut_all(self) -> None:
        for link in self._links:
            self._cut(link)

    def sync_listening(self) -> None:
        """Open or close the listener to match ``_refusing`` (read now, so racing
        ``refuse`` calls end in the state of the last one)."""
        with self._state.lock:  # settings
            refusing = self._state.refusing
        if refusing and self._listener is not None:
            if self._listener in self._registered:
                self._selector.unregister(self._listener)
                del self._registered[self._listener]
            self._listener.close()
            self._listener = None
            self._state.count("refuse")
        elif not refusing and self._listener is None:
            try:
                self._listener = listen(self.port)
            except FaultProxyError:
                with self._state.lock:  # settings: still refusing, as the port says
                    self._state.refusing = True
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
        with self._state.lock:  # commands, counters, lifecycle flags
            self._state.closed = self._state.stopping = True
            self._state.active = 0
            commands, self._state.commands = self._state.commands, []
        for command in commands:
            command.error = FaultProxyError("fault proxy is closed")
            command.done.set()
