"""``FakeFile``: the ``FileConnector`` API over an in-memory tree.

Nothing touches the disk. The tree (directories and files) lives in the
fake and survives ``disconnect()``/``connect()``, like files on a disk.
The sandbox rules are the real ones (``file/paths.split``: absolute paths,
NUL and ``..`` are PERMISSION_DENIED; reserved names INVALID_REQUEST), and
every failure is raised as the ``OSError`` (``errno``) the real system call
would raise, translated by the real ``file/errors.py`` table: a missing file
is NOT_FOUND with ``details["errno"] == "ENOENT"``, ``overwrite=False`` on
an existing file CONFLICT, a directory where a file is expected
INVALID_REQUEST, a lock not granted in time LOCK_TIMEOUT. Symlinks do not
exist in the fake.

``lock()`` excludes other threads of this process (shared locks share),
with the real timeout rules; it creates the hidden sidecar the real one
creates (so ``rmdir`` of a directory with one is CONFLICT, as on disk).
After ``os.fork()`` the child has its own copy of the tree and no locks.

Operation names for ``fail_next`` / ``set_latency``: the public verbs
(``"read_bytes"``, ``"open"``, ``"write_bytes"``, ``"append"``, ``"list"``,
``"stat"``, ``"delete"``, ``"move"``, ``"copy"``, ``"mkdir"``, ``"rmdir"``,
``"lock"``, ``"clean_orphans"``), ``"commit"`` (a transaction's commit),
``"connect"`` and ``"ping"``. As in the real connector, ``read_text`` goes
through ``read_bytes``, ``write_text`` through ``write_bytes``, ``exists``
through ``stat`` and ``query`` through ``list``. Partial faults apply to
``append`` (a prefix of the bytes is written) and ``"commit"`` (a prefix of
the staged changes is applied).
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import math
import os
import time
from typing import Any, ClassVar, Literal, overload

from dictamesh_connectors import _fork
from dictamesh_connectors.base import Connector
from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.file.atomic import BytesLike
from dictamesh_connectors.file.config import FileConfig
from dictamesh_connectors.file.connector import (
    FileInfo,
    _bytes_view,
    _decode,
    _encode,
    _timeout,
    _too_large,
)
from dictamesh_connectors.file.errors import (
    CONFLICT,
    INVALID,
    NOT_FOUND,
    error,
    where,
)
from dictamesh_connectors.file.paths import is_hidden, join, split
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.fakes._faults import FaultInjection, FaultPlan, fault_operations
from dictamesh_connectors.testing.fakes._file_handles import (
    FakeFileLock,
    FakeFileReader,
    FakeFileTransaction,
    FakeFileWriter,
)
from dictamesh_connectors.testing.fakes._file_tree import Dir, File, Mount, Node, fail

__all__ = ["FakeFile", "FakeFileLock", "FakeFileReader", "FakeFileTransaction", "FakeFileWriter"]

DEFAULT_ROOT = "/fake"
"""The root a ``FakeFile()`` built without a config names (never touched)."""

_NO_RETRY = RetryPolicy.no_retry()


class FakeFile(FaultInjection, Connector[FileConfig, Mount]):
    """The ``FileConnector`` API over an in-memory tree: no disk, same rules and errors.

    Thread safety: as ``FileConnector``: every verb may run concurrently
    from any thread; writes are atomic (a reader sees the old content or the
    new), ``lock()`` excludes other threads. Readers, writers, locks and
    transactions belong to the thread that opened them.

    Example::

        from dictamesh_connectors.testing.fakes import FakeFile

        with FakeFile() as files:
            files.mkdir("inbox")
            files.write_text("inbox/a.txt", "hello")
            with files.lock("inbox/a.txt"):
                files.append("inbox/a.txt", b" world")
            assert files.read_text("inbox/a.txt") == "hello world"
            assert files.contents == {"inbox/a.txt": b"hello world"}

    Args:
        config: A ``FileConfig`` (its ``root`` is only a name), a root path,
            or ``None`` for ``FileConfig(root="/fake")``.

    Raises:
        InvalidConfigError: ``config`` is invalid.
    """

    name: ClassVar[str] = "file"
    config_class: ClassVar[type[FileConfig]] = FileConfig

    def __init__(self, config: FileConfig | str | None = None) -> None:
        if config is None:
            config = FileConfig(root=DEFAULT_ROOT)
        elif isinstance(config, str):
            config = FileConfig(root=config)
        super().__init__(config)
        self._faults = FaultPlan(self.name, operations=fault_operations(type(self), "commit"))
        # Guards the tree (every Dir and File in it); held only for memory
        # updates, never across a sleep, a latency or a user callback.
        self._tree_lock = _fork.create_lock()
        self._root = Dir()  # guarded by _tree_lock
        # Held locks: path components -> (exclusive holder count, shared count).
        self._locks_changed = _fork.create_condition()
        self._held: dict[tuple[str, ...], list[int]] = {}  # guarded by _locks_changed

    # ------------------------------------------------------------------ hooks

    def _open(self) -> Mount:
        self._faults.check("connect")
        return Mount()

    def _close(self, handle: Mount, timeout: float | None) -> None:
        handle.closed = True

    def _ping(self, handle: Mount, timeout: float | None) -> None:
        self._faults.check("ping")

    def _after_fork_in_child(self) -> None:
        forked = self._pid != os.getpid()
        super()._after_fork_in_child()
        if forked:
            self._held = {}  # the parent's locks are the parent's

    # --------------------------------------------------------------- assertions

    @property
    def contents(self) -> dict[str, bytes]:
        """Every visible file and its bytes, by path (for assertions; no I/O, no faults)."""
        found: dict[str, bytes] = {}
        suffix = self.config.lock_suffix
        with self._tree_lock:  # tree
            pending: builtins.list[tuple[tuple[str, ...], Dir]] = [((), self._root)]
            while pending:
                below, node = pending.pop()
                for name, child in node.entries.items():
                    if is_hidden(name, suffix):
                        continue
                    if isinstance(child, Dir):
                        pending.append(((*below, name), child))
                    else:
                        found[join((*below, name))] = child.data
        return dict(sorted(found.items()))

    # ------------------------------------------------------------ the tree

    def _parent(self, parts: tuple[str, ...], operation: str) -> Dir:
        """The directory holding ``parts[-1]`` (lock held); NOT_FOUND/INVALID on the way."""
        node = self._root
        for index, part in enumerate(parts[:-1]):
            child = node.entries.get(part)
            if child is None:
                fail(operation, join(parts[: index + 1]), errno.ENOENT)
            if isinstance(child, File):
                fail(operation, join(parts[: index + 1]), errno.ENOTDIR)
            node = child
        return node

    def _directory(self, parts: tuple[str, ...], operation: str) -> Dir:
        """The directory ``parts`` itself (lock held)."""
        if not parts:
            return self._root
        node = self._parent(parts, operation).entries.get(parts[-1])
        if node is None:
            fail(operation, join(parts), errno.ENOENT)
        if isinstance(node, File):
            fail(operation, join(parts), errno.ENOTDIR)
        return node

    def _write_parent(self, parts: tuple[str, ...], operation: str) -> Dir:
        """The target's directory, checked as the real one: not the root, not reserved."""
        if not parts:
            raise error(where(operation, "") + "the root is a directory", INVALID)
        self._check_name(parts[-1], parts, operation)
        return self._parent(parts, operation)

    def _writable(self, path: Any, operation: str) -> tuple[str, ...]:
        if self.config.read_only:
            raise error(f"file: {operation}: the connector is read-only", INVALID)
        parts = split(path, operation)
        if parts:
            self._check_name(parts[-1], parts, operation)
        return parts

    def _check_name(self, name: str, parts: tuple[str, ...], operation: str) -> None:
        if is_hidden(name, self.config.lock_suffix):
            raise error(
                where(operation, join(parts))
                + "the name is reserved for the connector's lock and temporary files",
                INVALID,
            )

    def _check_size(self, operation: str, parts: tuple[str, ...], size: int) -> None:
        limit = self.config.max_file_size
        if limit is not None and size > limit:
            raise _too_large(operation, join(parts), limit)

    def _file_for_read(self, parts: tuple[str, ...], operation: str) -> bytes:
        """The bytes of the file at ``parts`` (lock held), as ``open(O_RDONLY)`` would find it."""
        if not parts:
            raise error(where(operation, "") + "the root is a directory", INVALID)
        node = self._parent(parts, operation).entries.get(parts[-1])
        path = join(parts)
        if node is None:
            fail(operation, path, errno.ENOENT)
        if isinstance(node, Dir):
            if operation == "read":
                fail(operation, path, errno.EISDIR)
            if operation == "copy":
                raise error(where(operation, path) + "is not a regular file", INVALID)
            raise error(where(operation, path) + "is a directory", INVALID)
        limit = self.config.max_file_size
        if limit is not None and len(node.data) > limit:
            raise _too_large(operation, path, limit)
        return node.data

    def _put(self, parts: tuple[str, ...], data: bytes, overwrite: bool, operation: str) -> None:
        """Put a file in place as an atomic rename (or link, without ``overwrite``) would."""
        with self._tree_lock:  # tree
            directory = self._parent(parts, operation)
            name, path = parts[-1], join(parts)
            existing = directory.entries.get(name)
            if existing is not None and not overwrite:
                fail(operation, path, errno.EEXIST, write=True)
            if isinstance(existing, Dir):
                fail(operation, path, errno.EISDIR, write=True)
            directory.entries[name] = File(data)

    # ------------------------------------------------------------------ reads

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """Return the whole content of the file at ``path``.

        Raises:
            ConnectorError: NOT_FOUND, PERMISSION_DENIED (sandbox),
                INVALID_REQUEST (a directory), PAYLOAD_TOO_LARGE, or a fault.
        """
        parts = split(path, "read")

        def body(_: Mount) -> bytes:
            self._faults.check("read_bytes")
            with self._tree_lock:  # tree
                return self._file_for_read(parts, "read")

        return self._run(body, idempotent=True, description="read")

    def read_text(
        self, path: str | os.PathLike[str], encoding: str = "utf-8", errors: str = "strict"
    ) -> str:
        """Return the file at ``path`` decoded with ``encoding``.

        Raises:
            ConnectorError: As ``read_bytes``; SERIALIZATION_ERROR when the
                content does not decode; INVALID_REQUEST for an unknown encoding.
        """
        data = self.read_bytes(path)
        return _decode(data, encoding, errors, join(split(path, "read")))

    @overload
    def open(
        self, path: str | os.PathLike[str], mode: Literal["rb"] = "rb", *, overwrite: bool = True
    ) -> FakeFileReader: ...

    @overload
    def open(
        self, path: str | os.PathLike[str], mode: Literal["wb"], *, overwrite: bool = True
    ) -> FakeFileWriter: ...

    def open(
        self, path: str | os.PathLike[str], mode: str = "rb", *, overwrite: bool = True
    ) -> FakeFileReader | FakeFileWriter:
        """Open ``path`` for streaming: ``"rb"`` reads, ``"wb"`` is an atomic write.

        The reader reads the content as it was when opened; the writer's
        bytes become visible at ``close()`` (``overwrite=False`` checked then).

        Raises:
            ConnectorError: INVALID_REQUEST for another mode or a write on a
                read-only connector; as ``read_bytes`` / ``write_bytes``.
        """
        if mode == "rb":
            parts = split(path, "open")

            def reader(_: Mount) -> FakeFileReader:
                self._faults.check("open")
                with self._tree_lock:  # tree
                    data = self._file_for_read(parts, "open")
                return FakeFileReader(data, join(parts), self.config.chunk_size)

            return self._run(reader, idempotent=True, description="open")
        if mode == "wb":
            wparts = self._writable(path, "open")

            def writer(_: Mount) -> FakeFileWriter:
                self._faults.check("open")
                with self._tree_lock:  # tree
                    self._write_parent(wparts, "open")
                return FakeFileWriter(self, wparts, overwrite)

            return self._run(writer, idempotent=True, description="open")
        raise error(f"file: open: mode {mode!r:.10} is not 'rb' or 'wb'", INVALID)

    # ----------------------------------------------------------------- writes

    def write_bytes(
        self, path: str | os.PathLike[str], data: BytesLike, *, overwrite: bool = True
    ) -> None:
        """Atomically replace (or create) the file at ``path`` with ``data``.

        Raises:
            TypeError: ``data`` is not bytes-like.
            ConnectorError: INVALID_REQUEST (read-only connector, reserved
                name, a directory), PERMISSION_DENIED (sandbox), NOT_FOUND
                (missing directory), CONFLICT (``overwrite=False``),
                PAYLOAD_TOO_LARGE, or a fault.
        """
        parts = self._writable(path, "write")
        view = _bytes_view(data)
        self._check_size("write", parts, len(view))
        content = bytes(view)

        def body(_: Mount) -> None:
            self._faults.check("write_bytes")
            with self._tree_lock:  # tree
                self._write_parent(parts, "write")
            self._put(parts, content, overwrite, "write")

        self._run(body, idempotent=overwrite, description="write")

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
            TypeError: ``text`` is not a ``str``.
            ConnectorError: As ``write_bytes``; SERIALIZATION_ERROR when the
                text does not encode; INVALID_REQUEST for an unknown encoding.
        """
        if not isinstance(text, str):
            raise TypeError(f"write_text() needs a str, not {type(text).__name__}")
        parts = self._writable(path, "write")
        self.write_bytes(path, _encode(text, encoding, errors, join(parts)), overwrite=overwrite)

    def append(
        self, path: str | os.PathLike[str], data: BytesLike | str, *, encoding: str = "utf-8"
    ) -> None:
        """Append ``data`` to the file at ``path`` (created if missing).

        Not idempotent, never retried. A partial fault appends a prefix of
        ``data`` and raises with ``maybe_applied``.

        Raises:
            TypeError: ``data`` is neither bytes-like nor ``str``.
            ConnectorError: As ``write_bytes``; PAYLOAD_TOO_LARGE when the
                file would pass ``max_file_size``.
        """
        parts = self._writable(path, "append")
        if isinstance(data, str):
            content = _encode(data, encoding, "strict", join(parts))
        else:
            content = bytes(_bytes_view(data))

        def body(_: Mount) -> None:
            applied = self._faults.check("append", len(content))
            chunk = content if applied is None else content[:applied]
            with self._tree_lock:  # tree
                directory = self._write_parent(parts, "append")
                name, where_ = parts[-1], join(parts)
                node = directory.entries.get(name)
                if isinstance(node, Dir):
                    fail("append", where_, errno.EISDIR, write=True)
                limit = self.config.max_file_size
                size = 0 if node is None else len(node.data)
                if limit is not None and size + len(content) > limit:
                    raise _too_large("append", where_, limit)
                if node is None:
                    directory.entries[name] = File(chunk)
                else:
                    node.data += chunk
                    node.mtime = time.time()
            if applied is not None:
                raise self._faults.partial_error("append", applied, len(content))

        self._run(body, idempotent=False, description="append")

    # -------------------------------------------------------- listing, status

    def list(
        self, path: str | os.PathLike[str] = ".", pattern: str = "*", recursive: bool = False
    ) -> builtins.list[FileInfo]:
        """The entries of directory ``path`` whose name matches ``pattern``, sorted by path.

        As ``FileConnector.list``: ``fnmatch`` on the name (or the relative
        path when the pattern holds a ``/``); lock sidecars never listed.

        Raises:
            TypeError: ``pattern`` is not a ``str``.
            ConnectorError: NOT_FOUND, INVALID_REQUEST (not a directory),
                PERMISSION_DENIED (sandbox), or a fault.
        """
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a str, not {type(pattern).__name__}")
        parts = split(path, "list")
        by_path = "/" in pattern
        suffix = self.config.lock_suffix

        def body(_: Mount) -> builtins.list[FileInfo]:
            self._faults.check("list")
            found: builtins.list[FileInfo] = []
            with self._tree_lock:  # tree
                pending: builtins.list[tuple[tuple[str, ...], Dir]] = [
                    ((), self._directory(parts, "list"))
                ]
                while pending:
                    below, node = pending.pop()
                    for name, child in node.entries.items():
                        if is_hidden(name, suffix):
                            continue
                        rel = (*below, name)
                        subject = join(rel) if by_path else name
                        if fnmatch.fnmatchcase(subject, pattern):
                            found.append(self._info((*parts, *rel), child))
                        if recursive and isinstance(child, Dir):
                            pending.append((rel, child))
            found.sort(key=lambda info: info.path)
            return found

        return self._run(body, idempotent=True, description="list")

    def query(
        self, pattern: str = "*", *, path: str | os.PathLike[str] = ".", recursive: bool = True
    ) -> builtins.list[FileInfo]:
        """The toolkit's read verb: ``list(path, pattern, recursive=True)``."""
        return self.list(path, pattern, recursive)

    def _info(self, parts: tuple[str, ...], node: Node) -> FileInfo:
        is_dir = isinstance(node, Dir)
        return FileInfo(
            path=join(parts),
            name=parts[-1] if parts else "",
            size=4096 if isinstance(node, Dir) else len(node.data),
            is_file=not is_dir,
            is_dir=is_dir,
            is_symlink=False,
            mtime=node.mtime,
            mode=self.config.dir_mode if is_dir else self.config.file_mode,
        )

    def stat(self, path: str | os.PathLike[str]) -> FileInfo:
        """What is at ``path``.

        Raises:
            ConnectorError: NOT_FOUND, PERMISSION_DENIED (sandbox), or a fault.
        """
        parts = split(path, "stat")

        def body(_: Mount) -> FileInfo:
            self._faults.check("stat")
            with self._tree_lock:  # tree
                if not parts:
                    return self._info((), self._root)
                node = self._parent(parts, "stat").entries.get(parts[-1])
                if is_hidden(parts[-1], self.config.lock_suffix):
                    raise error(where("stat", join(parts)) + "No such file or directory", NOT_FOUND)
                if node is None:
                    fail("stat", join(parts), errno.ENOENT)
                return self._info(parts, node)

        return self._run(body, idempotent=True, description="stat")

    def exists(self, path: str | os.PathLike[str]) -> bool:
        """True if something exists at ``path``; False if it (or a directory on the way) does not.

        Raises:
            ConnectorError: PERMISSION_DENIED for a path the sandbox refuses.
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
                for a directory or on a read-only connector; or a fault.
        """
        parts = self._writable(path, "delete")

        def body(_: Mount) -> None:
            self._faults.check("delete")
            with self._tree_lock:  # tree
                try:
                    directory = self._write_parent(parts, "delete")
                except ConnectorError as err:
                    if missing_ok and err.details.get("errno") == "ENOENT":
                        return
                    raise
                where_ = join(parts)
                node = directory.entries.get(parts[-1])
                if node is None:
                    if missing_ok:
                        return
                    raise error(where("delete", where_) + "No such file or directory", NOT_FOUND)
                if isinstance(node, Dir):
                    raise error(where("delete", where_) + "is a directory (use rmdir)", INVALID)
                del directory.entries[parts[-1]]

        self._run(body, idempotent=missing_ok, description="delete")

    def move(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        overwrite: bool = True,
    ) -> None:
        """Rename ``src`` to ``dst`` atomically (files or directories), as ``rename(2)`` would.

        Raises:
            ConnectorError: NOT_FOUND, CONFLICT (``overwrite=False``, or a
                non-empty directory in the way), INVALID_REQUEST, or a fault.
        """
        src_parts = self._writable(src, "move")
        dst_parts = self._writable(dst, "move")

        def body(_: Mount) -> None:
            self._faults.check("move")
            with self._tree_lock:  # tree
                self._move(src_parts, dst_parts, overwrite)

        self._run(body, idempotent=False, description="move")

    def _move(self, src: tuple[str, ...], dst: tuple[str, ...], overwrite: bool) -> None:
        source = self._write_parent(src, "move")
        target = self._write_parent(dst, "move")
        path = join(src)
        node = source.entries.get(src[-1])
        if node is None:
            fail("move", path, errno.ENOENT, write=True)
        existing = target.entries.get(dst[-1])
        if not overwrite and existing is not None:
            raise error(where("move", join(dst)) + "already exists", CONFLICT)
        if existing is node:
            return  # rename to itself: nothing to do
        if isinstance(node, Dir):
            if dst[: len(src)] == src:
                fail("move", path, errno.EINVAL, write=True)  # into itself
            if isinstance(existing, File):
                fail("move", path, errno.ENOTDIR, write=True)
            if isinstance(existing, Dir) and existing.entries:
                fail("move", path, errno.ENOTEMPTY, write=True)
        elif isinstance(existing, Dir):
            fail("move", path, errno.EISDIR, write=True)
        del source.entries[src[-1]]
        target.entries[dst[-1]] = node

    def copy(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        overwrite: bool = True,
    ) -> None:
        """Copy the file ``src`` to ``dst`` as one atomic write.

        Raises:
            ConnectorError: As ``read_bytes`` for ``src`` and ``write_bytes``
                for ``dst``; or a fault.
        """
        src_parts = split(src, "copy")
        dst_parts = self._writable(dst, "copy")

        def body(_: Mount) -> None:
            self._faults.check("copy")
            with self._tree_lock:  # tree
                data = self._file_for_read(src_parts, "copy")
                self._write_parent(dst_parts, "copy")
            self._put(dst_parts, data, overwrite, "write")

        self._run(body, idempotent=overwrite, description="copy")

    def mkdir(
        self, path: str | os.PathLike[str], *, parents: bool = False, exist_ok: bool = False
    ) -> None:
        """Create the directory ``path`` (and the missing ones above it with ``parents``).

        Raises:
            ConnectorError: CONFLICT when it exists (unless ``exist_ok`` and
                it is a directory), NOT_FOUND for a missing parent, or a fault.
        """
        parts = self._writable(path, "mkdir")
        if not parts:
            if exist_ok:
                return
            raise error(where("mkdir", "") + "the root exists", CONFLICT)

        def body(_: Mount) -> None:
            self._faults.check("mkdir")
            steps = range(1, len(parts) + 1) if parents else (len(parts),)
            with self._tree_lock:  # tree
                for end in steps:
                    last = end == len(parts)
                    prefix = parts[:end]
                    directory = self._write_parent(prefix, "mkdir")
                    existing = directory.entries.get(prefix[-1])
                    if existing is not None:
                        if (exist_ok or not last) and isinstance(existing, Dir):
                            continue
                        raise error(where("mkdir", join(prefix)) + "already exists", CONFLICT)
                    directory.entries[prefix[-1]] = Dir()

        self._run(body, idempotent=exist_ok, description="mkdir")

    def rmdir(self, path: str | os.PathLike[str], *, missing_ok: bool = False) -> None:
        """Remove the empty directory ``path``.

        Raises:
            ConnectorError: CONFLICT when it is not empty (lock sidecars
                count), NOT_FOUND unless ``missing_ok``, INVALID_REQUEST for
                the root or a file; or a fault.
        """
        parts = self._writable(path, "rmdir")
        if not parts:
            raise error(where("rmdir", "") + "the root cannot be removed", INVALID)

        def body(_: Mount) -> None:
            self._faults.check("rmdir")
            with self._tree_lock:  # tree
                try:
                    directory = self._write_parent(parts, "rmdir")
                except ConnectorError as err:
                    if missing_ok and err.details.get("errno") == "ENOENT":
                        return
                    raise
                where_ = join(parts)
                node = directory.entries.get(parts[-1])
                if node is None:
                    if missing_ok:
                        return
                    raise error(where("rmdir", where_) + "No such file or directory", NOT_FOUND)
                if isinstance(node, File):
                    fail("rmdir", where_, errno.ENOTDIR, write=True)
                if node.entries:
                    raise error(
                        where("rmdir", where_)
                        + "directory not empty (hidden lock sidecars and temporary files count)",
                        CONFLICT,
                    )
                del directory.entries[parts[-1]]

        self._run(body, idempotent=missing_ok, description="rmdir")

    # ------------------------------------------------------------ coordination

    def lock(
        self,
        path: str | os.PathLike[str],
        timeout: float | None = None,
        shared: bool = False,
    ) -> FakeFileLock:
        """Take an advisory lock on ``path`` (held when this returns); use it in ``with``.

        Excludes other threads (a shared lock only excludes exclusive ones);
        not reentrant, as the real one. ``path`` itself need not exist, its
        directory must.

        Args:
            path: What to lock, relative to the root.
            timeout: Seconds to wait; ``None`` uses ``config.lock_timeout``;
                ``0`` tries once; ``math.inf`` waits as long as it takes.
            shared: A shared (read) lock instead of an exclusive one.

        Raises:
            ConnectorError: LOCK_TIMEOUT (transient) when not granted in
                time; NOT_FOUND for a missing directory (or, read-only, a
                missing sidecar); or a fault.
        """
        wait = self.config.lock_timeout if timeout is None else _timeout(timeout)
        parts = split(path, "lock")
        if not parts:
            raise error(
                where("lock", "") + "the root cannot be locked (lock a name in it)", INVALID
            )

        def body(_: Mount) -> FakeFileLock:
            self._faults.check("lock")
            sidecar = parts[-1] + self.config.lock_suffix
            with self._tree_lock:  # tree
                directory = self._write_parent(parts, "lock")
                if sidecar not in directory.entries:
                    if self.config.read_only:
                        fail("lock", join(parts), errno.ENOENT, write=True)
                    directory.entries[sidecar] = File(b"")
            held = FakeFileLock(self, parts, shared=shared, timeout=wait)
            return held.acquire()

        return self._run(body, idempotent=True, retry=_NO_RETRY, description="lock")

    def _take(self, parts: tuple[str, ...], shared: bool, timeout: float) -> bool:
        """Wait (no connector lock held) until the lock on ``parts`` is ours, or time runs out."""
        deadline = time.monotonic() + timeout if math.isfinite(timeout) else math.inf
        with self._locks_changed:  # held locks
            while True:
                counts = self._held.setdefault(parts, [0, 0])
                free = counts[0] == 0 and (shared or counts[1] == 0)
                if free:
                    counts[1 if shared else 0] += 1
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._locks_changed.wait(None if remaining == math.inf else remaining)

    def _untake(self, parts: tuple[str, ...], shared: bool) -> None:
        with self._locks_changed:  # held locks
            counts = self._held.get(parts)
            if counts is None:
                return  # dropped at fork
            counts[1 if shared else 0] -= 1
            if counts == [0, 0]:
                del self._held[parts]
            self._locks_changed.notify_all()

    def transaction(self, *, overwrite: bool = True) -> FakeFileTransaction:
        """Group writes that become visible together, at the end of a ``with`` block.

        Raises:
            ConnectorError: INVALID_REQUEST on a read-only connector.
        """
        if self.config.read_only:
            raise error("file: transaction: the connector is read-only", INVALID)
        return FakeFileTransaction(self, overwrite=overwrite)

    def clean_orphans(self, path: str | os.PathLike[str] = ".") -> int:
        """Remove temporary files crashed writers left in ``path``: the fake has none (0).

        Raises:
            ConnectorError: INVALID_REQUEST on a read-only connector; as ``list``.
        """
        parts = self._writable(path, "clean")

        def body(_: Mount) -> int:
            self._faults.check("clean_orphans")
            with self._tree_lock:  # tree
                self._directory(parts, "clean")
            return 0

        return self._run(body, idempotent=True, description="clean")

    def _describe(self) -> str:
        return self.config.connection_string()
