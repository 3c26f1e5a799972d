"""FakeFile: the in-memory tree, faults (partial ones too), locks across threads, no disk.

The behaviour shared with the real FileConnector is pinned by
tests/integration/testing/test_drift_file.py (run against both); these
tests cover what only the fake has, and what needs no real directory.
"""

from __future__ import annotations

import os
import threading

import pytest

from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from dictamesh_connectors.file import FileConfig, FileConnector
from dictamesh_connectors.testing.fakes import FakeFile
from dictamesh_connectors.testing.fakes.file import DEFAULT_ROOT, FakeFileLock
from tests.unit.fakes import FakeClock


@pytest.fixture
def files():
    fake = FakeFile()
    clock = FakeClock()
    fake._sleep, fake._clock = clock.sleep, clock.clock
    fake.connect()
    yield fake
    fake.disconnect()


def test_config_forms_and_no_disk(tmp_path):
    assert FakeFile().config.root == DEFAULT_ROOT
    root = tmp_path / "never-created"
    fake = FakeFile(str(root))
    with fake:
        fake.write_text("a.txt", "x")
    assert not root.exists()
    config = FileConfig(root=str(tmp_path))
    assert FakeFile(config).config is config
    with pytest.raises(InvalidConfigError):
        FakeFile(object())  # type: ignore[arg-type]
    assert not isinstance(fake, FileConnector) and fake.name == "file"


def test_contents_and_the_tree_survives_reconnect():
    fake = FakeFile()
    with pytest.raises(NotConnectedError):
        fake.write_text("a", "x")
    with fake:
        fake.mkdir("d")
        fake.write_text("d/b.txt", "b")
        fake.write_text("a.txt", "a")
        with fake.lock("a.txt"):
            pass
    assert fake.contents == {"a.txt": b"a", "d/b.txt": b"b"}  # no lock sidecar
    with fake:
        assert fake.read_text("d/b.txt") == "b"


def test_faults_on_reads_are_retried_writes_that_may_apply_are_not(files: FakeFile):
    files.write_text("a", "x")
    files.fail_next("read_bytes", code=ErrorCode.UNAVAILABLE, times=2)
    assert files.read_text("a") == "x"  # read_text goes through read_bytes
    assert files.faults.call_count("read_bytes") == 3
    files.fail_next("append", code=ErrorCode.RESOURCE_EXHAUSTED, maybe_applied=True)
    with pytest.raises(ConnectorError) as info:
        files.append("a", b"y")
    assert info.value.code is ErrorCode.RESOURCE_EXHAUSTED
    assert files.faults.call_count("append") == 1
    files.fail_next("write_bytes", code=ErrorCode.RESOURCE_EXHAUSTED)
    files.write_bytes("b", b"1")  # idempotent (overwrite): retried
    assert files.read_bytes("b") == b"1"
    assert files.stats().retries == 3


def test_partial_append_writes_a_prefix(files: FakeFile):
    files.fail_next("append", partial=3, code=ErrorCode.TIMEOUT)
    with pytest.raises(ConnectorError) as info:
        files.append("log", b"abcdef")
    err = info.value
    assert err.code is ErrorCode.TIMEOUT and err.maybe_applied
    assert (err.details["applied"], err.details["total"]) == (3, 6)
    assert files.read_bytes("log") == b"abc"


def test_partial_commit_applies_a_prefix(files: FakeFile):
    files.fail_next("commit", partial=1)
    with pytest.raises(ConnectorError) as info, files.transaction() as tx:
        tx.write_text("one", "1")
        tx.write_text("two", "2")
    assert info.value.maybe_applied and info.value.details["applied"] == 1
    assert files.contents == {"one": b"1"}


def test_faults_on_connect_ping_and_each_verb(files: FakeFile):
    fake = FakeFile()
    fake.fail_next("connect", code=ErrorCode.PERMISSION_DENIED)
    with pytest.raises(ConnectorError):
        fake.connect()
    assert not fake.is_connected
    files.ping()
    files.fail_next("ping", code=ErrorCode.CONNECTION_LOST)
    with pytest.raises(ConnectorError):
        files.ping()
    for verb, call in [
        ("list", lambda: files.list()),
        ("stat", lambda: files.stat("")),
        ("mkdir", lambda: files.mkdir("m")),
        ("lock", lambda: files.lock("l")),
        ("open", lambda: files.open("x", "wb")),
        ("clean_orphans", lambda: files.clean_orphans()),
        ("move", lambda: files.move("a", "b")),
        ("copy", lambda: files.copy("a", "b")),
        ("delete", lambda: files.delete("a", missing_ok=True)),
        ("rmdir", lambda: files.rmdir("a", missing_ok=True)),
    ]:
        files.fail_next(verb, code=ErrorCode.INVALID_INPUT)
        with pytest.raises(ConnectorError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_INPUT, verb
    assert files.clean_orphans() == 0


def test_latency_runs_outside_every_lock(files: FakeFile):
    seen: list[bool] = []

    def sleep(seconds: float) -> None:
        free = files._tree_lock.acquire(blocking=False)
        if free:
            files._tree_lock.release()
        seen.append(free)

    files.faults._sleep = sleep
    files.set_latency("write_bytes", 0.01)
    files.write_bytes("a", b"1")
    assert seen == [True]


def test_lock_waits_for_another_thread_then_gets_it(files: FakeFile):
    holder = files.lock("job")
    got: list[FakeFileLock] = []
    waiting = threading.Event()

    def wait_for_it() -> None:
        waiting.set()
        got.append(files.lock("job", timeout=30))

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    waiting.wait(5)
    assert not got
    holder.release()
    thread.join(10)
    assert got and got[0].held
    got[0].release()
    assert "not held" in repr(got[0])


def test_exclusive_waits_for_shared_holders(files: FakeFile):
    reader = files.lock("f", shared=True)
    with pytest.raises(ConnectorError) as info:
        files.lock("f", timeout=0)
    assert info.value.code is ErrorCode.LOCK_TIMEOUT and info.value.transient
    reader.release()
    reader.release()  # idempotent
    files.lock("f", timeout=0).release()


def test_lock_timeout_is_checked(files: FakeFile):
    with pytest.raises(TypeError):
        files.lock("f", timeout="1")  # type: ignore[arg-type]
    with pytest.raises(ConnectorError) as info:
        files.lock("f", timeout=-1)
    assert info.value.code is ErrorCode.INVALID_REQUEST


def test_32_threads_append_under_a_lock(files: FakeFile):
    barrier = threading.Barrier(32)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        barrier.wait()
        try:
            for i in range(20):
                with files.lock("ledger", timeout=60):
                    files.append("ledger", f"{n}:{i}\n")
                files.write_text(f"w{n}", str(i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    lines = files.read_text("ledger").splitlines()
    assert len(lines) == 640 and len(set(lines)) == 640
    assert all(files.read_text(f"w{n}") == "19" for n in range(32))


def test_reader_and_writer_details(files: FakeFile):
    files.write_bytes("a", b"hello")
    with files.open("a") as reader:
        assert reader.readable() and reader.seekable() and not reader.writable()
        assert reader.name == "a" and reader.tell() == 0
        files.write_bytes("a", b"changed")  # the reader keeps what it opened
        assert reader.read() == b"hello"
        with pytest.raises(ConnectorError):
            reader.seek(0, 7)
        with pytest.raises(ConnectorError):
            reader.seek(-1)
    assert reader.closed and "closed" in repr(reader)
    writer = files.open("b", "wb")
    assert writer.writable() and not writer.readable() and not writer.seekable()
    with pytest.raises(TypeError):
        writer.write("text")  # type: ignore[arg-type]
    writer.flush()
    with open(__file__, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        writer.copy_from(source.fileno(), size)
    writer.close()
    writer.close()  # idempotent
    assert len(files.read_bytes("b")) == size
    with pytest.raises(ConnectorError):
        writer.write(b"late")
    aborted = files.open("c", "wb")
    aborted.write(b"x")
    aborted.abort()
    assert not files.exists("c")


def test_fork_child_has_its_own_tree_and_no_locks(files: FakeFile):
    files.write_text("a", "parent")
    held = files.lock("a")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            with files.lock("a", timeout=0):
                files.write_text("a", "child")
            status = 0 if files.read_text("a") == "child" else 2
        finally:
            os.write(write, bytes([status]))
            os._exit(0)
    os.close(write)
    status = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert status == b"\x00"
    assert files.read_text("a") == "parent" and held.held
    held.release()
