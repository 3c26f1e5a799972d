"""Group commit of directory fsyncs: writers renaming into one directory share one fsync.

A durable atomic write ends with an ``fsync`` of its directory, so that
its rename is on disk before the write returns. An ``fsync`` makes durable
every change made to the file (here: the directory's entries) *before it
started*, whoever made it and through whichever descriptor (POSIX: it acts
on "the file referenced by" the descriptor, not on the descriptor). So a
writer whose rename returned before some directory fsync *started* may rely
on that fsync, and need not make its own.

``fsync_dir(fd)`` does exactly that, per directory (by device and inode),
within one process: a writer arriving while another thread's fsync of the
same directory is running waits for the *next* one (the running one may
have started before its rename); the first waiter to find none running
starts it, for itself and for every writer that arrived before it started.
Under concurrency, N writers finishing together make 1 to 2 directory
fsyncs instead of N, and none of them returns before an fsync that started
after its own rename has succeeded. Alone, a writer makes its own, as
before (about 1 us more: one ``fstat``, one uncontended lock).

A failed shared fsync fails every writer that relied on it (each gets its
own ``OSError`` with the same errno): the kernel reports a writeback error
once per file description, so the writers that did not call ``fsync``
themselves would otherwise never hear of it.

Nothing here depends on a file system's behaviour beyond POSIX ``fsync``:
the ordering comes from our own lock (a writer's rename returned before it
took the lock; the fsync it relies on is started after the leader took the
same lock). ``enabled = False`` turns the sharing off (each writer fsyncs
its directory itself), for comparison in benchmarks.
"""

from __future__ import annotations

import errno
import os
import threading

from dictamesh_connectors import _fork

__all__ = ["enabled", "fsync_dir"]

enabled = True
"""Share directory fsyncs between the threads of this process (see the module docstring)."""

_FAILURES_KEPT = 64


class _Directory:
    """The fsync state of one directory: fsyncs are numbered and run one at a time."""

    __slots__ = ("cond", "done", "failures", "running", "started", "users", "waiting")

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())  # reset with the registry at fork
        self.started = 0  # fsyncs started so far (the last one's number)
        self.done = 0  # the number of the last fsync finished
        self.running = False
        self.failures: dict[int, tuple[int, str]] = {}  # fsync number -> (errno, strerror)
        self.users = 0  # writers in sync() now (guarded by the registry lock)
        self.waiting = 0  # writers waiting for another's fsync now

    def sync(self, fd: int) -> None:
        cond = self.cond
        with cond:
            # The first fsync to start from now on covers our rename (it
            # returned before we took the lock); one running now may not.
            need = self.started + 1
            while self.done < need and self.running:
                self.waiting += 1
                try:
                    cond.wait()
                finally:
                    self.waiting -= 1
            if self.done >= need:
                failed = self.failures.get(need)
                if failed is None:
                    return
                raise OSError(failed[0], failed[1])
            # None running, ours not done: start it, for every writer waiting.
            self.running = True
            self.started += 1
            number = self.started
        failure: tuple[int, str] | None = None
        try:
            os.fsync(fd)
        except OSError as exc:
            failure = (exc.errno or errno.EIO, exc.strerror or "fsync failed")
            raise
        except BaseException:  # interrupted (KeyboardInterrupt): not a success for anyone
            failure = (errno.EINTR, "the shared directory fsync was interrupted")
            raise
        finally:
            with cond:
                self.running = False
                self.done = number
                if failure is not None:
                    self.failures[number] = failure
                    if len(self.failures) > _FAILURES_KEPT:
                        del self.failures[min(self.failures)]
                cond.notify_all()


class _Registry:
    """Directories being fsynced now, by (device, inode); emptied in a forked child."""

    def __init__(self) -> None:
        self.lock = _fork.create_lock()
        self.directories: dict[tuple[int, int], _Directory] = {}
        _fork.register_child_reset(self)

    def _after_fork_in_child(self) -> None:
        # The parent's fsyncing threads do not exist here: nobody to wait for.
        self.directories = {}


_registry = _Registry()


def fsync_dir(fd: int) -> None:
    """Make the directory ``fd``'s entries durable: an fsync started after this call began.

    Shares the fsync with other threads of this process that are syncing
    the same directory (see the module docstring).

    Raises:
        OSError: The fsync this call relied on failed (its errno).
    """
    if not enabled:
        os.fsync(fd)
        return
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    registry = _registry
    with registry.lock:
        directory = registry.directories.get(key)
        if directory is None:
            directory = registry.directories[key] = _Directory()
        directory.users += 1
    try:
        directory.sync(fd)
    finally:
        with registry.lock:
            directory.users -= 1
            if directory.users == 0 and registry.directories.get(key) is directory:
                del registry.directories[key]
