"""What ``FakeFile`` hands out: readers, atomic writers, locks and transactions.

Each has the API of its real counterpart (``FileReader``, ``AtomicWriter``,
``FileLock``, the file ``Transaction``), checked by the API parity test.
"""

from __future__ import annotations

import builtins
import errno
import os
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from dictamesh_connectors.file.atomic import BytesLike
from dictamesh_connectors.file.connector import _bytes_view, _encode
from dictamesh_connectors.file.errors import (
    CONFLICT,
    INVALID,
    LOCK_TIMEOUT,
    TOO_LARGE,
    error,
    translate,
    where,
)
from dictamesh_connectors.file.paths import join
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.fakes._file_tree import Dir, File, Mount, fail

if TYPE_CHECKING:
    from dictamesh_connectors.testing.fakes.file import FakeFile

__all__ = ["FakeFileLock", "FakeFileReader", "FakeFileTransaction", "FakeFileWriter"]

_NO_RETRY = RetryPolicy.no_retry()


class FakeFileReader:
    """A file opened for reading (``FileReader``'s API), on its content when opened.

    Not thread-safe: one per thread.
    """

    def __init__(self, data: bytes, path: str, chunk_size: int) -> None:
        self._data = data
        self._path = path
        self._chunk_size = chunk_size
        self._pos = 0
        self._closed = False

    @property
    def name(self) -> str:
        """The path, relative to the root."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    def readable(self) -> bool:
        """True."""
        return True

    def writable(self) -> bool:
        """False."""
        return False

    def seekable(self) -> bool:
        """True."""
        return True

    def _check(self) -> None:
        if self._closed:
            raise error(where("read", self._path) + "the reader is closed", INVALID)

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when negative); ``b""`` at the end.

        Raises:
            ConnectorError: INVALID_REQUEST once closed.
        """
        self._check()
        if size is None or size < 0:
            data = self._data[self._pos :]
        else:
            data = self._data[self._pos : self._pos + size]
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read into ``buffer``; return the number of bytes (0 at the end)."""
        self._check()
        view = memoryview(buffer).cast("B")
        data = self._data[self._pos : self._pos + len(view)]
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks()

    def chunks(self, size: int | None = None) -> Iterator[bytes]:
        """Yield the rest of the file in chunks of ``size`` (default ``chunk_size``) bytes."""
        step = self._chunk_size if size is None else size
        while True:
            chunk = self.read(step)
            if not chunk:
                return
            yield chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (``SEEK_SET``, ``SEEK_CUR``, ``SEEK_END``); return it.

        Raises:
            ConnectorError: INVALID_REQUEST for a bad ``whence`` or a negative position.
        """
        self._check()
        if whence == os.SEEK_SET:
            base = 0
        elif whence == os.SEEK_CUR:
            base = self._pos
        elif whence == os.SEEK_END:
            base = len(self._data)
        else:
            raise error(where("read", self._path) + f"invalid whence {whence!r:.20}", INVALID)
        if base + offset < 0:
            raise error(where("read", self._path) + "negative seek position", INVALID)
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        """The current position."""
        return self._pos

    def close(self) -> None:
        """Close the reader. Idempotent."""
        self._closed = True

    def __enter__(self) -> FakeFileReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FakeFileReader {self._path!r} {'closed' if self._closed else f'at {self._pos}'}>"


class FakeFileWriter:
    """A streaming atomic write (``AtomicWriter``'s API): visible at ``close()``.

    An exception in its ``with`` block (or ``abort()``) discards it. Not
    thread-safe: one writer belongs to one thread.
    """

    def __init__(self, fake: FakeFile, parts: tuple[str, ...], overwrite: bool) -> None:
        self._fake = fake
        self._parts = parts
        self._path = join(parts)
        self._overwrite = overwrite
        self._max_size = fake.config.max_file_size
        self._buffer = bytearray()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once committed or discarded."""
        return self._closed

    @property
    def name(self) -> str:
        """The path being written, relative to the root."""
        return self._path

    def tell(self) -> int:
        """Bytes written so far."""
        return len(self._buffer)

    def writable(self) -> bool:
        """True."""
        return True

    def readable(self) -> bool:
        """False."""
        return False

    def seekable(self) -> bool:
        """False."""
        return False

    def _check(self) -> None:
        if self._closed:
            raise error(where("write", self._path) + "the writer is closed", INVALID)

    def write(self, data: BytesLike) -> int:
        """Append ``data`` to the pending file; return its length.

        Raises:
            TypeError: ``data`` is not bytes-like.
            ConnectorError: PAYLOAD_TOO_LARGE past ``max_file_size`` (the
                write is then discarded); INVALID_REQUEST once closed.
        """
        if isinstance(data, str):
            raise TypeError("write() needs bytes, not str")
        view = memoryview(data).cast("B")
        self._check()
        if self._max_size is not None and len(self._buffer) + len(view) > self._max_size:
            self.abort()
            raise error(
                where("write", self._path) + f"more than max_file_size ({self._max_size}) bytes",
                TOO_LARGE,
            )
        self._buffer += view
        return len(view)

    def writelines(self, lines: Any) -> None:
        """``write()`` each item of ``lines``."""
        for line in lines:
            self.write(line)

    def copy_from(self, src_fd: int, size: int) -> None:
        """Append ``size`` bytes of the real descriptor ``src_fd`` from its offset 0."""
        self._check()
        offset = 0
        with translate("copy", self._path, write=True):
            while offset < size:
                chunk = os.pread(src_fd, min(size - offset, 1 << 20), offset)
                if not chunk:
                    break
                self.write(chunk)
                offset += len(chunk)

    def flush(self) -> None:
        """Nothing to flush: the pending bytes stay hidden until ``close()``."""
        self._check()

    def close(self) -> None:
        """Commit: put the content in place atomically. Idempotent.

        Raises:
            ConnectorError: CONFLICT (``overwrite=False`` and the file now
                exists), NOT_FOUND (its directory went away); the write is
                discarded.
        """
        if self._closed:
            return
        self._closed = True
        self._fake._put(self._parts, bytes(self._buffer), self._overwrite, "write")

    def abort(self) -> None:
        """Discard the pending file (the target is untouched). Idempotent."""
        self._closed = True
        self._buffer = bytearray()

    def __enter__(self) -> FakeFileWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"<FakeFileWriter {self._path!r} {'closed' if self._closed else 'open'}>"


class FakeFileLock:
    """A held (or not yet taken) lock of a ``FakeFile`` (``FileLock``'s API).

    Not reentrant, not shared between threads: as the real one.

    Attributes:
        path: The locked path, relative to the root.
        shared: Whether this is a shared (reader) lock.
    """

    def __init__(
        self, fake: FakeFile, parts: tuple[str, ...], *, shared: bool, timeout: float
    ) -> None:
        self._fake = fake
        self._parts = parts
        self.path = join(parts)
        self.shared = shared
        self._timeout = timeout
        self._held = False
        self._pid = os.getpid()

    @property
    def held(self) -> bool:
        """True between a successful ``acquire()`` and ``release()``."""
        return self._held and self._pid == os.getpid()

    def acquire(self) -> FakeFileLock:
        """Take the lock, waiting up to the timeout.

        Raises:
            ConnectorError: LOCK_TIMEOUT when not granted in time (transient);
                INVALID_REQUEST if already held.
        """
        if self._held:
            raise error(where("lock", self.path) + "this lock is already held", INVALID)
        if not self._fake._take(self._parts, self.shared, self._timeout):
            raise error(
                where("lock", self.path)
                + f"not granted within {self._timeout:g}s (held elsewhere)",
                LOCK_TIMEOUT,
            )
        self._held = True
        return self

    def release(self) -> None:
        """Release the lock. Idempotent."""
        if self._held:
            self._held = False
            if self._pid == os.getpid():
                self._fake._untake(self._parts, self.shared)

    def __enter__(self) -> FakeFileLock:
        if not self._held:
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
        if getattr(self, "_held", False):
            self.release()

    def __repr__(self) -> str:
        kind = "shared" if self.shared else "exclusive"
        return f"<FakeFileLock {self.path!r} {kind} {'held' if self.held else 'not held'}>"


class FakeFileTransaction:
    """Writes of a ``FakeFile`` made visible together (the file ``Transaction``'s API).

    Not thread-safe: one transaction belongs to one thread.

    Example::

        with files.transaction() as tx:
            tx.write_text("out/data.csv", "a,b\\n")
            tx.write_text("out/_SUCCESS", "")
    """

    def __init__(self, fake: FakeFile, *, overwrite: bool) -> None:
        self._fake = fake
        self._overwrite = overwrite
        # (path components, content or None for a delete, missing_ok)
        self._staged: builtins.list[tuple[tuple[str, ...], bytes | None, bool]] = []
        self._done = False

    @property
    def pending(self) -> builtins.list[str]:
        """The paths written or deleted so far, in order."""
        return [join(parts) for parts, _, _ in self._staged]

    def _check(self, operation: str) -> None:
        if self._done:
            raise error(f"file: {operation}: the transaction is finished", INVALID)

    def _stage(self, parts: tuple[str, ...], data: bytes | None, missing_ok: bool) -> None:
        self._staged = [staged for staged in self._staged if staged[0] != parts]
        self._staged.append((parts, data, missing_ok))

    def write_bytes(self, path: str | os.PathLike[str], data: BytesLike) -> None:
        """Stage ``data`` for ``path`` (a later write of the same path wins).

        Raises:
            TypeError: ``data`` is not bytes-like.
            ConnectorError: As ``FakeFile.write_bytes`` (checked now).
        """
        self._check("write")
        fake = self._fake
        parts = fake._writable(path, "write")
        view = _bytes_view(data)
        fake._check_size("write", parts, len(view))
        content = bytes(view)

        def check(_: Mount) -> None:
            with fake._tree_lock:  # tree
                fake._write_parent(parts, "write")

        fake._run(check, idempotent=True, description="write")
        self._stage(parts, content, False)

    def write_text(
        self,
        path: str | os.PathLike[str],
        text: str,
        *,
        encoding: str = "utf-8",
        errors: str = "strict",
    ) -> None:
        """Stage ``text`` encoded with ``encoding`` for ``path``.

        Raises:
            TypeError: ``text`` is not a ``str``.
            ConnectorError: As ``FakeFile.write_text``.
        """
        if not isinstance(text, str):
            raise TypeError(f"write_text() needs a str, not {type(text).__name__}")
        parts = self._fake._writable(path, "write")
        self.write_bytes(path, _encode(text, encoding, errors, join(parts)))

    def delete(self, path: str | os.PathLike[str], *, missing_ok: bool = False) -> None:
        """Stage the removal of the file ``path`` (checked at commit).

        Raises:
            ConnectorError: As ``FakeFile.delete`` (NOT_FOUND at commit).
        """
        self._check("delete")
        fake = self._fake
        parts = fake._writable(path, "delete")

        def check(_: Mount) -> None:
            with fake._tree_lock:  # tree
                fake._write_parent(parts, "delete")

        fake._run(check, idempotent=True, description="delete")
        self._stage(parts, None, missing_ok)

    def commit(self) -> None:
        """Apply every staged change, in order, under one lock of the tree.

        A partial ``"commit"`` fault applies a prefix of the changes first.

        Raises:
            ConnectorError: The first failure; ``maybe_applied`` when some
                changes were already made (the rest are discarded).
        """
        self._check("commit")
        self._done = True
        staged, self._staged = self._staged, []
        fake = self._fake

        def body(_: Mount) -> None:
            applied = fake._faults.check("commit", len(staged))
            with fake._tree_lock:  # tree: the whole commit is one step for readers
                if not self._overwrite:
                    for parts, data, _missing_ok in staged:
                        if data is not None:
                            directory = fake._parent(parts, "commit")
                            if parts[-1] in directory.entries:
                                raise error(
                                    where("commit", join(parts)) + "already exists", CONFLICT
                                )
                for done, (parts, data, missing_ok) in enumerate(staged):
                    if applied is not None and done >= applied:
                        break
                    self._apply(parts, data, missing_ok, done > 0)
            if applied is not None:
                raise fake._faults.partial_error("commit", applied, len(staged))

        fake._run(body, idempotent=False, retry=_NO_RETRY, description="commit")

    def _apply(
        self, parts: tuple[str, ...], data: bytes | None, missing_ok: bool, some_done: bool
    ) -> None:
        fake = self._fake
        path = join(parts)
        directory = fake._parent(parts, "commit")
        node = directory.entries.get(parts[-1])
        if data is None:
            if node is None:
                if missing_ok:
                    return
                fail("commit", path, errno.ENOENT, write=True, maybe_applied=some_done)
            if isinstance(node, Dir):
                fail("commit", path, errno.EISDIR, write=True, maybe_applied=some_done)
            del directory.entries[parts[-1]]
            return
        if isinstance(node, Dir):
            fail("commit", path, errno.EISDIR, write=True, maybe_applied=some_done)
        directory.entries[parts[-1]] = File(data)

    def rollback(self) -> None:
        """Discard every staged change; nothing becomes visible. Idempotent."""
        self._done = True
        self._staged = []

    def __enter__(self) -> FakeFileTransaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def __repr__(self) -> str:
        state = "finished" if self._done else f"{len(self._staged)} pending"
        return f"<FakeFileTransaction {state}>"
