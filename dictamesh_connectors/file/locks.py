"""``lock(path)``: an advisory ``flock`` on a sidecar file, across threads and processes.

The lock is taken on ``<path><lock_suffix>`` (``<path>.lock``), never on the
file itself: an atomic write *replaces* the file (a new inode), so a lock
held on the old one would protect nothing. ``flock`` locks belong to an open
file description, and every ``lock()`` opens its own, so two threads of
one process exclude each other exactly as two processes do (``fcntl.lockf``
/ POSIX record locks are per process and would not).

Sidecars are never deleted: removing one while another process waits on
it would let two holders in. A sidecar that was removed or replaced under
us anyway is detected after locking (its name no longer names our inode)
and the lock is retaken on the new one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import time
from collections.abc import Callable
from types import TracebackType

from dictamesh_connectors.file.errors import INVALID, LOCK_TIMEOUT, error, translate, where
from dictamesh_connectors.file.sandbox import Parent

__all__ = ["FileLock"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_SIDECAR_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | _CLOEXEC
_FIRST_POLL = 0.0005
_MAX_POLL = 0.05


class FileLock:
    """A held (or not yet taken) advisory lock; use it as a context manager.

    Not reentrant: taking the same path's lock twice from one thread waits
    for itself (until the timeout). Not shared between threads: each thread
    calls ``lock()`` itself. A forked child does not inherit a held lock:
    its copy is dropped at fork (the parent still holds it) and releasing
    it in the child does nothing.

    Example::

        with files.lock("ledger.csv", timeout=5):
            files.append("ledger.csv", b"one more line\\n")
    """

    def __init__(
        self,
        parent: Parent,
        sidecar: str,
        path: str,
        *,
        shared: bool,
        timeout: float,
        mode: int,
        create: bool = True,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_done: Callable[[FileLock], None] | None = None,
    ) -> None:
        self._dir_fd = os.dup(parent.fd)  # ours; the caller closes parent
        self._sidecar = sidecar
        self.path = path
        """The locked path, relative to the root."""
        self.shared = shared
        """Whether this is a shared (reader) lock."""
        self._timeout = timeout
        self._mode = mode
        self._flags = _SIDECAR_FLAGS if create else _SIDECAR_FLAGS & ~os.O_CREAT
        self._sleep = sleep
        self._clock = clock
        self._fd = -1
        self._waiting_fd = -1
        self._pid = os.getpid()
        self._on_done = on_done

    @property
    def held(self) -> bool:
        """True between a successful ``acquire()`` and ``release()``."""
        return self._fd >= 0 and self._pid == os.getpid()

    def acquire(self) -> FileLock:
        """Take the lock, waiting up to the timeout.

        Raises:
            ConnectorError: LOCK_TIMEOUT when not granted in time (transient);
                INVALID_REQUEST if already held; a translated ``OSError``.
        """
        if self._fd >= 0:
            raise error(where("lock", self.path) + "this lock is already held", INVALID)
        operation = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        deadline = self._clock() + self._timeout if math.isfinite(self._timeout) else math.inf
        with translate("lock", self.path, write=True):
            while True:
                fd = os.open(self._sidecar, self._flags, self._mode, dir_fd=self._dir_fd)
                self._waiting_fd = fd  # so a fork while we wait closes the child's copy
                try:
                    if not self._take(fd, operation, deadline):
                        raise error(
                            where("lock", self.path)
                            + f"not granted within {self._timeout:g}s (held elsewhere)",
                            LOCK_TIMEOUT,
                        )
                    if self._still_named(fd):
                        self._fd, fd = fd, -1
                        return self
                finally:
                    self._waiting_fd = -1
                    if fd >= 0:
                        os.close(fd)

    def _take(self, fd: int, operation: int, deadline: float) -> bool:
        if deadline == math.inf:
            fcntl.flock(fd, operation)  # blocks in the kernel; the GIL is released
            return True
        delay = _FIRST_POLL
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            # flock has no timeout: poll, backing off to at most 50 ms a try.
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_POLL)

    def _still_named(self, fd: int) -> bool:
        # Someone removed or replaced the sidecar while we waited: our lock is
        # on an inode nobody else will ever open. Retake it on the new one.
        try:
            named = os.stat(self._sidecar, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Release the lock (closing its descriptor). Idempotent."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the only descriptor of the description unlocks it
        self._close_dir()
        if self._on_done is not None:
            callback, self._on_done = self._on_done, None
            callback(self)

    def _close_dir(self) -> None:
        dir_fd, self._dir_fd = self._dir_fd, -1
        if dir_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(dir_fd)

    def _forget(self) -> None:
        """In a forked child: close our copies; the parent keeps its lock."""
        fd, self._fd = self._fd, -1
        waiting, self._waiting_fd = self._waiting_fd, -1
        for each in (fd, waiting):
            if each >= 0:
                with contextlib.suppress(OSError):
                    os.close(each)
        self._close_dir()
        self._on_done = None

    def __enter__(self) -> FileLock:
        if self._fd < 0:
            self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            fd = getattr(self, "_fd", -1)
            dir_fd = getattr(self, "_dir_fd", -1)
            for each in (fd, dir_fd):
                if each >= 0:
                    with contextlib.suppress(OSError):
                        os.close(each)

    def __repr__(self) -> str:
        kind = "shared" if self.shared else "exclusive"
        return f"<FileLock {self.path!r} {kind} {'held' if self.held else 'not held'}>"
