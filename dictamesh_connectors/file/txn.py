"""``transaction()``: several writes that become visible together, at the end.

Each write of a transaction goes at once to a hidden temporary file next
to its target (``.dmtmp-*``, fsynced with ``fsync``), so the expensive part
happens before the commit. The commit (``journal.py``):

1. checks what it can before changing anything: ``overwrite=False``
   targets must not exist, staged deletes must find their file;
2. fsyncs the staged files' directories, then writes the commit journal
   (``.dmtxn-*`` in the root, fsynced, renamed into place, root fsynced):
   the commit point;
3. renames every temporary file into place and applies the deletes, in the
   order the writes were made, fsyncs each directory once;
4. removes the journal.

What holds, exactly:

* before the commit point (an exception in the ``with`` block,
  ``rollback()``, a failed check, a crash of the process or the machine):
  nothing is visible; the temporary files are removed (after a crash they
  are orphans, never listed, removed by a later write in their directory
  once ``orphan_age`` old);
* after it, all of it happens: a crash of the process (SIGKILL, power loss
  with ``fsync`` on) during step 3 or 4 leaves the journal, and the next
  connector that opens the root (``connect()``; also every orphan scan of
  a writing connector) finishes the renames and deletes before it serves
  anything;
* during step 3, other readers may see some files new and the rest still
  old, for the microseconds the renames take (a rename is atomic per
  file, there is no atomic rename of several);
* a commit that fails after the commit point (EIO, a full disk at the
  last fsync) raises with ``maybe_applied=True`` and leaves the journal:
  the changes are finished by the next recovery, never half-discarded;
* the one exception: with ``overwrite=False``, a file another writer
  creates between step 1 and its rename is kept, and that one staged file
  is dropped (logged).

With ``fsync=False`` the same holds for a crash of the process, not for a
crash of the machine. No write is visible before the commit, so a
transaction cannot read its own writes.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.file import atomic, journal
from dictamesh_connectors.file.args import check_codec, check_flag
from dictamesh_connectors.file.errors import (
    INVALID,
    NOT_FOUND,
    error,
    translate,
    where,
    wrong_type,
)
from dictamesh_connectors.file.journal import Journal
from dictamesh_connectors.file.paths import join
from dictamesh_connectors.retry import RetryPolicy

if TYPE_CHECKING:
    from dictamesh_connectors.file.atomic import BytesLike
    from dictamesh_connectors.file.connector import FileConnector, _Root

__all__ = ["Transaction"]

_NO_RETRY = RetryPolicy.no_retry()


class _Staged:
    """One pending change: a temporary file to rename, or a file to delete."""

    __slots__ = ("dir_fd", "fd", "missing_ok", "name", "parts", "temp")

    def __init__(
        self,
        dir_fd: int,
        name: str,
        parts: tuple[str, ...],
        temp: str | None,
        missing_ok: bool,
        fd: int = -1,
    ) -> None:
        self.dir_fd = dir_fd
        # The temporary file stays open, under its shared flock, until the
        # commit: orphan cleaners (ours, other processes') leave it alone.
        self.fd = fd
        self.name = name
        self.parts = parts
        self.temp = temp  # None: a delete
        self.missing_ok = missing_ok


class Transaction:
    """Writes made visible together when the ``with`` block ends (see the module docstring).

    Not thread-safe: one transaction belongs to one thread. After
    ``os.fork()`` the child's copy is dead: it neither commits nor discards
    the parent's pending files.

    Example::

        with files.transaction() as tx:
            tx.write_text("out/data.csv", csv_text)
            tx.write_text("out/_SUCCESS", "")
        # both visible now; neither if the block raised
    """

    def __init__(
        self,
        connector: FileConnector,
        *,
        overwrite: bool,
        on_done: Callable[[Transaction], None] | None = None,
    ) -> None:
        self._connector = connector
        self._overwrite = overwrite
        self._staged: list[_Staged] = []
        self._pid = os.getpid()
        self._done = False
        self._on_done = on_done

    @property
    def pending(self) -> list[str]:
        """The paths written or deleted so far, in order."""
        return [join(s.parts) for s in self._staged]

    def _check(self, operation: str) -> None:
        if self._done:
            raise error(f"file: {operation}: the transaction is finished", INVALID)
        if self._pid != os.getpid():
            raise error(
                f"file: {operation}: this transaction belongs to the parent process", INVALID
            )

    def write_bytes(self, path: str | os.PathLike[str], data: BytesLike) -> None:
        """Stage ``data`` for ``path`` (a later write of the same path wins).

        Raises:
            ArgumentTypeError: ``data`` is not bytes-like (also a ``TypeError``).
            ConnectorError: As ``FileConnector.write_bytes``.
        """
        self._check("write")
        connector = self._connector
        parts, view = connector._write_request(path, data)
        staged = connector._run(
            lambda root: self._stage(root, parts, view), idempotent=True, description="write"
        )
        self._replace(staged)

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
            ArgumentTypeError: ``text`` is not a ``str`` (also a ``TypeError``).
            ConnectorError: As ``FileConnector.write_text``.
        """
        from dictamesh_connectors.file.connector import _encode

        if not isinstance(text, str):
            raise wrong_type("write", "text", text, "a str")
        check_codec(encoding, errors, "write")
        parts = self._connector._writable(path, "write")
        self.write_bytes(path, _encode(text, encoding, errors, join(parts)))

    def delete(self, path: str | os.PathLike[str], *, missing_ok: bool = False) -> None:
        """Stage the removal of the file ``path`` (checked at commit).

        Raises:
            ConnectorError: As ``FileConnector.delete`` (NOT_FOUND at commit).
        """
        self._check("delete")
        check_flag(missing_ok, "missing_ok", "delete")
        connector = self._connector
        parts = connector._writable(path, "delete")

        def resolve(root: _Root) -> _Staged:
            parent = connector._write_parent(root, parts, "delete")
            return _Staged(_own_fd(parent), parent.name, parent.parts, None, missing_ok)

        self._replace(connector._run(resolve, idempotent=True, description="delete"))

    def _stage(self, root: _Root, parts: tuple[str, ...], data: memoryview) -> _Staged:
        connector = self._connector
        parent = connector._write_parent(root, parts, "write")
        dir_fd = _own_fd(parent)
        config = connector.config
        path = join(parent.parts)
        try:
            with translate("write", path, write=True):
                fd, temp = atomic.create_temp(dir_fd, config.file_mode)
                try:
                    atomic.write_all(fd, data)
                    if config.fsync:
                        os.fsync(fd)
                except BaseException:
                    atomic.discard_temp(dir_fd, temp)
                    os.close(fd)
                    raise
        except BaseException:
            os.close(dir_fd)
            raise
        return _Staged(dir_fd, parent.name, parent.parts, temp, False, fd)

    def _replace(self, staged: _Staged) -> None:
        for index, earlier in enumerate(self._staged):
            if earlier.parts == staged.parts:
                _discard(earlier)
                del self._staged[index]
                break
        self._staged.append(staged)

    def commit(self) -> None:
        """Rename every staged file into place (in order), apply the deletes, fsync.

        Raises:
            ConnectorError: The first failure; ``maybe_applied`` when some
                changes were already made (the rest are discarded).
        """
        self._check("commit")
        self._done = True
        try:
            self._connector._run(
                self._commit, idempotent=False, retry=_NO_RETRY, description="commit"
            )
        finally:
            self._finish()

    def _commit(self, root: _Root) -> None:
        staged = self._staged
        if not staged:
            return
        config = self._connector.config
        overwrite = self._overwrite
        # Before the commit point: a failure here has changed nothing.
        changes = self._planned(overwrite)
        with translate("commit", join(staged[0].parts), write=True):
            directories = _distinct_directories(staged)
            if config.fsync:
                for dir_fd in directories:
                    atomic.fsync_dir(dir_fd)  # the staged files' names are durable
            record = Journal.write(
                root.fd,
                [op for _, op in changes],
                overwrite=overwrite,
                fsync=config.fsync,
                mode=config.file_mode,
            )
        # Committed: every change is made now, or by recover() after a crash.
        try:
            for each, op in changes:
                with translate("commit", join(each.parts), write=True, maybe_applied=True):
                    journal.apply(each.dir_fd, op, overwrite=overwrite)
                each.temp = None
            if config.fsync:
                with translate("commit", join(staged[0].parts), write=True, maybe_applied=True):
                    for dir_fd in directories:
                        atomic.fsync_dir(dir_fd)
        except ConnectorError as err:
            # The journal stays, and the staged files it names: the next
            # connect() of this root (or an orphan scan) finishes the commit.
            for each in staged:
                each.temp = None
            record.release()
            err.maybe_applied = True
            raise
        except BaseException:
            for each in staged:
                each.temp = None
            record.release()
            raise
        record.remove()

    def _planned(self, overwrite: bool) -> list[tuple[_Staged, dict[str, Any]]]:
        # The journal entries, checked against the files as they are now.
        changes: list[tuple[_Staged, dict[str, Any]]] = []
        for each in self._staged:
            directory = each.parts[:-1]
            if each.temp is not None:
                if not overwrite:
                    atomic.refuse_existing(_parent(each), "commit")
                changes.append((each, journal.rename_op(directory, each.temp, each.name)))
                continue
            try:
                st = os.stat(each.name, dir_fd=each.dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                if each.missing_ok:
                    continue
                raise error(
                    where("commit", join(each.parts)) + "No such file or directory", NOT_FOUND
                ) from None
            except OSError:
                with translate("commit", join(each.parts)):
                    raise
            if stat.S_ISDIR(st.st_mode):
                raise error(where("commit", join(each.parts)) + "is a directory", INVALID)
            changes.append((each, journal.delete_op(directory, each.name, st)))
        return changes

    def rollback(self) -> None:
        """Discard every staged change; nothing becomes visible. Idempotent."""
        if self._done:
            return
        self._done = True
        if self._pid != os.getpid():
            self._forget()
            return
        self._finish()

    def _finish(self) -> None:
        staged, self._staged = self._staged, []
        for each in staged:
            _discard(each)
        if self._on_done is not None:
            callback, self._on_done = self._on_done, None
            callback(self)

    def _forget(self) -> None:
        """In a forked child: close our copies of the descriptors, touch no file."""
        self._done = True
        staged, self._staged = self._staged, []
        for each in staged:
            _close_all(each)
        self._on_done = None

    def __enter__(self) -> Transaction:
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

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid() and not getattr(self, "_done", True):
            self._done = True
            for each in getattr(self, "_staged", []):
                _discard(each)

    def __repr__(self) -> str:
        state = "finished" if self._done else f"{len(self._staged)} pending"
        return f"<Transaction {state}>"


def _own_fd(parent: Any) -> int:
    # The staged change keeps its directory open until the commit.
    return int(parent.fd) if parent.owned else os.dup(parent.fd)


def _parent(staged: _Staged) -> Any:
    from dictamesh_connectors.file.sandbox import Parent

    return Parent(staged.dir_fd, staged.name, staged.parts, False)


def _discard(staged: _Staged) -> None:
    if staged.temp is not None:
        atomic.discard_temp(staged.dir_fd, staged.temp)
        staged.temp = None
    _close_all(staged)


def _close_all(staged: _Staged) -> None:
    for fd in (staged.fd, staged.dir_fd):
        if fd >= 0:
            _close(fd)
    staged.fd = staged.dir_fd = -1


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _distinct_directories(staged: list[_Staged]) -> list[int]:
    # One descriptor per directory (by device and inode), in first-use order.
    seen: set[tuple[int, int]] = set()
    out: list[int] = []
    for each in staged:
        st = os.fstat(each.dir_fd)
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            out.append(each.dir_fd)
    return out
