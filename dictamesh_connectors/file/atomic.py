"""Atomic writes: a temporary file in the target's directory, fsync, rename, fsync.

The temporary file is ``.dmtmp-<32 random hex digits>`` in the same
directory as the target (a rename is atomic only within one file system),
created with ``O_EXCL | O_NOFOLLOW`` and held under a shared ``flock`` while
it is being written: a cleaner that can take the exclusive lock knows the
writer is dead. Readers see the old content or the new, never a mix and
never a partial file; with ``fsync``, the new content is on disk before it
becomes visible, and the rename is on disk before the write returns.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeAlias

from dictamesh_connectors.file import dirsync
from dictamesh_connectors.file.args import check_int
from dictamesh_connectors.file.errors import (
    CONFLICT,
    INVALID,
    TOO_LARGE,
    error,
    translate,
    where,
    wrong_type,
)
from dictamesh_connectors.file.paths import TEMP_PREFIX, is_temp, join, temp_name
from dictamesh_connectors.file.sandbox import Parent

__all__ = ["AtomicWriter", "clean_orphans", "commit_temp", "create_temp", "fsync_dir", "write_all"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
BytesLike: TypeAlias = bytes | bytearray | memoryview
"""What the write methods accept."""

_sync_data: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


def create_temp(dir_fd: int, mode: int) -> tuple[int, str]:
    """Create and share-lock a new temporary file in ``dir_fd``; return (fd, name)."""
    while True:
        name = temp_name(os.urandom(16).hex())
        try:
            fd = os.open(name, _TEMP_FLAGS, mode, dir_fd=dir_fd)
        except FileExistsError:  # 128 random bits: only a forked twin's RNG could repeat
            continue
        # A file system without flock: only its age protects it from cleaners.
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return fd, name


def write_all(fd: int, data: BytesLike) -> int:
    """``os.write`` until every byte of ``data`` is written; return the count."""
    view = memoryview(data).cast("B")
    total = len(view)
    written = os.write(fd, view)
    while written < total:  # short writes: signals, pipes, nearly full disks
        written += os.write(fd, view[written:])
    return total


def discard_temp(dir_fd: int, name: str) -> None:
    """Remove a temporary file, ignoring errors (it is hidden either way)."""
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def commit_temp(dir_fd: int, temp: str, name: str, *, overwrite: bool) -> None:
    """Put ``temp`` in place as ``name``: ``rename`` (replaces) or ``link`` (refuses to).

    Raises:
        OSError: EEXIST when ``overwrite`` is false and ``name`` exists.
    """
    if overwrite:
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return
    # link() refuses an existing target atomically (rename would replace it).
    os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    os.unlink(temp, dir_fd=dir_fd)


def fsync_dir(dir_fd: int) -> None:
    """Make the directory's entries (a rename, a new name) durable.

    Concurrent writers in one directory share the fsync (``dirsync.py``):
    each returns after an fsync that started after its change succeeded.
    """
    dirsync.fsync_dir(dir_fd)


def atomic_write(
    parent: Parent,
    data: BytesLike,
    *,
    overwrite: bool,
    fsync: bool,
    mode: int,
    operation: str,
) -> None:
    """Write ``data`` to ``parent.name`` atomically (see the module docstring).

    Raises:
        ConnectorError: Translated; CONFLICT when ``overwrite`` is false and
            the file exists. Nothing is left behind on failure, except when
            the final directory fsync failed (``maybe_applied``).
    """
    path = join(parent.parts)
    with translate(operation, path, write=True):
        fd, temp = create_temp(parent.fd, mode)
        try:
            try:
                write_all(fd, data)
                if fsync:
                    _sync_data(fd)
                commit_temp(parent.fd, temp, parent.name, overwrite=overwrite)
            except BaseException:
                discard_temp(parent.fd, temp)
                raise
        finally:
            os.close(fd)
    if fsync:
        with translate(operation, path, write=True, maybe_applied=True):
            fsync_dir(parent.fd)


class AtomicWriter:
    """A streaming atomic write: ``open(path, "wb")``.

    Bytes go to a hidden temporary file; ``close()`` (or leaving a ``with``
    block normally) commits it in place, an exception in the ``with`` block
    (or ``abort()``, or the writer being garbage-collected unclosed)
    discards it. Not thread-safe: one writer belongs to one thread.
    After ``os.fork()`` the child's copy is dead: it neither commits nor
    discards the parent's file.

    Example::

        with files.open("exports/big.csv", "wb") as out:
            for row in rows:
                out.write(row)
    """

    def __init__(
        self,
        parent: Parent,
        *,
        overwrite: bool,
        fsync: bool,
        mode: int,
        max_size: int | None,
        buffer_size: int,
        on_done: Callable[[AtomicWriter], None] | None = None,
    ) -> None:
        self._path = join(parent.parts)
        with translate("open", self._path, write=True):
            # Our own directory descriptor (the caller closes ``parent``): the
            # root's may be closed (disconnect) while this writer is open.
            self._dir_fd = os.dup(parent.fd)
            try:
                self._fd, self._temp = create_temp(self._dir_fd, mode)
            except BaseException:
                os.close(self._dir_fd)
                raise
        self._name = parent.name
        self._overwrite = overwrite
        self._fsync = fsync
        self._max_size = max_size
        self._buffer = bytearray()
        self._buffer_size = buffer_size
        self._size = 0
        self._pid = os.getpid()
        self._closed = False
        self._on_done = on_done
        self._finalizer = weakref.finalize(
            self, _abandon, self._fd, self._dir_fd, self._temp, self._pid
        )

    @property
    def closed(self) -> bool:
        """True once committed, discarded or forgotten after a fork."""
        return self._closed

    @property
    def name(self) -> str:
        """The path being written, relative to the root."""
        return self._path

    def tell(self) -> int:
        """Bytes written so far."""
        return self._size

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def _check(self) -> None:
        if self._closed:
            raise error(where("write", self._path) + "the writer is closed", INVALID)
        if self._pid != os.getpid():
            raise error(
                where("write", self._path) + "this writer belongs to the parent process", INVALID
            )

    def write(self, data: BytesLike) -> int:
        """Append ``data`` to the pending file; return its length.

        Raises:
            ArgumentTypeError: ``data`` is not bytes-like (also a ``TypeError``).
            ConnectorError: PAYLOAD_TOO_LARGE past ``max_file_size`` (the
                write is then discarded), or a translated ``OSError``.
        """
        if isinstance(data, str):
            raise wrong_type("write", "data", data, "bytes-like, not str")
        try:
            view = memoryview(data).cast("B")
        except (TypeError, ValueError):  # not a buffer; a non-contiguous view
            raise wrong_type("write", "data", data, "a contiguous bytes-like object") from None
        self._check()
        size = self._size + len(view)
        if self._max_size is not None and size > self._max_size:
            self.abort()
            raise error(
                where("write", self._path) + f"more than max_file_size ({self._max_size}) bytes",
                TOO_LARGE,
            )
        if len(self._buffer) + len(view) < self._buffer_size:
            self._buffer += view
        else:
            with translate("write", self._path, write=True):
                if self._buffer:
                    write_all(self._fd, self._buffer)
                    self._buffer.clear()
                write_all(self._fd, view)
        self._size = size
        return len(view)

    def writelines(self, lines: Any) -> None:
        """``write()`` each item of ``lines``.

        Raises:
            ArgumentTypeError: ``lines`` is not iterable, or an item is not bytes-like.
        """
        try:
            items = iter(lines)
        except TypeError:
            raise wrong_type("write", "lines", lines, "an iterable of bytes") from None
        for line in items:
            self.write(line)

    def copy_from(self, src_fd: int, size: int) -> None:
        """Append ``size`` bytes of ``src_fd`` from its offset 0 (``copy_file_range`` if it can).

        Raises:
            ArgumentTypeError: ``src_fd`` or ``size`` is not an ``int``.
            ConnectorError: INVALID_REQUEST for a negative one; translated ``OSError``.
        """
        check_int(src_fd, "src_fd", "copy", minimum=0, maximum=2**31 - 1)
        check_int(size, "size", "copy", minimum=0)
        self.flush()
        offset = 0
        with translate("copy", self._path, write=True):
            fast = hasattr(os, "copy_file_range")
            while True:
                if fast:
                    try:
                        count = os.copy_file_range(
                            src_fd, self._fd, max(size - offset, self._buffer_size), offset
                        )
                    except OSError as exc:
                        if exc.errno not in (
                            errno.EXDEV,
                            errno.ENOSYS,
                            errno.EINVAL,
                            errno.EOPNOTSUPP,
                        ):
                            raise
                        fast = False
                        continue
                else:
                    chunk = os.pread(src_fd, self._buffer_size, offset)
                    count = write_all(self._fd, chunk) if chunk else 0
                if not count:
                    break
                offset += count
                if self._max_size is not None and offset > self._max_size:
                    raise error(
                        where("copy", self._path)
                        + f"more than max_file_size ({self._max_size}) bytes",
                        TOO_LARGE,
                    )
        self._size += offset

    def flush(self) -> None:
        """Write the buffered bytes to the temporary file (it stays hidden)."""
        self._check()
        if self._buffer:
            with translate("write", self._path, write=True):
                write_all(self._fd, self._buffer)
            self._buffer.clear()

    def close(self) -> None:
        """Commit: fsync, rename into place, fsync the directory. Idempotent.

        In a forked child, only closes the child's copies of the descriptors.

        Raises:
            ConnectorError: CONFLICT (``overwrite=False`` and the file now
                exists) or a translated ``OSError``; the write is discarded,
                except when only the final directory fsync failed
                (``maybe_applied``).
        """
        if self._closed:
            return
        if self._pid != os.getpid():
            self._forget()
            return
        committed = False
        try:
            with translate("write", self._path, write=True):
                if self._buffer:
                    write_all(self._fd, self._buffer)
                    self._buffer.clear()
                if self._fsync:
                    _sync_data(self._fd)
                commit_temp(self._dir_fd, self._temp, self._name, overwrite=self._overwrite)
                committed = True
            if self._fsync:
                with translate("write", self._path, write=True, maybe_applied=True):
                    fsync_dir(self._dir_fd)
        finally:
            if not committed:
                discard_temp(self._dir_fd, self._temp)
            self._release()

    def abort(self) -> None:
        """Discard the pending file (the target is untouched). Idempotent."""
        if self._closed:
            return
        if self._pid != os.getpid():
            self._forget()
            return
        try:
            discard_temp(self._dir_fd, self._temp)
        finally:
            self._release()

    def _release(self) -> None:
        self._closed = True
        self._finalizer.detach()
        for fd in (self._fd, self._dir_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._on_done is not None:
            self._on_done(self)

    def _forget(self) -> None:
        """In a forked child: close our copies; the parent's write goes on untouched."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        for fd in (self._fd, self._dir_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> AtomicWriter:
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
        state = "closed" if self._closed else f"{self._size} bytes pending"
        return f"<AtomicWriter {self._path!r} {state}>"


def _abandon(fd: int, dir_fd: int, temp: str, pid: int) -> None:
    # Garbage-collected unclosed: never commit a write nobody finished.
    if pid == os.getpid():
        discard_temp(dir_fd, temp)
    for each in (fd, dir_fd):
        with contextlib.suppress(OSError):
            os.close(each)


def clean_orphans(dir_fd: int, older_than: float, *, now: float | None = None) -> int:
    """Remove temporary files no live writer holds, older than ``older_than`` seconds.

    A live writer holds a shared ``flock`` on its temporary file; a file
    whose exclusive lock can be taken (its writer died: SIGKILL, power
    loss) and whose last change is old enough is removed. Returns how many.
    """
    removed = 0
    current = time.time() if now is None else now
    with os.scandir(dir_fd) as entries:
        # Not the commit journals (.dmtxn-*): journal.recover() finishes those.
        names = [e.name for e in entries if e.name.startswith(TEMP_PREFIX) and is_temp(e.name)]
    for name in names:
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd
            )
        except OSError:
            continue  # gone already, or a directory (a transaction's staging area)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or current - st.st_mtime < older_than:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it
            # Still the same file under that name (not replaced meanwhile)?
            now_st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (now_st.st_dev, now_st.st_ino) != (st.st_dev, st.st_ino):
                continue
            os.unlink(name, dir_fd=dir_fd)
            removed += 1
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def refuse_existing(parent: Parent, operation: str) -> None:
    """CONFLICT if ``parent.name`` exists (for verbs with no atomic no-replace)."""
    try:
        os.stat(parent.name, dir_fd=parent.fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError:
        with translate(operation, join(parent.parts)):
            raise
    raise error(where(operation, join(parent.parts)) + "already exists", CONFLICT)
