"""``FileConnector``: sandboxed, atomic, lock-aware access to one directory tree.

The connector's handle is a descriptor of the root directory; every path
is resolved from it one component at a time (``sandbox.py``), writes are
atomic (``atomic.py``), locks are ``flock`` sidecars (``locks.py``) and
transactions rename staged files at the end (``txn.py``). This module holds
the lifecycle and the verbs.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fnmatch
import logging
import math
import os
import stat as stat_module
import time
import weakref
from collections.abc import Callable
from typing import Any, Literal, overload

import attrs

from dictamesh_connectors import _fork
from dictamesh_connectors._convert import describe_value, to_seconds
from dictamesh_connectors.base import Connector
from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError
from dictamesh_connectors.file import atomic, journal
from dictamesh_connectors.file.args import check_codec, check_flag
from dictamesh_connectors.file.atomic import AtomicWriter, BytesLike
from dictamesh_connectors.file.config import FileConfig
from dictamesh_connectors.file.errors import (
    CONFLICT,
    INVALID,
    NOT_FOUND,
    TOO_LARGE,
    error,
    translate,
    where,
    wrong_type,
)
from dictamesh_connectors.file.locks import FileLock
from dictamesh_connectors.file.paths import is_hidden, is_temp, join, split
from dictamesh_connectors.file.reader import FileReader
from dictamesh_connectors.file.sandbox import DIR_FLAGS, Parent, Sandbox
from dictamesh_connectors.file.txn import Transaction
from dictamesh_connectors.retry import RetryPolicy

__all__ = ["FileConnector", "FileInfo"]

logger = logging.getLogger(__name__)

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | _CLOEXEC
# read_bytes() reads up to this much before asking the file's size.
_FIRST_READ = 64 * 1024
# An orphan scan of one directory runs at most this often (per connector).
_MAX_SCAN_INTERVAL = 60.0
_NO_RETRY = RetryPolicy.no_retry()
_SAFETY_NET = translate("operation", "")  # stateless between uses: one for every call


@attrs.frozen(slots=True)
class FileInfo:
    """What ``list()`` and ``stat()`` report about one entry (never followed).

    Attributes:
        path: Relative to the root, ``/``-separated (``""`` for the root).
        name: The last component.
        size: Bytes (of the link itself for a symlink).
        is_file: A regular file.
        is_dir: A directory.
        is_symlink: A symbolic link (refused by the other verbs unless
            ``follow_symlinks`` is on and it stays inside the root).
        mtime: Last modification, seconds since the epoch.
        mode: Permission bits (``0o644``).
    """

    path: str
    name: str
    size: int
    is_file: bool
    is_dir: bool
    is_symlink: bool
    mtime: float
    mode: int

    @classmethod
    def from_stat(cls, parts: tuple[str, ...], st: os.stat_result) -> FileInfo:
        """Build from an ``lstat`` result.

        Raises:
            ArgumentTypeError: ``parts`` is not a tuple of ``str`` or ``st``
                not a stat result (also a ``TypeError``).
        """
        try:
            kind = st.st_mode
            return cls(
                path=join(parts),
                name=parts[-1] if parts else "",
                size=st.st_size,
                is_file=stat_module.S_ISREG(kind),
                is_dir=stat_module.S_ISDIR(kind),
                is_symlink=stat_module.S_ISLNK(kind),
                mtime=st.st_mtime,
                mode=stat_module.S_IMODE(kind),
            )
        except (AttributeError, TypeError, KeyError, IndexError, OverflowError, ValueError):
            # Checked here rather than up front: list() builds one per entry.
            culprit = st if isinstance(parts, tuple) else parts
            raise wrong_type(
                "stat", "from_stat()'s arguments", culprit, "a tuple of str and an os.stat_result"
            ) from None


class _Root:
    """The connector's handle: the root directory's descriptor and its sandbox.

    A root lost to a connection error (EIO, ESTALE, EBADF: the base class
    invalidates it and the next operation opens a new one) is not closed at
    once: other threads' operations may be resolving paths from its
    descriptor right now. Closed under them, they would fail with EBADF,
    or worse, the number could be reused by an unrelated directory and
    their ``openat`` would resolve from there. Its descriptor is closed
    when the last operation holding it lets go (``__del__``).
    """

    __slots__ = ("fd", "lost", "real", "sandbox")

    def __init__(self, fd: int, real: str, follow: bool) -> None:
        self.fd = fd
        self.real = real
        self.sandbox = Sandbox(fd, real, follow)
        self.lost = False

    def close(self) -> None:
        """Close the descriptor now (idempotent)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        # Only a lost root gets here open (every other is closed by _close or
        # _discard_after_fork); a copy inherited through fork is the child's own.
        fd = getattr(self, "fd", -1)
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


class FileConnector(Connector[FileConfig, _Root]):
    """Files under one root directory, shared safely by threads and processes.

    Thread safety: one instance serves every thread of a process. Every
    verb may run concurrently; none holds the connector lock while it
    touches the disk. Writes are atomic (readers see the old content or the
    new, never a mix), ``lock()`` excludes other threads *and* other
    processes, and after ``os.fork()`` the child opens its own root
    descriptor and drops its copies of the parent's open writers, readers
    and held locks (the parent's are untouched).

    Example::

        from dictamesh_connectors.file import FileConfig, FileConnector

        with FileConnector(FileConfig(root="/var/data", create_root=True)) as files:
            files.write_text("inbox/a.txt", "hello")
            with files.lock("inbox/a.txt"):
                files.append("inbox/a.txt", b" world")
    """

    name = "file"
    config_class = FileConfig

    def __init__(self, config: FileConfig) -> None:
        """Validate ``config``; nothing is opened until ``connect()``.

        Raises:
            InvalidConfigError: ``config`` is not a valid ``FileConfig``.
        """
        super().__init__(config)
        # Guards _owned and _scanned (memory only; never held across I/O).
        self._owned_lock = _fork.create_lock()
        # Open writers, readers, held locks and transactions, so a forked
        # child can drop its copies of their descriptors. Weak: an object
        # nobody references cleans up after itself.
        self._owned: weakref.WeakSet[Any] = weakref.WeakSet()
        # Directory (components) -> monotonic time of its last orphan scan.
        self._scanned: dict[tuple[str, ...], float] = {}

    # ------------------------------------------------------------------ hooks

    def _open(self) -> _Root:
        root = os.path.abspath(self.config.root)
        with translate("open root", ""):
            if self.config.create_root:
                os.makedirs(root, mode=self.config.dir_mode, exist_ok=True)
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        try:
            with translate("open root", ""):
                real = _real_path(fd, root)
        except BaseException:
            os.close(fd)
            raise
        handle = _Root(fd, real, self.config.follow_symlinks)
        if not self.config.read_only:
            self._recover(handle)
        return handle

    def _close(self, handle: _Root, timeout: float | None) -> None:
        if handle.lost:
            return  # operations in flight may still use it: closed by the last one (_Root)
        handle.close()

    def _on_connection_lost(self, handle: _Root, error: ConnectorError) -> None:
        handle.lost = True  # before the base class discards (and would close) it
        super()._on_connection_lost(handle, error)

    def _pool_stats(self, handle: _Root) -> dict[str, Any]:
        # No pool: one root descriptor; what is open on it is what is in use.
        with self._owned_lock:  # _owned
            open_now = len(self._owned)
        return {"in_use": open_now, "size": 1}

    def _discard_after_fork(self, handle: _Root) -> None:
        # A descriptor table is per process: closing the child's copy leaves
        # the parent's root descriptor open.
        with contextlib.suppress(OSError):
            handle.close()

    def _translate_errors(self) -> contextlib.AbstractContextManager[None]:
        # The safety net: every verb translates with its own name and path.
        return _SAFETY_NET

    def _ping(self, handle: _Root, timeout: float | None) -> None:
        with translate("ping", ""):
            st = os.fstat(handle.fd)
            if st.st_nlink == 0:
                raise error("file: ping: the root directory was removed", NOT_FOUND)
            with os.scandir(handle.fd) as entries:  # readable?
                next(iter(entries), None)
            if not self.config.read_only:  # writable?
                fd, temp = atomic.create_temp(handle.fd, self.config.file_mode)
                os.close(fd)
                atomic.discard_temp(handle.fd, temp)

    def _after_fork_in_child(self) -> None:
        forked = self._pid != os.getpid()
        handle = self._handle
        super()._after_fork_in_child()
        if not forked:
            return
        for owned in list(self._owned):
            try:
                owned._forget()
            except Exception:
                logger.debug("file: dropping a parent's descriptor failed", exc_info=True)
        self._owned = weakref.WeakSet()
        self._scanned = {}
        if handle is not None:
            _close_inherited(handle.real, self.config.lock_suffix)

    def _own(self, obj: Any) -> None:
        with self._owned_lock:  # _owned
            self._owned.add(obj)

    def _disown(self, obj: Any) -> None:
        with self._owned_lock:  # _owned
            self._owned.discard(obj)

    # ------------------------------------------------------------------ reads

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """Return the whole content of the file at ``path``.

        Raises:
            ConnectorError: NOT_FOUND, PERMISSION_DENIED (sandbox),
                INVALID_REQUEST (a directory), PAYLOAD_TOO_LARGE (over
                ``max_file_size``), or another translated ``OSError``.
        """
        parts = split(path, "read")
        return self._run(lambda root: self._read(root, parts), idempotent=True, description="read")

    def read_text(
        self, path: str | os.PathLike[str], encoding: str = "utf-8", errors: str = "strict"
    ) -> str:
        """Return the file at ``path`` decoded with ``encoding``.

        Raises:
            ConnectorError: As ``read_bytes``; SERIALIZATION_ERROR when the
                content does not decode; INVALID_REQUEST for an unknown
                encoding or error handler (checked before the file is read).
        """
        check_codec(encoding, errors, "read")
        data = self.read_bytes(path)
        return _decode(data, encoding, errors, join(split(path, "read")))

    def _open_final(
        self, root: _Root, parts: tuple[str, ...], operation: str
    ) -> tuple[int, tuple[str, ...]]:
        # Open the last component read-only, refusing (or following) a symlink there.
        hops = 0
        while True:
            parent = root.sandbox.parent(parts, operation, fast=False)
            try:
                if not parent.name:
                    raise error(where(operation, "") + "the root is a directory", INVALID)
                try:
                    return os.open(parent.name, _READ_FLAGS, dir_fd=parent.fd), parent.parts
                except OSError as exc:
                    if exc.errno != errno.ELOOP:
                        with translate(operation, join(parent.parts)):
                            raise
                parts = root.sandbox.follow_final(parent, operation, hops)
                hops += 1
            finally:
                parent.close()

    def _read(self, root: _Root, parts: tuple[str, ...]) -> bytes:
        fd = root.sandbox.open_file(parts)  # the fast path: no symlink, no error
        if fd < 0:
            fd, parts = self._open_final(root, parts, "read")
        limit = self.config.max_file_size
        try:
            # Small files (most) in one read and no fstat (whose result costs
            # more to build than the read): a short read is the end of the file.
            first_size = _FIRST_READ if limit is None or limit >= _FIRST_READ else limit + 1
            first = os.read(fd, first_size)
            if len(first) < first_size:
                return first
            if limit is not None and len(first) > limit:
                raise _too_large("read", join(parts), limit)
            # A large file: all of it in one read from the start (the first
            # 64 KiB again, from the page cache) rather than a copy to join.
            size = os.fstat(fd).st_size
            if limit is not None and size > limit:
                raise _too_large("read", join(parts), limit)
            data = os.pread(fd, size + 1, 0)
            if len(data) <= size:
                return data
            return self._read_on(fd, data, join(parts), limit)
        except (OSError, OverflowError):
            with translate("read", join(parts)):
                raise
        finally:
            os.close(fd)

    def _read_on(self, fd: int, first: bytes, path: str, limit: int | None) -> bytes:
        # The file grew after fstat: read to its end, still within the limit.
        chunks = [first]
        total = len(first)
        while True:
            if limit is not None and total > limit:
                raise _too_large("read", path, limit)
            chunk = os.read(fd, self.config.chunk_size)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            chunks.append(chunk)

    @overload
    def open(
        self, path: str | os.PathLike[str], mode: Literal["rb"] = "rb", *, overwrite: bool = True
    ) -> FileReader: ...

    @overload
    def open(
        self, path: str | os.PathLike[str], mode: Literal["wb"], *, overwrite: bool = True
    ) -> AtomicWriter: ...

    def open(
        self, path: str | os.PathLike[str], mode: str = "rb", *, overwrite: bool = True
    ) -> FileReader | AtomicWriter:
        """Open ``path`` for streaming: ``"rb"`` reads, ``"wb"`` is an atomic write.

        ``"wb"`` returns an ``AtomicWriter``: the new content stays hidden
        until ``close()`` (or a clean exit from its ``with`` block) puts it
        in place; an exception in the block discards it. ``overwrite=False``
        refuses to replace an existing file (checked at commit).

        Raises:
            ConnectorError: INVALID_REQUEST for another mode or a write on a
                read-only connector; as ``read_bytes`` / ``write_bytes``.
        """
        if not isinstance(mode, str):
            raise wrong_type("open", "mode", mode, "'rb' or 'wb'")
        check_flag(overwrite, "overwrite", "open")
        if mode == "rb":
            parts = split(path, "open")
            reader = self._run(
                lambda root: self._open_reader(root, parts), idempotent=True, description="open"
            )
            return reader
        if mode == "wb":
            parts = self._writable(path, "open")
            return self._run(
                lambda root: self._open_writer(root, parts, overwrite),
                idempotent=True,
                description="open",
            )
        raise error(f"file: open: mode {mode!r:.10} is not 'rb' or 'wb'", INVALID)

    def _open_reader(self, root: _Root, parts: tuple[str, ...]) -> FileReader:
        fd = root.sandbox.open_file(parts)
        if fd < 0:
            fd, parts = self._open_final(root, parts, "open")
        path = join(parts)
        limit = self.config.max_file_size
        try:
            with translate("open", path):
                st = os.fstat(fd)
            if stat_module.S_ISDIR(st.st_mode):
                raise error(where("open", path) + "is a directory", INVALID)
            if limit is not None and st.st_size > limit:
                raise _too_large("open", path, limit)
        except BaseException:
            os.close(fd)
            raise
        reader = FileReader(
            fd, path, chunk_size=self.config.chunk_size, max_size=limit, on_done=self._disown
        )
        self._own(reader)
        return reader

    def _open_writer(self, root: _Root, parts: tuple[str, ...], overwrite: bool) -> AtomicWriter:
        parent = self._write_parent(root, parts, "open")
        try:
            writer = AtomicWriter(
                parent,
                overwrite=overwrite,
                fsync=self.config.fsync,
                mode=self.config.file_mode,
                max_size=self.config.max_file_size,
                buffer_size=self.config.chunk_size,
                on_done=self._disown,
            )
        finally:
            parent.close()
        self._own(writer)
        return writer

    # ----------------------------------------------------------------- writes

    def write_bytes(
        self, path: str | os.PathLike[str], data: BytesLike, *, overwrite: bool = True
    ) -> None:
        """Atomically replace (or create) the file at ``path`` with ``data``.

        A temporary file in the same directory is written, fsynced, renamed
        over ``path``, and the directory fsynced (``fsync=False`` skips both
        fsyncs, not the atomicity). ``overwrite=False`` refuses to replace an
        existing file (CONFLICT), atomically.

        Raises:
            ArgumentTypeError: ``data`` is not bytes-like (also a ``TypeError``).
            ConnectorError: INVALID_REQUEST (read-only connector, reserved
                name, a directory), PERMISSION_DENIED (sandbox), NOT_FOUND
                (missing directory), CONFLICT, PAYLOAD_TOO_LARGE,
                RESOURCE_EXHAUSTED (disk full; transient), ...
        """
        check_flag(overwrite, "overwrite", "write")
        parts, view = self._write_request(path, data)
        self._run(
            lambda root: self._write(root, parts, view, overwrite),
            idempotent=overwrite,
            description="write",
        )

    def write_text(
        self,
        path: str | os.PathLike[str],
        text: str,
        *,
        encoding: str = "utf-8",
        errors: str = "strict",
        overwrite: bool = True,
    ) -> None:
        """``write_bytes(path, text.encode(encoding, errors))``.

        Raises:
            ArgumentTypeError: ``text`` is not a ``str`` (also a ``TypeError``).
            ConnectorError: As ``write_bytes``; SERIALIZATION_ERROR when the
                text does not encode; INVALID_REQUEST for an unknown
                encoding or error handler.
        """
        if not isinstance(text, str):
            raise wrong_type("write", "text", text, "a str")
        check_codec(encoding, errors, "write")
        check_flag(overwrite, "overwrite", "write")
        parts = self._writable(path, "write")
        self.write_bytes(path, _encode(text, encoding, errors, join(parts)), overwrite=overwrite)

    def _write_request(self, path: Any, data: Any) -> tuple[tuple[str, ...], memoryview]:
        # What a whole-file write checks before any I/O: path, data type, size.
        parts = self._writable(path, "write")
        view = _bytes_view(data)
        self._check_size("write", parts, len(view))
        return parts, view

    def _write(
        self, root: _Root, parts: tuple[str, ...], data: memoryview, overwrite: bool
    ) -> None:
        parent = self._write_parent(root, parts, "write")
        try:
            atomic.atomic_write(
                parent,
                data,
                overwrite=overwrite,
                fsync=self.config.fsync,
                mode=self.config.file_mode,
                operation="write",
            )
        finally:
            parent.close()

    def _write_parent(self, root: _Root, parts: tuple[str, ...], operation: str) -> Parent:
        """The target's directory, checked: not the root, not reserved; orphans swept."""
        parent = root.sandbox.parent(parts, operation, lstat=True)
        try:
            if not parent.name:
                raise error(where(operation, "") + "the root is a directory", INVALID)
            if parent.parts is not parts:  # a symlink was followed: check where it led
                self._check_name(parent.name, parent.parts, operation)
            self._maybe_clean(root, parent)
        except BaseException:
            parent.close()
            raise
        return parent

    def append(
        self, path: str | os.PathLike[str], data: BytesLike | str, *, encoding: str = "utf-8"
    ) -> None:
        """Append ``data`` to the file at ``path`` (created if missing), then fsync it.

        Not atomic and not idempotent: a failure may leave part of ``data``
        written (``maybe_applied``), and it is not retried. Writers that
        must not interleave hold ``lock(path)`` around their appends.

        Raises:
            ArgumentTypeError: ``data`` is neither bytes-like nor ``str``
                (also a ``TypeError``).
            ConnectorError: As ``write_bytes``; PAYLOAD_TOO_LARGE when the
                file would pass ``max_file_size``.
        """
        parts = self._writable(path, "append")
        if isinstance(data, str):
            check_codec(encoding, "strict", "append")
            view = memoryview(_encode(data, encoding, "strict", join(parts)))
        else:
            view = _bytes_view(data, "append")
        self._run(
            lambda root: self._append(root, parts, view), idempotent=False, description="append"
        )

    def _append(self, root: _Root, parts: tuple[str, ...], data: memoryview) -> None:
        parent = self._write_parent(root, parts, "append")
        path = join(parent.parts)
        created = False
        try:
            with translate("append", path, write=True):
                try:
                    fd = os.open(parent.name, _APPEND_FLAGS, dir_fd=parent.fd)
                except FileNotFoundError:
                    fd = os.open(
                        parent.name,
                        _APPEND_FLAGS | os.O_CREAT,
                        self.config.file_mode,
                        dir_fd=parent.fd,
                    )
                    created = True
            try:
                limit = self.config.max_file_size
                with translate("append", path, write=True):
                    st = os.fstat(fd)
                    if not stat_module.S_ISREG(st.st_mode):
                        raise error(where("append", path) + "is not a regular file", INVALID)
                    if limit is not None and st.st_size + len(data) > limit:
                        raise _too_large("append", path, limit)
                with translate("append", path, write=True, maybe_applied=True):
                    atomic.write_all(fd, data)
                    if self.config.fsync:
                        os.fsync(fd)
                        if created:
                            atomic.fsync_dir(parent.fd)
            finally:
                os.close(fd)
        finally:
            parent.close()

    # -------------------------------------------------------- listing, status

    def list(
        self, path: str | os.PathLike[str] = ".", pattern: str = "*", recursive: bool = False
    ) -> builtins.list[FileInfo]:
        """The entries of directory ``path`` whose name matches ``pattern``, sorted by path.

        ``pattern`` is an ``fnmatch`` pattern, case-sensitive, matched
        against each entry's name, or against its path relative to ``path``
        when the pattern holds a ``/``. ``recursive`` descends into
        subdirectories (never into symlinks). Temporary files of writes in
        progress, lock sidecars and transaction staging areas are never listed.

        Raises:
            ConnectorError: NOT_FOUND, INVALID_REQUEST (not a directory),
                PERMISSION_DENIED (sandbox), ...
        """
        if not isinstance(pattern, str):
            raise wrong_type("list", "pattern", pattern, "a str")
        check_flag(recursive, "recursive", "list")
        parts = split(path, "list")
        return self._run(
            lambda root: self._list(root, parts, pattern, recursive),
            idempotent=True,
            description="list",
        )

    def query(
        self, pattern: str = "*", *, path: str | os.PathLike[str] = ".", recursive: bool = True
    ) -> builtins.list[FileInfo]:
        """The toolkit's read verb: ``list(path, pattern, recursive=True)``.

        There is no ``execute``: the write verbs (``write_bytes``,
        ``append``, ``move``, ...) are what it would be.
        """
        return self.list(path, pattern, recursive)

    def _list(
        self, root: _Root, parts: tuple[str, ...], pattern: str, recursive: bool
    ) -> builtins.list[FileInfo]:
        directory = root.sandbox.directory(parts, "list")
        found: builtins.list[FileInfo] = []
        by_path = "/" in pattern
        suffix = self.config.lock_suffix
        try:
            pending: builtins.list[tuple[int, tuple[str, ...], bool]] = [
                (directory.fd, (), directory.owned)
            ]
            while pending:
                fd, below, owned = pending.pop()
                try:
                    with (
                        translate("list", join(directory.parts + below)),
                        os.scandir(fd) as entries,
                    ):
                        names = [e.name for e in entries if not is_hidden(e.name, suffix)]
                    for name in names:
                        try:
                            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        except FileNotFoundError:
                            continue  # removed while we listed
                        except OSError:
                            with translate("list", join((*directory.parts, *below, name))):
                                raise
                        rel = (*below, name)
                        subject = join(rel) if by_path else name
                        if fnmatch.fnmatchcase(subject, pattern):
                            found.append(FileInfo.from_stat((*directory.parts, *rel), st))
                        if recursive and stat_module.S_ISDIR(st.st_mode):
                            try:
                                child = os.open(name, DIR_FLAGS, dir_fd=fd)
                            except (FileNotFoundError, NotADirectoryError):
                                continue  # removed or swapped for a symlink meanwhile
                            except OSError:
                                with translate("list", join((*directory.parts, *rel))):
                                    raise
                            pending.append((child, rel, True))
                finally:
                    if owned:
                        os.close(fd)
        finally:
            for fd, _, owned in pending:
                if owned:
                    os.close(fd)
        found.sort(key=lambda info: info.path)
        return found

    def stat(self, path: str | os.PathLike[str]) -> FileInfo:
        """What is at ``path`` (a symlink there is refused unless followed).

        Raises:
            ConnectorError: NOT_FOUND, PERMISSION_DENIED (sandbox), ...
        """
        parts = split(path, "stat")
        return self._run(lambda root: self._stat(root, parts), idempotent=True, description="stat")

    def _stat(self, root: _Root, parts: tuple[str, ...]) -> FileInfo:
        if not parts:
            with translate("stat", ""):
                return FileInfo.from_stat((), os.fstat(root.fd))
        parent = root.sandbox.parent(parts, "stat", lstat=True)
        try:
            self._check_visible(parent.name, parent.parts, "stat")
            with translate("stat", join(parent.parts)):
                st = os.stat(parent.name, dir_fd=parent.fd, follow_symlinks=False)
            return FileInfo.from_stat(parent.parts, st)
        finally:
            parent.close()

    def exists(self, path: str | os.PathLike[str]) -> bool:
        """True if something exists at ``path``; False if it (or a directory on the way) does not.

        Raises:
            ConnectorError: PERMISSION_DENIED for a path the sandbox refuses
                (it is never answered with False), ...
        """
        try:
            self.stat(path)
        except ConnectorError as err:
            if err.code is ErrorCode.NOT_FOUND or err.details.get("errno") == "ENOTDIR":
                return False
            raise
        return True

    # ----------------------------------------------------------------- changes

    def delete(self, path: str | os.PathLike[str], *, missing_ok: bool = False) -> None:
        """Remove the file at ``path`` (not a directory: see ``rmdir``).

        Raises:
            ConnectorError: NOT_FOUND unless ``missing_ok``; INVALID_REQUEST
                for a directory or on a read-only connector; ...
        """
        check_flag(missing_ok, "missing_ok", "delete")
        parts = self._writable(path, "delete")
        self._run(
            lambda root: self._delete(root, parts, missing_ok),
            idempotent=missing_ok,
            description="delete",
        )

    def _delete(self, root: _Root, parts: tuple[str, ...], missing_ok: bool) -> None:
        def refuse(parent: Parent, exc: OSError) -> ConnectorError | None:
            # Linux answers EISDIR for a directory, POSIX allows EPERM.
            if exc.errno in (errno.EISDIR, errno.EPERM) and _is_dir(parent):
                return error(
                    where("delete", join(parent.parts)) + "is a directory (use rmdir)", INVALID
                )
            return None

        self._remove(root, parts, "delete", missing_ok, _unlink, refuse)

    def _remove(
        self,
        root: _Root,
        parts: tuple[str, ...],
        operation: str,
        missing_ok: bool,
        remove: Callable[[Parent], None],
        refuse: Callable[[Parent, OSError], ConnectorError | None],
    ) -> None:
        """``delete`` and ``rmdir``: resolve, remove, map what only the verb knows, fsync.

        ``refuse`` turns an ``OSError`` of ``remove`` into the verb's own
        error (a directory given to ``delete``, a non-empty one to
        ``rmdir``), or returns ``None`` for the errno table.
        """
        try:
            parent = self._write_parent(root, parts, operation)
        except ConnectorError as err:
            if missing_ok and err.details.get("errno") == "ENOENT":
                return
            raise
        try:
            path = join(parent.parts)
            try:
                remove(parent)
            except FileNotFoundError:
                if missing_ok:
                    return
                raise error(
                    where(operation, path) + "No such file or directory", NOT_FOUND
                ) from None
            except OSError as exc:
                refused = refuse(parent, exc)
                if refused is not None:
                    raise refused from exc
                with translate(operation, path, write=True):
                    raise
            self._durable(operation, path, parent.fd)
        finally:
            parent.close()

    def _durable(self, operation: str, path: str, *dir_fds: int) -> None:
        # With fsync on, a change of names is on disk before the verb returns;
        # failing here, the change was made (maybe_applied), only not durable.
        if self.config.fsync:
            with translate(operation, path, write=True, maybe_applied=True):
                for dir_fd in dir_fds:
                    atomic.fsync_dir(dir_fd)

    def move(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        overwrite: bool = True,
    ) -> None:
        """Rename ``src`` to ``dst`` atomically (both inside the root; files or directories).

        ``overwrite=False`` refuses an existing ``dst`` (CONFLICT): atomically
        for files (``link`` + ``unlink``), by a check just before the rename
        for directories.

        Raises:
            ConnectorError: NOT_FOUND, CONFLICT, UNSUPPORTED (``src`` and
                ``dst`` on different file systems under the root), ...
        """
        check_flag(overwrite, "overwrite", "move")
        src_parts = self._writable(src, "move")
        dst_parts = self._writable(dst, "move")
        self._run(
            lambda root: self._move(root, src_parts, dst_parts, overwrite),
            idempotent=False,
            description="move",
        )

    def _move(
        self, root: _Root, src: tuple[str, ...], dst: tuple[str, ...], overwrite: bool
    ) -> None:
        source = self._write_parent(root, src, "move")
        try:
            target = self._write_parent(root, dst, "move")
            try:
                path = join(source.parts)
                with translate("move", path, write=True):
                    if overwrite:
                        os.rename(
                            source.name, target.name, src_dir_fd=source.fd, dst_dir_fd=target.fd
                        )
                    elif _is_dir(source):
                        atomic.refuse_existing(target, "move")
                        os.rename(
                            source.name, target.name, src_dir_fd=source.fd, dst_dir_fd=target.fd
                        )
                    else:
                        try:
                            os.link(
                                source.name,
                                target.name,
                                src_dir_fd=source.fd,
                                dst_dir_fd=target.fd,
                                follow_symlinks=False,
                            )
                        except FileExistsError:
                            raise error(
                                where("move", join(target.parts)) + "already exists", CONFLICT
                            ) from None
                        os.unlink(source.name, dir_fd=source.fd)
                self._durable("move", path, target.fd, source.fd)
            finally:
                target.close()
        finally:
            source.close()

    def copy(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        overwrite: bool = True,
    ) -> None:
        """Copy the file ``src`` to ``dst`` as one atomic write (``copy_file_range`` when possible).

        Raises:
            ConnectorError: As ``read_bytes`` for ``src`` and ``write_bytes``
                for ``dst``.
        """
        check_flag(overwrite, "overwrite", "copy")
        src_parts = split(src, "copy")
        dst_parts = self._writable(dst, "copy")
        self._run(
            lambda root: self._copy(root, src_parts, dst_parts, overwrite),
            idempotent=overwrite,
            description="copy",
        )

    def _copy(
        self, root: _Root, src: tuple[str, ...], dst: tuple[str, ...], overwrite: bool
    ) -> None:
        fd = root.sandbox.open_file(src)
        if fd < 0:
            fd, src = self._open_final(root, src, "copy")
        try:
            path = join(src)
            with translate("copy", path):
                st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                raise error(where("copy", path) + "is not a regular file", INVALID)
            limit = self.config.max_file_size
            if limit is not None and st.st_size > limit:
                raise _too_large("copy", path, limit)
            parent = self._write_parent(root, dst, "copy")
            try:
                with AtomicWriter(
                    parent,
                    overwrite=overwrite,
                    fsync=self.config.fsync,
                    mode=self.config.file_mode,
                    max_size=limit,
                    buffer_size=self.config.chunk_size,
                ) as out:
                    out.copy_from(fd, st.st_size)
            finally:
                parent.close()
        finally:
            os.close(fd)

    def mkdir(
        self, path: str | os.PathLike[str], *, parents: bool = False, exist_ok: bool = False
    ) -> None:
        """Create the directory ``path`` (and the missing ones above it with ``parents``).

        Raises:
            ConnectorError: CONFLICT when it exists (unless ``exist_ok`` and
                it is a directory), NOT_FOUND for a missing parent, ...
        """
        check_flag(parents, "parents", "mkdir")
        check_flag(exist_ok, "exist_ok", "mkdir")
        parts = self._writable(path, "mkdir")
        if not parts:
            if exist_ok:
                return
            raise error(where("mkdir", "") + "the root exists", CONFLICT)
        self._run(
            lambda root: self._mkdir(root, parts, parents, exist_ok),
            idempotent=exist_ok,
            description="mkdir",
        )

    def _mkdir(self, root: _Root, parts: tuple[str, ...], parents: bool, exist_ok: bool) -> None:
        steps = range(1, len(parts) + 1) if parents else (len(parts),)
        for end in steps:
            last = end == len(parts)
            self._check_name(parts[end - 1], parts[:end], "mkdir")  # _writable checked the last
            parent = self._write_parent(root, parts[:end], "mkdir")
            try:
                path = join(parent.parts)
                try:
                    os.mkdir(parent.name, self.config.dir_mode, dir_fd=parent.fd)
                except FileExistsError:
                    if (exist_ok or not last) and _is_dir(parent):
                        continue
                    raise error(where("mkdir", path) + "already exists", CONFLICT) from None
                except OSError:
                    with translate("mkdir", path, write=True):
                        raise
                self._durable("mkdir", path, parent.fd)
            finally:
                parent.close()

    def rmdir(self, path: str | os.PathLike[str], *, missing_ok: bool = False) -> None:
        """Remove the empty directory ``path``.

        Raises:
            ConnectorError: CONFLICT when it is not empty (lock sidecars and
                temporary files, which ``list()`` hides, count), NOT_FOUND
                unless ``missing_ok``, INVALID_REQUEST for the root or a file.
        """
        check_flag(missing_ok, "missing_ok", "rmdir")
        parts = self._writable(path, "rmdir")
        if not parts:
            raise error(where("rmdir", "") + "the root cannot be removed", INVALID)
        self._run(
            lambda root: self._rmdir(root, parts, missing_ok),
            idempotent=missing_ok,
            description="rmdir",
        )

    def _rmdir(self, root: _Root, parts: tuple[str, ...], missing_ok: bool) -> None:
        def refuse(parent: Parent, exc: OSError) -> ConnectorError | None:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return error(
                    where("rmdir", join(parent.parts))
                    + "directory not empty (hidden lock sidecars and temporary files count)",
                    CONFLICT,
                )
            return None

        self._remove(root, parts, "rmdir", missing_ok, _rmdir_entry, refuse)

    # ------------------------------------------------------------ coordination

    def lock(
        self,
        path: str | os.PathLike[str],
        timeout: float | None = None,
        shared: bool = False,
    ) -> FileLock:
        """Take an advisory lock on ``path``, held when this returns; use it in ``with``.

        The lock is an ``flock`` on the sidecar ``<path><lock_suffix>``
        (created if missing, never listed, never deleted): it excludes other
        threads of this process and other processes alike (on one machine;
        on a network file system, as far as its ``flock`` does). ``path``
        itself need not exist. ``shared=True`` takes a reader lock: many
        shared holders, no exclusive one.

        Args:
            path: What to lock, relative to the root.
            timeout: Seconds to wait; ``None`` uses ``config.lock_timeout``;
                ``0`` tries once; ``math.inf`` waits as long as it takes.
            shared: A shared (read) lock instead of an exclusive one.

        Raises:
            ConnectorError: LOCK_TIMEOUT (transient) when not granted in
                time; NOT_FOUND for a missing directory; on a read-only
                connector, NOT_FOUND when the sidecar does not exist yet.
        """
        wait = self.config.lock_timeout if timeout is None else _timeout(timeout)
        check_flag(shared, "shared", "lock")
        parts = split(path, "lock")
        if not parts:
            raise error(
                where("lock", "") + "the root cannot be locked (lock a name in it)", INVALID
            )
        return self._run(
            lambda root: self._take_lock(root, parts, wait, shared),
            idempotent=True,
            retry=_NO_RETRY,  # the caller's timeout is the whole wait
            description="lock",
        )

    def _take_lock(
        self, root: _Root, parts: tuple[str, ...], wait: float, shared: bool
    ) -> FileLock:
        parent = root.sandbox.parent(parts, "lock", lstat=True)
        try:
            if not parent.name:
                raise error(where("lock", "") + "the root cannot be locked", INVALID)
            self._check_name(parent.name, parent.parts, "lock")
            held = FileLock(
                parent,
                parent.name + self.config.lock_suffix,
                join(parent.parts),
                shared=shared,
                timeout=wait,
                mode=self.config.file_mode,
                create=not self.config.read_only,
                sleep=self._sleep,
                clock=self._clock,
                on_done=self._disown,
            )
        finally:
            parent.close()
        self._own(held)
        try:
            return held.acquire()
        except BaseException:
            held.release()
            raise

    def transaction(self, *, overwrite: bool = True) -> Transaction:
        """Group writes that become visible together, at the end of a ``with`` block.

        Each write goes to a hidden temporary file next to its target
        (fsynced at once). Leaving the block normally commits: every file is
        renamed into place, in the order written, then each directory is
        fsynced. An exception in the block (or ``rollback()``) discards them
        all: nothing becomes visible. See ``Transaction`` for what a crash
        in the middle of the commit leaves.

        Raises:
            ConnectorError: INVALID_REQUEST on a read-only connector.
        """
        check_flag(overwrite, "overwrite", "transaction")
        if self.config.read_only:
            raise error("file: transaction: the connector is read-only", INVALID)
        txn = Transaction(self, overwrite=overwrite, on_done=self._disown)
        self._own(txn)
        return txn

    def clean_orphans(self, path: str | os.PathLike[str] = ".") -> int:
        """Remove the temporary files crashed writers left in directory ``path``.

        Only files older than ``orphan_age`` that no live writer holds are
        removed (writes do this on their own, at most once a minute per
        directory). Returns how many were removed.

        Raises:
            ConnectorError: INVALID_REQUEST on a read-only connector; as ``list``.
        """
        parts = self._writable(path, "clean")
        return self._run(
            lambda root: self._clean(root, parts), idempotent=True, description="clean"
        )

    def _clean(self, root: _Root, parts: tuple[str, ...]) -> int:
        self._recover(root)
        directory = root.sandbox.directory(parts, "clean")
        try:
            with translate("clean", join(directory.parts), write=True):
                return atomic.clean_orphans(directory.fd, self.config.orphan_age)
        finally:
            directory.close()

    def _recover(self, root: _Root) -> None:
        # Finish the commits of transactions whose process died mid-commit,
        # before anything else reads the root. A failure is logged, not
        # raised: the journal stays and the next scan tries again.
        try:
            journal.recover(root.sandbox, fsync=self.config.fsync)
        except OSError:
            logger.warning("file: scanning the root for unfinished commits failed", exc_info=True)

    def _maybe_clean(self, root: _Root, parent: Parent) -> None:
        age = self.config.orphan_age
        if age == math.inf:
            return
        key = parent.parts[:-1]
        now = time.monotonic()
        with self._owned_lock:  # _scanned: decide here, scan outside
            last = self._scanned.get(key)
            if last is not None and now - last < min(age, _MAX_SCAN_INTERVAL):
                return
            if len(self._scanned) > 4096:
                self._scanned.clear()
            self._scanned[key] = now
        self._recover(root)  # first: a dead commit's staged files are not orphans
        try:
            removed = atomic.clean_orphans(parent.fd, age)
        except OSError:
            logger.debug("file: orphan scan of %r failed", join(key), exc_info=True)
            return
        if removed:
            logger.info(
                "file: removed %d orphaned temporary file(s) in %r", removed, join(key) or "."
            )

    # ---------------------------------------------------------------- helpers

    def _writable(self, path: Any, operation: str) -> tuple[str, ...]:
        if self.config.read_only:
            raise error(f"file: {operation}: the connector is read-only", INVALID)
        parts = split(path, operation)
        if parts:
            self._check_name(parts[-1], parts, operation)  # before any I/O
        return parts

    def _check_name(self, name: str, parts: tuple[str, ...], operation: str) -> None:
        if is_hidden(name, self.config.lock_suffix):
            raise error(
                where(operation, join(parts))
                + "the name is reserved for the connector's lock and temporary files",
                INVALID,
            )

    def _check_visible(self, name: str, parts: tuple[str, ...], operation: str) -> None:
        if name and is_hidden(name, self.config.lock_suffix):
            raise error(where(operation, join(parts)) + "No such file or directory", NOT_FOUND)

    def _check_size(self, operation: str, parts: tuple[str, ...], size: int) -> None:
        limit = self.config.max_file_size
        if limit is not None and size > limit:
            raise _too_large(operation, join(parts), limit)

    def _describe(self) -> str:
        return self.config.connection_string()


def _real_path(fd: int, fallback: str) -> str:
    # The root as the kernel resolved it (symlinks in the configured path
    # followed), for checking absolute symlink targets against it.
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(fallback)


def _close_inherited(root_real: str, lock_suffix: str) -> None:
    """In a forked child: close copies of lock sidecars and temporary files under the root.

    Another thread of the parent may have been between opening a sidecar
    and recording it when the fork happened; the child's copy of that
    descriptor would keep the parent's ``flock`` alive after the parent
    releases it (a lock belongs to the open file description, which the
    copy shares). Linux names every descriptor in ``/proc/self/fd``.
    """
    proc = "/proc/self/fd"
    try:
        numbers = os.listdir(proc)
    except OSError:
        return  # not Linux: the objects' own _forget() is all there is
    prefix = root_real.rstrip("/") + "/"
    for number in numbers:
        try:
            target = os.readlink(f"{proc}/{number}")
        except OSError:
            continue
        target = target.removesuffix(" (deleted)")
        if not target.startswith(prefix):
            continue
        name = target.rsplit("/", 1)[-1]
        if name.endswith(lock_suffix) or is_temp(name):
            with contextlib.suppress(OSError, ValueError):
                os.close(int(number))


def _unlink(parent: Parent) -> None:
    os.unlink(parent.name, dir_fd=parent.fd)


def _rmdir_entry(parent: Parent) -> None:
    os.rmdir(parent.name, dir_fd=parent.fd)


def _is_dir(parent: Parent) -> bool:
    try:
        st = os.stat(parent.name, dir_fd=parent.fd, follow_symlinks=False)
    except OSError:
        return False
    return stat_module.S_ISDIR(st.st_mode)


def _bytes_view(data: Any, operation: str = "write") -> memoryview:
    if isinstance(data, str):
        raise wrong_type(operation, "data", data, "bytes-like (use write_text for a str)")
    try:
        return memoryview(data).cast("B")
    except (TypeError, ValueError):  # not a buffer; a non-contiguous view
        raise wrong_type(operation, "data", data, "a contiguous bytes-like object") from None


def _too_large(operation: str, path: str, limit: int) -> ConnectorError:
    return error(where(operation, path) + f"more than max_file_size ({limit}) bytes", TOO_LARGE)


def _timeout(value: object) -> float:
    # The core's duration check with lock()'s bounds (no maximum: inf, or an
    # int past any float, waits as long as it takes), re-raised as the File
    # connector's classes: ArgumentTypeError and INVALID_REQUEST.
    try:
        return to_seconds(value, maximum=math.inf, no_limit="inf")
    except TypeError:
        raise wrong_type("lock", "timeout", value, "a number of seconds") from None
    except InvalidConfigError:
        shown = describe_value(value)
        raise error(f"file: lock: timeout must be >= 0, got {shown}", INVALID) from None


def _decode(data: bytes, encoding: str, errors: str, path: str) -> str:
    # Callers check the codec first (check_codec); this is the net for the rest.
    try:
        return data.decode(encoding, errors)
    except UnicodeError as exc:  # before ValueError: a UnicodeError is one
        with translate("read", path):
            raise exc from None
    except (LookupError, ValueError, TypeError):
        raise error(where("read", path) + f"unknown encoding {encoding!r:.40}", INVALID) from None
    raise AssertionError("unreachable")


def _encode(text: str, encoding: str, errors: str, path: str) -> bytes:
    try:
        return text.encode(encoding, errors)
    except UnicodeError as exc:  # before ValueError: a UnicodeError is one
        with translate("write", path):
            raise exc from None
    except (LookupError, ValueError, TypeError):
        raise error(where("write", path) + f"unknown encoding {encoding!r:.40}", INVALID) from None
    raise AssertionError("unreachable")
