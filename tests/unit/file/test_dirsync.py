"""Group commit of directory fsyncs (dirsync.py): shared only when it is safe to share.

``os.fsync`` is replaced by a gate the test opens and closes, so every
interleaving below is forced, not hoped for: no sleeps, no timing.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from pathlib import Path

import pytest

from dictamesh_connectors.file import FileConfig, FileConnector, dirsync


class Gate:
    """A fake ``os.fsync``: records each call, blocks until released, may fail."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.calls: list[int] = []
        self.released = 0
        self.fail: set[int] = set()  # call numbers (1-based) that raise EIO

    def __call__(self, fd: int) -> None:
        with self.lock:
            self.calls.append(fd)
            number = len(self.calls)
            self.lock.notify_all()
            while self.released < number:
                self.lock.wait()
        if number in self.fail:
            raise OSError(errno.EIO, "Input/output error")

    def wait_calls(self, count: int) -> None:
        with self.lock:
            while len(self.calls) < count:
                self.lock.wait()

    def release(self, count: int = 1) -> None:
        with self.lock:
            self.released += count
            self.lock.notify_all()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    fake = Gate()
    monkeypatch.setattr(dirsync.os, "fsync", fake)
    monkeypatch.setattr(dirsync, "enabled", True)
    return fake


@pytest.fixture
def dir_fds(tmp_path: Path):
    opened: list[int] = []

    def open_dir(name: str = "d") -> int:
        (tmp_path / name).mkdir(exist_ok=True)
        fd = os.open(tmp_path / name, os.O_RDONLY | os.O_DIRECTORY)
        opened.append(fd)
        return fd

    yield open_dir
    for fd in opened:
        os.close(fd)


def start(fd: int, results: dict[str, object], name: str) -> threading.Thread:
    def run() -> None:
        try:
            dirsync.fsync_dir(fd)
            results[name] = "ok"
        except OSError as exc:
            results[name] = exc.errno

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def waiting(count: int) -> None:
    """Until ``count`` threads wait for another's fsync (polled state, not a sleep-and-hope)."""
    while True:
        with dirsync._registry.lock:
            now = sum(d.waiting for d in dirsync._registry.directories.values())
        if now >= count:
            return
        threading.Event().wait(0.001)


def test_a_writer_never_relies_on_an_fsync_that_started_before_it(gate, dir_fds):
    fd = dir_fds()
    results: dict[str, object] = {}
    a = start(fd, results, "a")  # leads fsync #1
    gate.wait_calls(1)
    b = start(fd, results, "b")  # arrives while #1 runs: #1 may predate its rename
    c = start(fd, results, "c")
    waiting(2)
    gate.release()  # #1 done: a returns; b and c must not
    a.join()
    assert results == {"a": "ok"}
    gate.wait_calls(2)  # one of b, c leads #2 for both
    assert results == {"a": "ok"}  # neither returned before #2, started after them, finished
    gate.release()
    b.join()
    c.join()
    assert results == {"a": "ok", "b": "ok", "c": "ok"}
    assert len(gate.calls) == 2  # three writers, two fsyncs
    assert dirsync._registry.directories == {}  # nothing kept once nobody syncs


def test_a_failed_shared_fsync_fails_every_writer_that_relied_on_it(gate, dir_fds):
    fd = dir_fds()
    gate.fail = {2}
    results: dict[str, object] = {}
    a = start(fd, results, "a")
    gate.wait_calls(1)
    followers = [start(fd, results, name) for name in ("b", "c", "d")]
    waiting(3)
    gate.release()
    a.join()
    gate.wait_calls(2)
    gate.release()
    for thread in followers:
        thread.join()
    assert results == {"a": "ok", "b": errno.EIO, "c": errno.EIO, "d": errno.EIO}
    assert len(gate.calls) == 2
    results.clear()
    e = start(fd, results, "e")  # the next one makes its own, successful, fsync
    gate.wait_calls(3)
    gate.release()
    e.join()
    assert results == {"e": "ok"}


def test_different_directories_never_share(gate, dir_fds):
    one, two = dir_fds("one"), dir_fds("two")
    results: dict[str, object] = {}
    a = start(one, results, "a")
    gate.wait_calls(1)
    b = start(two, results, "b")  # another directory: its own fsync, at once
    gate.wait_calls(2)
    gate.release(2)
    a.join()
    b.join()
    assert results == {"a": "ok", "b": "ok"}
    assert sorted(gate.calls) == sorted([one, two])


def test_alone_a_writer_makes_its_own_fsync(gate, dir_fds):
    fd = dir_fds()
    gate.release(2)
    dirsync.fsync_dir(fd)
    dirsync.fsync_dir(fd)
    assert gate.calls == [fd, fd]


def test_sharing_off_fsyncs_every_time(gate, dir_fds, monkeypatch):
    monkeypatch.setattr(dirsync, "enabled", False)
    fd = dir_fds()
    gate.release(1)
    dirsync.fsync_dir(fd)
    assert gate.calls == [fd]
    assert dirsync._registry.directories == {}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_wait_for_the_parents_fsync(gate, dir_fds):
    fd = dir_fds()
    results: dict[str, object] = {}
    a = start(fd, results, "a")
    gate.wait_calls(1)  # the parent's thread is inside its fsync now
    pid = os.fork()
    if pid == 0:  # the child: that thread does not exist here
        code = 1
        try:
            signal.alarm(60)  # a hang (waiting for the parent's thread) fails, never blocks
            dirsync.os.fsync = os.fdatasync  # a real call: the gate's waiter is the parent's
            dirsync.fsync_dir(fd)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    gate.release()
    a.join()
    assert os.waitstatus_to_exitcode(status) == 0
    assert results == {"a": "ok"}


def test_concurrent_connector_writes_all_land(tmp_path: Path):
    # The real thing, 16 threads in one directory: every write lands whole.
    files = FileConnector(FileConfig(root=str(tmp_path), create_root=True))
    files.connect()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                files.write_bytes(f"w{n}-{i % 3}", b"%d:%d" % (n, i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files.disconnect()
    assert errors == []
    for n in range(16):
        for k in range(3):
            last = max(i for i in range(20) if i % 3 == k)
            assert (tmp_path / f"w{n}-{k}").read_bytes() == b"%d:%d" % (n, last)
    assert dirsync._registry.directories == {}
