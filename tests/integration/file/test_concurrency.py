"""Many threads and processes share files through one connector: nothing torn, lost or leaked.

Real threads, real ``os.fork()`` (multiprocessing's fork context) and real
``flock``: no mock anywhere.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import threading

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, NotConnectedError
from dictamesh_connectors.file import FileConfig, FileConnector

from .conftest import open_fds

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]

FORK = multiprocessing.get_context("fork")
TARGETS = [f"shared/file-{n}.bin" for n in range(4)]


def content(writer: str, seq: int) -> bytes:
    """A self-checking file: a header, a body of one repeated byte, the body's digest."""
    fill = bytes([random.Random(f"{writer}:{seq}").randrange(256)])
    body = fill * random.Random(seq).randrange(1, 200_000)
    header = f"{writer}:{seq}:{len(body)}:".encode()
    return header + body + hashlib.sha256(body).hexdigest().encode()


def check(data: bytes) -> bool:
    """True for a whole file written by ``content``; False for a torn or mixed one."""
    try:
        _writer, _seq, size, rest = data.split(b":", 3)
        body, digest = rest[: int(size)], rest[int(size) :]
    except ValueError:
        return False
    return (
        len(body) == int(size)
        and len(set(body)) == 1
        and hashlib.sha256(body).hexdigest().encode() == digest
    )


def write_many(files: FileConnector, writer: str, count: int) -> None:
    for seq in range(count):
        files.write_bytes(TARGETS[seq % len(TARGETS)], content(writer, seq))


def process_writer(files: FileConnector, writer: str, count: int) -> None:
    # Runs in a forked child: the connector was inherited through fork.
    write_many(files, writer, count)
    files.disconnect()


def test_threads_and_processes_writing_the_same_files_never_show_a_partial_one(root):
    files = FileConnector(FileConfig(root=str(root), fsync=False))
    files.connect()
    files.mkdir("shared")
    for target in TARGETS:
        files.write_bytes(target, content("init", 0))
    stop = threading.Event()
    seen: list[int] = [0]
    bad: list[bytes] = []

    def reader() -> None:
        while True:  # at least one pass, however late the thread is scheduled
            done = stop.is_set()
            for target in TARGETS:
                data = files.read_bytes(target)
                raw = (root / target).read_bytes()  # and through plain open()
                seen[0] += 1
                for each in (data, raw):
                    if not check(each):
                        bad.append(each[:80])
            listed = [i.name for i in files.list("shared")]
            if any(name.startswith(".") for name in listed) or len(listed) != len(TARGETS):
                bad.append(repr(listed).encode())
            if done:
                return

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    procs = [FORK.Process(target=process_writer, args=(files, f"proc{n}", 150)) for n in range(4)]
    for p in procs:
        p.start()
    errors: list[BaseException] = []

    def thread_writer(n: int) -> None:
        try:
            write_many(files, f"thread{n}", 60)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=thread_writer, args=(n,)) for n in range(16)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    for p in procs:
        p.join()
    stop.set()
    for t in readers:
        t.join()
    files.disconnect()
    assert not errors, errors
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert not bad, bad[:3]
    assert seen[0] > 0
    leftovers = [p.name for p in (root / "shared").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # every temporary file was renamed or removed


RECORD = 64


def appender(files: FileConnector, name: str, threads: int, count: int) -> None:
    def run(t: int) -> None:
        for i in range(count):
            record = f"{name}-{t}-{i}:".encode().ljust(RECORD - 1, b".") + b"\n"
            with files.lock("ledger.log", timeout=60):
                # Two appends per record: without the lock, others would land between them.
                files.append("ledger.log", record[: RECORD // 2])
                files.append("ledger.log", record[RECORD // 2 :])

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def test_appends_under_lock_from_processes_and_threads_lose_nothing(root):
    files = FileConnector(FileConfig(root=str(root), fsync=False))
    files.connect()
    count = 60
    procs = [FORK.Process(target=appender, args=(files, f"p{n}", 4, count)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    data = files.read_bytes("ledger.log")
    files.disconnect()
    assert len(data) == 4 * 4 * count * RECORD
    records = data.split(b"\n")[:-1]
    assert len(records) == 4 * 4 * count
    expected = {f"p{p}-{t}-{i}" for p in range(4) for t in range(4) for i in range(count)}
    names = {r.split(b":")[0].decode() for r in records}
    assert names == expected
    assert all(len(r) == RECORD - 1 and r.endswith(b".") for r in records)


def test_the_lock_really_excludes_across_processes(root):
    """A lock held by the parent is refused to a forked child, and free once released."""
    files = FileConnector(FileConfig(root=str(root), fsync=False))
    files.connect()
    held = files.lock("gate")

    def child() -> None:
        try:
            files.lock("gate", timeout=0)
        except ConnectorError as err:
            os._exit(0 if err.code is ErrorCode.LOCK_TIMEOUT else 2)
        os._exit(1)

    p = FORK.Process(target=child)
    p.start()
    p.join()
    assert p.exitcode == 0  # the child could not take the parent's lock
    held.release()

    def child_after() -> None:
        files.lock("gate", timeout=0).release()
        os._exit(0)

    p = FORK.Process(target=child_after)
    p.start()
    p.join()
    assert p.exitcode == 0
    files.disconnect()


def test_32_threads_hammering_one_connector(root):
    files = FileConnector(FileConfig(root=str(root), fsync=False))
    files.connect()
    files.mkdir("h")
    before = open_fds()
    errors: list[BaseException] = []
    unexpected: list[ConnectorError] = []
    barrier = threading.Barrier(32)

    def work(n: int) -> None:
        rng = random.Random(n)
        barrier.wait()
        try:
            for i in range(150):
                name = f"h/f{rng.randrange(8)}"
                op = rng.randrange(9)
                try:
                    if op == 0:
                        files.write_bytes(name, b"%d" % i)
                    elif op == 1:
                        files.read_bytes(name)
                    elif op == 2:
                        files.list("h", recursive=True)
                    elif op == 3:
                        with files.lock(name, timeout=30):
                            files.append(name + ".log", b"x")
                    elif op == 4:
                        files.delete(name, missing_ok=True)
                    elif op == 5:
                        files.move(name, f"h/f{rng.randrange(8)}")
                    elif op == 6:
                        with files.open(name, "wb") as out:
                            out.write(b"stream")
                    elif op == 7:
                        with files.transaction() as tx:
                            tx.write_bytes(name, b"t")
                            tx.write_bytes(f"h/g{n}", b"t")
                    else:
                        files.stat(name)
                except ConnectorError as err:
                    # Another thread deleted or moved the file in between: fine.
                    if err.code not in (ErrorCode.NOT_FOUND,):
                        unexpected.append(err)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert not unexpected, unexpected[:3]
    assert [p.name for p in (root / "h").iterdir() if p.name.startswith(".dmtmp")] == []
    assert open_fds() - before == set()  # no descriptor leaked
    files.disconnect()


def test_connect_disconnect_racing_operations(root):
    files = FileConnector(FileConfig(root=str(root), fsync=False))
    files.connect()
    stop = threading.Event()
    errors: list[BaseException] = []

    def use() -> None:
        while not stop.is_set():
            try:
                files.write_bytes("x", b"1")
                files.read_bytes("x")
            except NotConnectedError:
                pass
            except BaseException as exc:
                errors.append(exc)
                return

    users = [threading.Thread(target=use) for _ in range(8)]
    for t in users:
        t.start()
    for _ in range(200):
        files.disconnect()
        files.connect()
    stop.set()
    for t in users:
        t.join()
    files.disconnect()
    assert not errors, errors[:3]
    assert [p.name for p in root.iterdir()] == ["x"]
