"""FileConnector verbs, one behaviour per test, on a real temporary directory."""

from __future__ import annotations

import gc
import os
import time

import pytest

import dictamesh_connectors
import dictamesh_connectors.file as file_package
from dictamesh_connectors.errors import ConnectorError, ErrorCode, NotConnectedError
from dictamesh_connectors.file import FileConfig, FileConnector


def code_of(fn) -> ErrorCode:
    with pytest.raises(ConnectorError) as info:
        fn()
    return info.value.code


def test_public_names():
    assert file_package.__all__ == sorted(file_package.__all__)
    for name in file_package.__all__:
        assert (getattr(file_package, name).__doc__ or "").strip(), name


def test_registered_for_file_urls(root):
    files = dictamesh_connectors.connect(f"file://{root}?fsync=false")
    try:
        assert isinstance(files, FileConnector)
        assert files.config.fsync is False
        files.write_text("x", "y")
        assert (root / "x").read_text() == "y"
        assert "file://" in repr(files)
    finally:
        files.disconnect()


def test_round_trips(files, root):
    files.write_bytes("a.bin", b"\x00\x01")
    files.write_bytes("b.bin", bytearray(b"ba"))
    files.write_bytes("c.bin", memoryview(b"xyz")[1:])
    files.write_text("t.txt", "héllo", encoding="latin-1")
    assert files.read_bytes("a.bin") == b"\x00\x01"
    assert files.read_bytes("b.bin") == b"ba"
    assert files.read_bytes("c.bin") == b"yz"
    assert files.read_text("t.txt", encoding="latin-1") == "héllo"
    assert (root / "t.txt").read_bytes() == "héllo".encode("latin-1")
    files.write_bytes("empty", b"")
    assert files.read_bytes("empty") == b""
    with pytest.raises(TypeError):
        files.write_bytes("x", "a str")
    with pytest.raises(TypeError):
        files.write_text("x", b"bytes")


def test_new_files_get_file_mode(root):
    old = os.umask(0)
    try:
        files = FileConnector(FileConfig(root=str(root), file_mode=0o600, dir_mode=0o700))
        with files:
            files.write_text("f", "x")
            files.mkdir("d")
            with files.open("g", "wb") as out:
                out.write(b"x")
        assert (root / "f").stat().st_mode & 0o777 == 0o600
        assert (root / "g").stat().st_mode & 0o777 == 0o600
        assert (root / "d").stat().st_mode & 0o777 == 0o700
    finally:
        os.umask(old)


def test_overwrite_false_refuses_an_existing_file(files, root):
    files.write_text("a", "first", overwrite=False)
    assert code_of(lambda: files.write_text("a", "second", overwrite=False)) is ErrorCode.CONFLICT
    assert files.read_text("a") == "first"
    with files.open("b", "wb", overwrite=False) as out:
        out.write(b"1")
    (root / "c").write_text("made meanwhile")
    writer = files.open("c", "wb", overwrite=False)
    writer.write(b"late")
    assert code_of(writer.close) is ErrorCode.CONFLICT
    assert (root / "c").read_text() == "made meanwhile"
    assert files.list() == [i for i in files.list() if not i.name.startswith(".")]
    assert sorted(os.listdir(root)) == ["a", "b", "c"]


def test_streaming_write_is_hidden_until_commit(files, root):
    with files.open("big.bin", "wb") as out:
        for _ in range(10):
            out.write(b"x" * 100_000)
        assert not files.exists("big.bin")
        assert [i.path for i in files.list()] == []  # the temporary file is never listed
        assert len(os.listdir(root)) == 1  # ... but it is there
        assert out.tell() == 1_000_000
    assert files.stat("big.bin").size == 1_000_000
    with files.open("big.bin") as src:
        chunks = list(src.chunks(300_000))
    assert [len(c) for c in chunks] == [300_000, 300_000, 300_000, 100_000]


def test_streaming_write_discarded_on_exception_and_when_collected(files, root):
    files.write_text("kept", "old")
    with pytest.raises(RuntimeError), files.open("kept", "wb") as out:
        out.write(b"new")
        raise RuntimeError("boom")
    assert files.read_text("kept") == "old"
    writer = files.open("dropped", "wb")
    writer.write(b"never committed")
    del writer
    gc.collect()
    assert sorted(os.listdir(root)) == ["kept"]
    writer = files.open("aborted", "wb")
    writer.abort()
    writer.abort()
    assert code_of(lambda: writer.write(b"x")) is ErrorCode.INVALID_REQUEST
    assert sorted(os.listdir(root)) == ["kept"]


def test_reader_seek_and_readinto(files):
    files.write_bytes("r", bytes(range(100)))
    with files.open("r", "rb") as src:
        assert src.read(10) == bytes(range(10))
        assert src.seek(-5, os.SEEK_END) == 95
        assert src.read() == bytes(range(95, 100))
        src.seek(50)
        buf = bytearray(4)
        assert src.readinto(buf) == 4 and bytes(buf) == bytes(range(50, 54))
        assert src.tell() == 54
    assert src.closed
    assert code_of(src.read) is ErrorCode.INVALID_REQUEST
    assert code_of(lambda: files.open("r", "r+")) is ErrorCode.INVALID_REQUEST


def test_append(files, root):
    files.append("log", b"one\n")
    files.append("log", "two\n")
    assert (root / "log").read_text() == "one\ntwo\n"
    files.mkdir("d")
    assert code_of(lambda: files.append("d", b"x")) is ErrorCode.INVALID_REQUEST


def test_list_filters_sorts_and_recurses(files, root):
    for path in ("b.csv", "a.csv", "c.txt", "sub/d.csv", "sub/deeper/e.csv"):
        if "/" in path:
            files.mkdir(path.rsplit("/", 1)[0], parents=True, exist_ok=True)
        files.write_text(path, path)
    with files.lock("a.csv"):
        pass
    (root / ".dmtmp-0123456789abcdef0123456789abcdef").write_text("orphan")
    assert [i.path for i in files.list()] == ["a.csv", "b.csv", "c.txt", "sub"]
    assert [i.path for i in files.list(pattern="*.csv")] == ["a.csv", "b.csv"]
    assert [i.path for i in files.list(pattern="*.csv", recursive=True)] == [
        "a.csv",
        "b.csv",
        "sub/d.csv",
        "sub/deeper/e.csv",
    ]
    assert [i.path for i in files.list("sub", pattern="deeper/*", recursive=True)] == [
        "sub/deeper/e.csv"
    ]
    assert [i.path for i in files.query("*.csv")] == [
        i.path for i in files.list(".", "*.csv", True)
    ]
    info = files.stat("sub/d.csv")
    assert (info.is_file, info.is_dir, info.size, info.name) == (True, False, 9, "d.csv")
    assert files.stat(".").is_dir
    assert abs(info.mtime - time.time()) < 3600


def test_reserved_names_are_refused_and_hidden(files, root):
    for name in ("x.lock", ".dmtmp-0123456789abcdef0123456789abcdef", "d/y.lock"):
        assert code_of(lambda name=name: files.write_text(name, "x")) is ErrorCode.INVALID_REQUEST
    for name in ("a.lock/b", ".dmtxn-0123456789abcdef0123456789abcdef/c"):
        refused = code_of(lambda name=name: files.mkdir(name, parents=True))
        assert refused is ErrorCode.INVALID_REQUEST, name  # a reserved name on the way too
        assert files.list() == []
    files.mkdir("d")
    with files.lock("x"), files.lock("d/y", shared=True):
        assert code_of(lambda: files.stat("x.lock")) is ErrorCode.NOT_FOUND
        assert not files.exists("x.lock")
        assert (root / "x.lock").is_file() and (root / "d" / "y.lock").is_file()  # on disk...
        assert [i.path for i in files.list(recursive=True)] == ["d"]  # ...never listed
        assert [i.path for i in files.query("*")] == ["d"]
        assert files.list(pattern="*.lock", recursive=True) == []


def test_exists_stat_delete(files):
    assert not files.exists("nope")
    assert not files.exists("nope/deeper")
    files.write_text("f", "x")
    assert not files.exists("f/under-a-file")
    assert files.exists("f")
    files.delete("f")
    assert not files.exists("f")
    assert code_of(lambda: files.delete("f")) is ErrorCode.NOT_FOUND
    files.delete("f", missing_ok=True)
    files.delete("missing-dir/f", missing_ok=True)
    assert code_of(lambda: files.exists("../x")) is ErrorCode.PERMISSION_DENIED


def test_move_and_copy(files, root):
    files.write_text("a", "A")
    files.write_text("b", "B")
    files.move("a", "c")
    assert not files.exists("a") and files.read_text("c") == "A"
    assert code_of(lambda: files.move("c", "b", overwrite=False)) is ErrorCode.CONFLICT
    assert files.read_text("b") == "B" and files.read_text("c") == "A"
    files.move("c", "b")
    assert files.read_text("b") == "A"
    files.mkdir("d1")
    files.write_text("d1/x", "x")
    files.mkdir("d2")
    files.move("d1", "d3", overwrite=False)
    assert files.read_text("d3/x") == "x"
    assert code_of(lambda: files.move("d3", "d2", overwrite=False)) is ErrorCode.CONFLICT
    files.write_bytes("big", os.urandom(3_000_000))
    files.copy("big", "d2/big-copy")
    assert files.read_bytes("d2/big-copy") == files.read_bytes("big")
    assert code_of(lambda: files.copy("big", "b", overwrite=False)) is ErrorCode.CONFLICT
    assert code_of(lambda: files.copy("d2", "x")) is ErrorCode.INVALID_REQUEST
    assert code_of(lambda: files.move("nope", "x")) is ErrorCode.NOT_FOUND


def test_mkdir_rmdir(files):
    files.mkdir("a/b/c", parents=True)
    assert files.stat("a/b/c").is_dir
    assert code_of(lambda: files.mkdir("a/b/c")) is ErrorCode.CONFLICT
    files.mkdir("a/b/c", exist_ok=True)
    assert code_of(lambda: files.mkdir("x/y")) is ErrorCode.NOT_FOUND
    files.write_text("a/f", "x")
    assert code_of(lambda: files.mkdir("a/f", exist_ok=True)) is ErrorCode.CONFLICT
    files.rmdir("a/b/c")
    assert code_of(lambda: files.rmdir("a/b/c")) is ErrorCode.NOT_FOUND
    files.rmdir("a/b/c", missing_ok=True)
    assert code_of(lambda: files.rmdir("a")) is ErrorCode.CONFLICT
    assert code_of(lambda: files.rmdir(".")) is ErrorCode.INVALID_REQUEST
    assert code_of(lambda: files.rmdir("a/f")) is ErrorCode.INVALID_REQUEST


def test_read_only(root):
    (root / "f").write_text("x")
    files = FileConnector(FileConfig(root=str(root), read_only=True))
    with files:
        assert files.read_text("f") == "x"
        files.ping()
        for write in (
            lambda: files.write_text("g", "x"),
            lambda: files.write_bytes("g", b"x"),
            lambda: files.open("g", "wb"),
            lambda: files.append("f", b"x"),
            lambda: files.delete("f"),
            lambda: files.move("f", "g"),
            lambda: files.copy("f", "g"),
            lambda: files.mkdir("d"),
            lambda: files.rmdir("d"),
            lambda: files.transaction(),
            lambda: files.clean_orphans(),
        ):
            assert code_of(write) is ErrorCode.INVALID_REQUEST
        assert code_of(lambda: files.lock("f")) is ErrorCode.NOT_FOUND  # no sidecar to lock
    assert sorted(os.listdir(root)) == ["f"]


def test_max_file_size(root):
    (root / "big").write_bytes(b"x" * 11)
    files = FileConnector(FileConfig(root=str(root), max_file_size=10))
    with files:
        files.write_bytes("ok", b"x" * 10)
        assert code_of(lambda: files.write_bytes("no", b"x" * 11)) is ErrorCode.PAYLOAD_TOO_LARGE
        assert code_of(lambda: files.read_bytes("big")) is ErrorCode.PAYLOAD_TOO_LARGE
        assert code_of(lambda: files.open("big")) is ErrorCode.PAYLOAD_TOO_LARGE
        assert code_of(lambda: files.copy("big", "c")) is ErrorCode.PAYLOAD_TOO_LARGE
        assert code_of(lambda: files.append("ok", b"y")) is ErrorCode.PAYLOAD_TOO_LARGE
        out = files.open("stream", "wb")
        out.write(b"x" * 10)
        assert code_of(lambda: out.write(b"y")) is ErrorCode.PAYLOAD_TOO_LARGE
        assert out.closed
    assert sorted(os.listdir(root)) == ["big", "ok"]


def test_transaction_commits_together_or_not_at_all(files, root):
    files.write_text("old", "bye")
    files.mkdir("out")
    with files.transaction() as tx:
        tx.write_text("out/data.csv", "1,2\n")
        tx.write_text("out/data.csv", "3,4\n")  # the later write wins
        tx.write_bytes("out/_SUCCESS", b"")
        tx.delete("old")
        assert not files.exists("out/data.csv") and files.exists("old")
        assert [i.path for i in files.list(recursive=True)] == ["old", "out"]
        assert tx.pending == ["out/data.csv", "out/_SUCCESS", "old"]
    assert files.read_text("out/data.csv") == "3,4\n"
    assert files.exists("out/_SUCCESS") and not files.exists("old")
    with pytest.raises(RuntimeError), files.transaction() as tx:
        tx.write_text("out/data.csv", "never")
        tx.write_text("out/other", "never")
        raise RuntimeError
    assert files.read_text("out/data.csv") == "3,4\n" and not files.exists("out/other")
    assert sorted(os.listdir(root / "out")) == ["_SUCCESS", "data.csv"]
    tx = files.transaction()
    tx.write_text("late", "x")
    tx.rollback()
    assert code_of(lambda: tx.write_text("x", "y")) is ErrorCode.INVALID_REQUEST
    assert sorted(os.listdir(root)) == ["out"]


def test_transaction_conflict_changes_nothing(files):
    files.write_text("b", "exists")
    tx = files.transaction(overwrite=False)
    tx.write_text("a", "1")
    tx.write_text("b", "2")
    assert code_of(tx.commit) is ErrorCode.CONFLICT
    assert not files.exists("a") and files.read_text("b") == "exists"


def test_lock_timeout_with_a_fake_clock(files):
    now = [0.0]
    sleeps: list[float] = []
    files._clock = lambda: now[0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    files._sleep = sleep
    with files.lock("job"):
        with pytest.raises(ConnectorError) as info:
            files.lock("job", timeout=2.0)
        assert info.value.code is ErrorCode.LOCK_TIMEOUT and info.value.transient
        assert 1.99 <= sum(sleeps) <= 2.0001
        assert max(sleeps) <= 0.05
        shared = files.lock("reader", shared=True)
        files.lock("reader", shared=True, timeout=0).release()  # shared with shared
        assert code_of(lambda: files.lock("reader", timeout=0)) is ErrorCode.LOCK_TIMEOUT
        shared.release()
    files.lock("job", timeout=0).release()
    with pytest.raises(TypeError):
        files.lock("job", timeout="soon")
    assert code_of(lambda: files.lock("job", timeout=-1)) is ErrorCode.INVALID_REQUEST
    assert code_of(lambda: files.lock(".")) is ErrorCode.INVALID_REQUEST
    # An int past any float: positive waits as long as it takes, negative is
    # refused (it was taken for inf, a wait with no end).
    files.lock("job", timeout=10**400).release()
    assert code_of(lambda: files.lock("job", timeout=-(10**400))) is ErrorCode.INVALID_REQUEST


def test_lock_survives_a_removed_sidecar(files, root):
    held = files.lock("x")
    os.unlink(root / "x.lock")  # someone cleans up behind our back
    again = files.lock("x", timeout=0)  # a new sidecar: a new lock...
    with pytest.raises(ConnectorError):
        files.lock("x", timeout=0)  # ...which still excludes
    again.release()
    held.release()


def test_orphans_are_cleaned_by_a_later_write(files, root):
    orphan = root / ".dmtmp-0123456789abcdef0123456789abcdef"
    orphan.write_text("left by a crashed writer")
    young = root / ".dmtmp-fedcba9876543210fedcba9876543210"
    young.write_text("too young to tell")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    files.write_text("trigger", "x")
    assert not orphan.exists() and young.exists()
    live = files.open("streaming", "wb")  # a live writer: locked, so never an orphan
    temp = next(p for p in root.iterdir() if p.name.startswith(".dmtmp-") and p != young)
    os.utime(temp, (old, old))
    os.utime(young, (old, old))
    assert files.clean_orphans() == 1
    assert temp.exists() and not young.exists()
    live.close()
    assert sorted(os.listdir(root)) == ["streaming", "trigger"]


def test_lifecycle_and_ping(root, tmp_path):
    files = FileConnector(FileConfig(root=str(root)))
    assert code_of(lambda: files.read_bytes("x")) is ErrorCode.NOT_CONNECTED
    with pytest.raises(NotConnectedError):
        files.ping()
    files.connect()
    files.connect()
    files.ping()
    files.disconnect()
    files.disconnect()
    missing = FileConnector(FileConfig(root=str(tmp_path / "nope")))
    assert code_of(missing.connect) is ErrorCode.NOT_FOUND
    created = FileConnector(FileConfig(root=str(tmp_path / "new" / "root"), create_root=True))
    with created:
        created.ping()
    assert (tmp_path / "new" / "root").is_dir()
    gone = tmp_path / "gone"
    gone.mkdir()
    doomed = FileConnector(FileConfig(root=str(gone)))
    with doomed:
        gone.rmdir()
        assert code_of(doomed.ping) is ErrorCode.NOT_FOUND


def test_a_relative_root_is_resolved_at_connect(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with FileConnector(FileConfig(root="data", create_root=True)) as files:
        files.write_text("x", "y")
    assert (tmp_path / "data" / "x").read_text() == "y"


def test_writers_and_locks_outlive_a_disconnect(root):
    files = FileConnector(FileConfig(root=str(root)))
    files.connect()
    writer = files.open("w", "wb")
    held = files.lock("w")
    files.disconnect()
    writer.write(b"still fine")
    writer.close()
    held.release()
    assert (root / "w").read_bytes() == b"still fine"


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 300_000])
def test_read_bytes_at_every_size_around_the_first_read(files, root, size):
    data = os.urandom(size)
    (root / "f").write_bytes(data)
    assert files.read_bytes("f") == data
    with FileConnector(FileConfig(root=str(root), max_file_size=size)) as exact:
        assert exact.read_bytes("f") == data  # exactly at the limit: fine
    if size:
        with FileConnector(FileConfig(root=str(root), max_file_size=size - 1)) as short:
            assert code_of(lambda: short.read_bytes("f")) is ErrorCode.PAYLOAD_TOO_LARGE


def test_a_lost_root_stays_open_for_the_operations_still_using_it(files, root):
    # One thread's EIO/ESTALE invalidates the root (RECONNECT) while other
    # threads are resolving paths from its descriptor: closing it under them
    # gave them EBADF (found by the shared-fsync fault test), or an unrelated
    # directory that reused the number. It is closed when the last one is done.
    files.write_bytes("a", b"1")
    lost = ConnectorError("file: read 'x': Input/output error", code=ErrorCode.CONNECTION_LOST)
    seen = {}

    def operation(handle):
        seen["fd"] = handle.fd
        files._on_connection_lost(handle, lost)  # another thread's EIO, mid-operation
        assert files._handle is None  # discarded: the next operation opens a new root
        os.fstat(handle.fd)  # still open (EBADF before the fix)
        return files._read(handle, ("a",))

    assert files._run(operation, idempotent=True) == b"1"
    gc.collect()
    with pytest.raises(OSError):  # the last user let go: closed, not leaked
        os.fstat(seen["fd"])
    assert files.read_bytes("a") == b"1"  # on a new root
