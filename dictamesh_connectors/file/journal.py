"""Commit journals: what makes ``transaction()`` all-or-nothing across a crash.

A transaction's writes are staged as hidden temporary files first. Its
commit then writes one journal, ``.dmtxn-<32 hex digits>`` in the root
directory, listing every rename and delete to make; the journal is
written under a temporary name, fsynced and renamed into place (and the
root directory fsynced), so it exists whole or not at all. That rename is
the commit point:

* a crash before it leaves nothing visible (the staged files are orphans,
  removed later like any crashed writer's);
* a crash after it is rolled forward by ``recover()``: the next connector
  that opens the root (``connect()``, and each orphan scan) finishes the
  renames and deletes the journal lists, then removes the journal.

Replaying is idempotent: a staged file that is no longer there was renamed
already; a file to delete is removed only while it is still the very file
the commit saw (same inode and ctime), never a newer one that took its name.

A live committer holds an exclusive ``flock`` on its journal from the
moment it exists until after it is removed, so ``recover()`` (in any
thread or process) only ever touches the journals of dead committers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.file import atomic
from dictamesh_connectors.file.paths import JOURNAL_PREFIX, TEMP_PREFIX, is_temp, split

if TYPE_CHECKING:
    from dictamesh_connectors.file.sandbox import Sandbox

__all__ = ["Journal", "apply", "delete_op", "is_journal", "recover", "rename_op"]

logger = logging.getLogger(__name__)

VERSION = 1
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class Journal:
    """One committed transaction's journal, held (``flock``) while its changes are applied."""

    __slots__ = ("dir_fd", "fd", "name")

    def __init__(self, dir_fd: int, fd: int, name: str) -> None:
        self.dir_fd = dir_fd
        self.fd = fd
        self.name = name

    @classmethod
    def write(
        cls, root_fd: int, ops: list[dict[str, Any]], *, overwrite: bool, fsync: bool, mode: int
    ) -> Journal:
        """Write the journal of ``ops`` and put it in place: the commit point.

        Raises:
            OSError: Nothing was committed (the temporary journal is removed).
        """
        text = json.dumps({"version": VERSION, "overwrite": overwrite, "ops": ops})
        fd, temp = atomic.create_temp(root_fd, mode)
        name = JOURNAL_PREFIX + temp.removeprefix(TEMP_PREFIX)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # ours alone: recover() leaves it be
            atomic.write_all(fd, text.encode())
            if fsync:
                os.fsync(fd)
            os.rename(temp, name, src_dir_fd=root_fd, dst_dir_fd=root_fd)
        except BaseException:
            atomic.discard_temp(root_fd, temp)
            os.close(fd)
            raise
        journal = cls(root_fd, fd, name)
        if fsync:
            try:
                atomic.fsync_dir(root_fd)
            except BaseException:
                # Not known to be durable: take it back (the caller discards
                # the staged files); a crash before this unlink rolls forward.
                journal.remove()
                raise
        return journal

    def remove(self) -> None:
        """The changes are applied (and durable): remove the journal, then unlock it."""
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.name, dir_fd=self.dir_fd)
        finally:
            self.release()

    def release(self) -> None:
        """Unlock and close, leaving the journal for ``recover()`` to finish."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def rename_op(dir_parts: tuple[str, ...], temp: str, name: str) -> dict[str, Any]:
    """A journal entry: rename ``temp`` to ``name`` in directory ``dir_parts``."""
    return {"dir": list(dir_parts), "temp": temp, "name": name}


def delete_op(dir_parts: tuple[str, ...], name: str, st: os.stat_result) -> dict[str, Any]:
    """A journal entry: remove ``name`` if it is still the file ``st`` describes."""
    return {"dir": list(dir_parts), "delete": name, "ino": st.st_ino, "ctime_ns": st.st_ctime_ns}


def apply(dir_fd: int, op: dict[str, Any], *, overwrite: bool) -> None:
    """Make one journal entry's change in ``dir_fd``; done already is fine.

    Raises:
        OSError: The change could not be made (the journal stays).
    """
    if "temp" in op:
        try:
            atomic.commit_temp(dir_fd, op["temp"], op["name"], overwrite=overwrite)
        except FileNotFoundError:
            pass  # renamed by an earlier attempt
        except FileExistsError:
            # overwrite=False and another writer took the name after the
            # commit's check: that file stays, this one is dropped.
            atomic.discard_temp(dir_fd, op["temp"])
            logger.warning("file: commit: %r appeared meanwhile; kept it", op["name"])
        return
    name = op["delete"]
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return  # deleted by an earlier attempt
    if (st.st_ino, st.st_ctime_ns) == (op["ino"], op["ctime_ns"]):
        os.unlink(name, dir_fd=dir_fd)


def recover(sandbox: Sandbox, *, fsync: bool) -> int:
    """Roll forward the journals dead committers left in the root; return how many.

    A journal still locked belongs to a live commit and is left alone. One
    that cannot be finished (an error) stays for the next attempt.

    Raises:
        OSError: The root could not be listed.
    """
    root_fd = sandbox.root_fd
    with os.scandir(root_fd) as entries:
        names = [e.name for e in entries if is_journal(e.name)]
    done = 0
    for name in names:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC, dir_fd=root_fd)
        except OSError:
            continue  # finished meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its committer is alive
            st = os.fstat(fd)
            try:
                now = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # its committer removed it just before we locked
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(st.st_mode):
                continue
            if _roll_forward(sandbox, fd, name, fsync=fsync):
                done += 1
        except OSError:
            logger.warning("file: recovering the commit %r failed", name, exc_info=True)
        finally:
            os.close(fd)
    return done


def _roll_forward(sandbox: Sandbox, fd: int, name: str, *, fsync: bool) -> bool:
    data = b""
    while chunk := os.read(fd, 1 << 20):
        data += chunk
    try:
        entry = json.loads(data)
        ops = entry["ops"]
        overwrite = bool(entry["overwrite"])
        if entry["version"] != VERSION or not isinstance(ops, list):
            raise ValueError("unknown journal version")
        checked = [_checked(op) for op in ops]
    except (ValueError, KeyError, TypeError, ConnectorError) as exc:
        # Never ours (ours are renamed into place whole): leave it, say so.
        logger.warning("file: ignoring the unreadable commit journal %r: %s", name, exc)
        return False
    directories = _apply_all(sandbox, checked, overwrite=overwrite)
    try:
        if fsync:
            for dir_fd in directories.values():
                atomic.fsync_dir(dir_fd)
        os.unlink(name, dir_fd=sandbox.root_fd)
        if fsync:
            atomic.fsync_dir(sandbox.root_fd)
    finally:
        _close_all(directories.values())
    logger.warning("file: finished a commit interrupted by a crash (%d change(s))", len(checked))
    return True


def _apply_all(
    sandbox: Sandbox, ops: list[tuple[tuple[str, ...], dict[str, Any]]], *, overwrite: bool
) -> dict[tuple[str, ...], int]:
    directories: dict[tuple[str, ...], int] = {}
    try:
        for parts, op in ops:
            dir_fd = directories.get(parts)
            if dir_fd is None:
                try:
                    directory = sandbox.directory(parts, "recover")
                except Exception:
                    # The directory is gone (or refused now): its changes
                    # cannot be made; the rest still are.
                    logger.warning("file: commit: directory %r is gone", "/".join(parts))
                    continue
                dir_fd = directory.fd if directory.owned else os.dup(directory.fd)
                directories[parts] = dir_fd
            apply(dir_fd, op, overwrite=overwrite)
    except BaseException:
        _close_all(directories.values())
        raise
    return directories


def _checked(op: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    # A journal names only directories inside the root and our own temporary files.
    if not isinstance(op, dict) or not isinstance(op.get("dir"), list):
        raise ValueError("malformed entry")
    parts = split("/".join(str(part) for part in op["dir"]), "recover")
    if "temp" in op:
        if not is_temp(str(op["temp"])) or not _plain(op.get("name")):
            raise ValueError("malformed rename")
    elif not _plain(op.get("delete")) or not isinstance(op.get("ino"), int):
        raise ValueError("malformed delete")
    return parts, op


def _plain(name: Any) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\0" not in name
    )


def _close_all(fds: Iterable[int]) -> None:
    for each in list(fds):
        with contextlib.suppress(OSError):
            os.close(each)


def is_journal(name: str) -> bool:
    """True for a commit journal's name."""
    return name.startswith(JOURNAL_PREFIX) and is_temp(name)
