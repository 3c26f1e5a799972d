"""Resolve sandboxed paths with directory descriptors walked from the root.

Every path is opened one component at a time, each relative to the
descriptor of the directory before it, with ``O_NOFOLLOW | O_DIRECTORY``:
no component is ever looked up by a full path, so a directory swapped for a
symlink between a check and a use cannot redirect the walk (the open of the
swapped component fails, it is not followed). A symlink met on the way is
refused, or, with ``follow_symlinks``, its target is read (``readlinkat``),
joined to the components walked so far, normalised lexically (each
component walked so far is a real directory, so ``..`` is its real parent)
and walked again from the root: a target that climbs above the root, or an
absolute one outside it, is refused.

Where the kernel has ``openat2`` (``beneath.py``), a path of several
components is first tried in one ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``
call, which gives the same guarantee; only when it fails (a symlink, a
missing component, any error) is the path walked as above, so every
refusal and every error message comes from the walk.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

from dictamesh_connectors.file import beneath
from dictamesh_connectors.file.errors import DENIED, INVALID, error, translate, where
from dictamesh_connectors.file.paths import join

__all__ = ["DIR_FLAGS", "FILE_FLAGS", "MAX_SYMLINKS", "Parent", "Sandbox"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
"""How every directory on a walk is opened (readable, so it can be listed and fsynced)."""
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC
"""How a file is opened for reading."""
MAX_SYMLINKS = 40
"""Symlinks followed while resolving one path (the kernel's own limit)."""


class Parent(NamedTuple):
    """The directory holding a path's last component, opened, and that component."""

    fd: int
    """Descriptor of the directory; the root's own when ``owned`` is false."""
    name: str
    """The last component ("" for the root itself)."""
    parts: tuple[str, ...]
    """The path after following symlinks (what messages and ``FileInfo`` show)."""
    owned: bool
    """Whether the caller must close ``fd``."""

    def close(self) -> None:
        """Close ``fd`` if it is not the root's."""
        if self.owned:
            os.close(self.fd)


class Sandbox:
    """Path resolution inside one root directory descriptor.

    Immutable and stateless apart from the root descriptor, so one instance
    serves every thread. It never closes ``root_fd`` (the connector owns it).
    """

    __slots__ = ("beneath", "follow", "root_fd", "root_real")

    def __init__(self, root_fd: int, root_real: str, follow: bool) -> None:
        self.root_fd = root_fd
        self.root_real = root_real
        self.follow = follow
        # One openat2 call per path where the kernel has it (None: walk only).
        self.beneath = beneath.load(root_fd)

    def open_file(self, parts: tuple[str, ...]) -> int:
        """The fast path of a read: open ``parts`` read-only, no symlink anywhere, or -1.

        -1 means "walk it" (``parent()`` + ``follow_final()``): a symlink on
        the way, a missing component, any error. One ``openat`` for a name
        in the root, one ``openat2`` for a deeper path; never raises.
        """
        if len(parts) == 1:
            try:
                return os.open(parts[0], FILE_FLAGS, dir_fd=self.root_fd)
            except OSError:
                return -1
        if not parts or self.beneath is None:
            return -1
        return self.beneath(self.root_fd, os.fsencode("/".join(parts)), False)

    def parent(
        self, parts: tuple[str, ...], operation: str, *, lstat: bool = False, fast: bool = True
    ) -> Parent:
        """Open the directory holding ``parts[-1]``.

        Args:
            parts: The path's components (from ``paths.split``).
            operation: The verb, for messages.
            lstat: Also check the last component: a symlink there is
                refused, or followed (and the result is its target's parent).
            fast: Try ``openat2`` first (off when the caller's own
                ``openat2`` just failed: the walk is what decides then).

        Raises:
            ConnectorError: PERMISSION_DENIED for a refused symlink,
                NOT_FOUND / INVALID_REQUEST for a missing or non-directory
                component on the way.
        """
        if len(parts) == 1 and not lstat:
            return Parent(self.root_fd, parts[0], parts, False)  # in the root: nothing to walk
        hops = 0
        while True:
            fd, owned = self.root_fd, False
            walked: list[str] = []
            restart: tuple[str, ...] | None = None
            if fast and len(parts) > 2 and self.beneath is not None:
                # Two or more directories: one openat2 instead of one openat each.
                fd = self.beneath(self.root_fd, os.fsencode("/".join(parts[:-1])), True)
                if fd >= 0:
                    owned, walked = True, list(parts[:-1])
                else:
                    fd = self.root_fd
            try:
                for index in range(len(walked), len(parts) - 1):
                    part = parts[index]
                    try:
                        child = os.open(part, DIR_FLAGS, dir_fd=fd)
                    except OSError as exc:
                        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                            with translate(operation, join((*walked, part))):
                                raise
                        if not self._is_link(fd, part):
                            with translate(operation, join((*walked, part))):
                                raise
                        restart = self._expand(
                            fd, part, walked, parts[index + 1 :], operation, hops
                        )
                        break
                    if owned:
                        os.close(fd)
                    fd, owned = child, True
                    walked.append(part)
                else:
                    name = parts[-1] if parts else ""
                    if lstat and name and self._is_link(fd, name, operation, parts):
                        restart = self._expand(fd, name, walked, (), operation, hops)
                    else:
                        result = Parent(fd, name, parts, owned)
                        owned = False  # handed to the caller
                        return result
            finally:
                if owned:
                    os.close(fd)
            parts, hops = restart, hops + 1

    def follow_final(self, parent: Parent, operation: str, hops: int = 0) -> tuple[str, ...]:
        """The components of the symlink ``parent.name`` points to (or PERMISSION_DENIED).

        For verbs that open the last component with ``O_NOFOLLOW`` and met a
        symlink (``ELOOP``): they call ``parent()`` again on what this returns.
        """
        return self._expand(parent.fd, parent.name, list(parent.parts[:-1]), (), operation, hops)

    def directory(self, parts: tuple[str, ...], operation: str) -> Parent:
        """Open the directory ``parts`` itself (the root for ``()``) for listing or fsync."""
        if not parts:
            return Parent(self.root_fd, "", (), False)
        if len(parts) > 1 and self.beneath is not None:
            fd = self.beneath(self.root_fd, os.fsencode("/".join(parts)), True)
            if fd >= 0:
                return Parent(fd, parts[-1], parts, True)
        hops = 0
        while True:
            parent = self.parent(parts, operation, lstat=False)
            try:
                try:
                    fd = os.open(parent.name, DIR_FLAGS, dir_fd=parent.fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP) and self._is_link(
                        parent.fd, parent.name
                    ):
                        parts = self.follow_final(parent, operation, hops)
                        hops += 1
                        continue
                    with translate(operation, join(parent.parts)):
                        raise
                return Parent(fd, parent.name, parent.parts, True)
            finally:
                parent.close()

    # ----------------------------------------------------------------- links

    def _is_link(
        self,
        dir_fd: int,
        name: str,
        operation: str | None = None,
        parts: tuple[str, ...] = (),
    ) -> bool:
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return False
        except OSError:
            if operation is None:
                return False
            with translate(operation, join(parts)):
                raise
        return stat.S_ISLNK(st.st_mode)

    def _expand(
        self,
        dir_fd: int,
        name: str,
        walked: list[str],
        rest: tuple[str, ...],
        operation: str,
        hops: int,
    ) -> tuple[str, ...]:
        shown = join((*walked, name))
        if not self.follow:
            raise error(
                where(operation, shown) + "symlinks are refused (follow_symlinks is off)", DENIED
            )
        if hops >= MAX_SYMLINKS:
            raise error(where(operation, shown) + "too many levels of symbolic links", INVALID)
        with translate(operation, shown):
            target = os.readlink(name, dir_fd=dir_fd)
        if target.startswith("/"):
            root = self.root_real.rstrip("/")
            if target != root and not target.startswith(root + "/"):
                raise error(where(operation, shown) + "symlink leads outside the root", DENIED)
            base: list[str] = []
            target = target[len(root) :]
        else:
            base = list(walked)
        for part in (*target.split("/"), *rest):
            if not part or part == ".":
                continue
            if part == "..":
                if not base:
                    raise error(where(operation, shown) + "symlink leads outside the root", DENIED)
                base.pop()
            else:
                base.append(part)
        if not base:
            raise error(where(operation, shown) + "symlink points at the root itself", INVALID)
        return tuple(base)
