"""Client-side deadlines for calls a driver would otherwise wait on for ever.

A driver that waits on its socket with no deadline of its own (psycopg
waits for the server's answer, and ``statement_timeout`` is enforced by the
server) hangs for ever when the network holds the bytes: a blackholing
middlebox, a stuck proxy, a server that accepted the connection and
stopped reading. TCP keepalives do not help there, since something still
ACKs. The watchdog is the net: the operation arms it with a number of
seconds and a non-blocking ``expire`` action (shutting the connection's
socket down, which makes the driver's wait return with an error); if the
operation is still running when the time is up, ``expire`` runs.

One daemon thread (``dictamesh-watchdog``) serves every connector. It runs
only while something is armed and stops after a second with nothing to
watch; a forked child starts its own when it first arms one. Arming and
disarming cost two lock round trips and a dict update; the thread wakes
every ``TICK`` seconds, so a deadline fires at most that late.

Example::

    key = WATCHDOG.arm(30.0, functools.partial(shutdown_socket, fd))
    try:
        conn.execute(sql)
    finally:
        if WATCHDOG.disarm(key):
            ...  # the deadline fired: the error above is a client-side timeout
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from dictamesh_connectors import _fork

__all__ = ["TICK", "WATCHDOG", "Watchdog", "shutdown_socket"]

logger = logging.getLogger(__name__)

# Seconds between two looks at the armed deadlines.
TICK = 0.1
# Seconds with nothing armed after which the thread ends.
_IDLE_EXIT = 1.0


class Watchdog:
    """Runs an operation's ``expire`` action once its deadline has passed.

    Thread-safe. ``expire`` runs under the watchdog's own lock (never a
    connector's), so that once ``disarm()`` has returned it cannot run any
    more; it must therefore be a short, non-blocking call such as
    ``socket.shutdown``, and must not log or call back into user code.
    """

    def __init__(self, tick: float = TICK) -> None:
        """A watchdog that looks at its deadlines every ``tick`` seconds."""
        self._tick = tick
        self._lock = _fork.create_lock()  # guards _armed, _thread
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._thread: threading.Thread | None = None
        self._keys = itertools.count(1)
        _fork.register_child_reset(self)

    def arm(self, seconds: float, expire: Callable[[], None]) -> int:
        """Run ``expire()`` if the key returned is not disarmed within ``seconds``."""
        key = next(self._keys)
        deadline = time.monotonic() + seconds
        with self._lock:  # _armed, _thread
            self._armed[key] = (deadline, expire)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="dictamesh-watchdog", daemon=True
                )
                self._thread.start()
        return key

    def disarm(self, key: int) -> bool:
        """Stop watching ``key``; ``True`` when its deadline had already fired."""
        with self._lock:  # _armed
            return self._armed.pop(key, None) is None

    def armed(self) -> int:
        """How many deadlines are being watched."""
        with self._lock:  # _armed
            return len(self._armed)

    def _watch(self) -> None:
        idle_since: float | None = None
        failed: list[BaseException] = []
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            with self._lock:  # _armed, _thread; expire runs here (see the class doc)
                for key, (deadline, expire) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[key]
                        try:
                            expire()
                        except Exception as exc:  # logged below, outside the lock
                            failed.append(exc)
                if self._armed:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                elif now - idle_since >= _IDLE_EXIT:
                    self._thread = None
                    return
            for error in failed:
                logger.debug("watchdog: an expire action failed: %r", error)
            failed.clear()

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here, nor do its operations.
        self._armed = {}
        self._thread = None


def shutdown_socket(fd: int) -> None:
    """Shut down (both ways) the socket behind file descriptor ``fd``, if it still is one.

    Works on a duplicate of ``fd``, so the driver's own descriptor stays
    open (the driver closes it when it sees the error); ``shutdown`` acts on
    the connection, not the descriptor.
    """
    try:
        dup = os.dup(fd)
    except OSError:
        return
    try:
        sock = socket.socket(fileno=dup)
    except OSError:  # not a socket any more
        os.close(dup)
        return
    with sock, contextlib.suppress(OSError):  # already shut down, or not connected
        sock.shutdown(socket.SHUT_RDWR)


WATCHDOG = Watchdog()
