"""FakeFile against the real FileConnector on a real directory: one set of behaviour tests.

Every test runs twice, on ``FakeFile`` and on ``FileConnector`` (a fresh
tmp dir), and asserts the same outcomes, error codes, ``errno`` details and
messages for both, so the fake cannot drift from the real thing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, NotConnectedError
from dictamesh_connectors.file import FileConfig, FileConnector
from dictamesh_connectors.testing.fakes import FakeFile

pytestmark = pytest.mark.integration


def build(kind: str, root: str, **options: Any) -> Any:
    config = FileConfig(root=root, fsync=False, **options)
    return FakeFile(config) if kind == "fake" else FileConnector(config)


@pytest.fixture(params=["fake", "real"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def files(kind: str, tmp_path) -> Iterator[Any]:
    connector = build(kind, str(tmp_path))
    connector.connect()
    yield connector
    connector.disconnect()


def outcome(fn: Callable[[], Any]) -> tuple[Any, ...]:
    """``("ok", value)`` or ``(code, errno, message)``: what both must agree on."""
    try:
        return ("ok", fn())
    except ConnectorError as err:
        return (err.code, err.details.get("errno"), str(err))


def test_round_trip_and_overwrite(files):
    files.write_bytes("a.bin", b"\x00\x01")
    assert files.read_bytes("a.bin") == b"\x00\x01"
    files.write_text("a.txt", "héllo")
    assert files.read_text("a.txt") == "héllo"
    assert outcome(lambda: files.write_text("a.txt", "x", overwrite=False)) == (
        ErrorCode.CONFLICT,
        "EEXIST",
        "file: write 'a.txt': File exists",
    )
    files.write_text("a.txt", "new")
    assert files.read_text("a.txt") == "new"


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda f: f.read_bytes("missing.txt"),
            (ErrorCode.NOT_FOUND, "ENOENT", "file: read 'missing.txt': No such file or directory"),
        ),
        (
            lambda f: f.read_bytes("no/such/dir.txt"),
            (ErrorCode.NOT_FOUND, "ENOENT", "file: read 'no': No such file or directory"),
        ),
        (
            lambda f: f.write_bytes("nodir/a", b"1"),
            (ErrorCode.NOT_FOUND, "ENOENT", "file: write 'nodir': No such file or directory"),
        ),
        (
            lambda f: f.read_bytes("../escape"),
            (
                ErrorCode.PERMISSION_DENIED,
                None,
                "file: read '../escape': '..' in a path is refused",
            ),
        ),
        (
            lambda f: f.write_bytes("/etc/x", b"1"),
            (
                ErrorCode.PERMISSION_DENIED,
                None,
                "file: write: absolute paths are refused (paths are relative to the root)",
            ),
        ),
        (
            lambda f: f.read_bytes(""),
            (ErrorCode.INVALID_REQUEST, None, "file: read '.': the root is a directory"),
        ),
        (
            lambda f: f.write_bytes("x.lock", b"1"),
            (
                ErrorCode.INVALID_REQUEST,
                None,
                "file: write 'x.lock': the name is reserved for the connector's lock and "
                "temporary files",
            ),
        ),
        (
            lambda f: f.delete("missing.txt"),
            (ErrorCode.NOT_FOUND, None, "file: delete 'missing.txt': No such file or directory"),
        ),
        (lambda f: f.delete("missing.txt", missing_ok=True), ("ok", None)),
        (lambda f: f.rmdir("missing", missing_ok=True), ("ok", None)),
        (
            lambda f: f.rmdir(""),
            (ErrorCode.INVALID_REQUEST, None, "file: rmdir '.': the root cannot be removed"),
        ),
        (
            lambda f: f.mkdir("a/b"),
            (ErrorCode.NOT_FOUND, "ENOENT", "file: mkdir 'a': No such file or directory"),
        ),
        (lambda f: f.exists("nothing/here"), ("ok", False)),
        (
            lambda f: f.list("missing"),
            (ErrorCode.NOT_FOUND, "ENOENT", "file: list 'missing': No such file or directory"),
        ),
        (
            lambda f: f.open("x", "ab"),
            (ErrorCode.INVALID_REQUEST, None, "file: open: mode 'ab' is not 'rb' or 'wb'"),
        ),
    ],
)
def test_errors_on_an_empty_root(files, call, expected):
    assert outcome(lambda: call(files)) == expected


def test_directories_and_files_in_the_wrong_place(files):
    files.mkdir("d")
    files.write_text("d/f.txt", "x")
    assert outcome(lambda: files.read_bytes("d")) == (
        ErrorCode.INVALID_REQUEST,
        "EISDIR",
        "file: read 'd': Is a directory",
    )
    assert outcome(lambda: files.delete("d")) == (
        ErrorCode.INVALID_REQUEST,
        None,
        "file: delete 'd': is a directory (use rmdir)",
    )
    assert outcome(lambda: files.write_text("d", "x")) == (
        ErrorCode.INVALID_REQUEST,
        "EISDIR",
        "file: write 'd': Is a directory",
    )
    assert outcome(lambda: files.read_bytes("d/f.txt/deeper")) == (
        ErrorCode.INVALID_REQUEST,
        "ENOTDIR",
        "file: read 'd/f.txt': Not a directory",
    )
    assert files.exists("d/f.txt/deeper") is False
    assert outcome(lambda: files.list("d/f.txt"))[:2] == (ErrorCode.INVALID_REQUEST, "ENOTDIR")
    assert outcome(lambda: files.rmdir("d")) == (
        ErrorCode.CONFLICT,
        None,
        "file: rmdir 'd': directory not empty (hidden lock sidecars and temporary files count)",
    )
    assert outcome(lambda: files.rmdir("d/f.txt"))[:2] == (ErrorCode.INVALID_REQUEST, "ENOTDIR")
    assert outcome(lambda: files.mkdir("d")) == (
        ErrorCode.CONFLICT,
        None,
        "file: mkdir 'd': already exists",
    )
    files.mkdir("d", exist_ok=True)
    assert outcome(lambda: files.mkdir("d/f.txt", exist_ok=True))[0] is ErrorCode.CONFLICT
    files.mkdir("p/q/r", parents=True)
    assert files.stat("p/q/r").is_dir
    files.delete("d/f.txt")
    files.rmdir("d")
    assert not files.exists("d")


def test_list_stat_and_query(files):
    files.mkdir("in")
    files.mkdir("in/sub")
    files.write_bytes("in/a.csv", b"123")
    files.write_bytes("in/b.txt", b"")
    files.write_bytes("in/sub/c.csv", b"12345")
    with files.lock("in/a.csv"):
        pass  # leaves a hidden sidecar: never listed

    def shown(infos):
        return [(i.path, i.name, i.is_file, i.is_dir, i.size if i.is_file else None) for i in infos]

    assert shown(files.list("in")) == [
        ("in/a.csv", "a.csv", True, False, 3),
        ("in/b.txt", "b.txt", True, False, 0),
        ("in/sub", "sub", False, True, None),
    ]
    assert [i.path for i in files.list("in", "*.csv", recursive=True)] == [
        "in/a.csv",
        "in/sub/c.csv",
    ]
    assert [i.path for i in files.list("in", "sub/*", recursive=True)] == ["in/sub/c.csv"]
    assert [i.path for i in files.query("*.csv")] == ["in/a.csv", "in/sub/c.csv"]
    info = files.stat("in/sub/c.csv")
    assert (info.path, info.name, info.size, info.is_file, info.is_symlink) == (
        "in/sub/c.csv",
        "c.csv",
        5,
        True,
        False,
    )
    assert files.stat("").is_dir and files.stat("").path == ""
    assert outcome(lambda: files.stat("in/a.csv.lock"))[0] is ErrorCode.NOT_FOUND
    assert outcome(lambda: files.rmdir("in/sub"))[0] is ErrorCode.CONFLICT


def test_append(files):
    files.append("log.txt", "one\n")
    files.append("log.txt", b"two\n")
    assert files.read_text("log.txt") == "one\ntwo\n"
    files.mkdir("dir")
    assert outcome(lambda: files.append("dir", b"x"))[:2] == (ErrorCode.INVALID_REQUEST, "EISDIR")


def test_move_and_copy(files):
    files.write_text("a", "A")
    files.write_text("b", "B")
    assert outcome(lambda: files.move("a", "b", overwrite=False)) == (
        ErrorCode.CONFLICT,
        None,
        "file: move 'b': already exists",
    )
    files.move("a", "b")
    assert files.read_text("b") == "A" and not files.exists("a")
    assert outcome(lambda: files.move("a", "c")) == (
        ErrorCode.NOT_FOUND,
        "ENOENT",
        "file: move 'a': No such file or directory",
    )
    files.mkdir("d")
    files.mkdir("e")
    files.write_text("e/x", "x")
    assert outcome(lambda: files.move("b", "d"))[:2] == (ErrorCode.INVALID_REQUEST, "EISDIR")
    assert outcome(lambda: files.move("d", "b"))[:2] == (ErrorCode.INVALID_REQUEST, "ENOTDIR")
    assert outcome(lambda: files.move("d", "e"))[:2] == (ErrorCode.CONFLICT, "ENOTEMPTY")
    assert outcome(lambda: files.move("d", "d/inner"))[:2] == (ErrorCode.INVALID_REQUEST, "EINVAL")
    files.move("e", "d")  # a directory over an empty one
    assert files.read_text("d/x") == "x"
    files.copy("b", "c")
    assert files.read_text("c") == "A"
    assert outcome(lambda: files.copy("b", "c", overwrite=False)) == (
        ErrorCode.CONFLICT,
        "EEXIST",
        "file: write 'c': File exists",
    )
    assert outcome(lambda: files.copy("d", "z")) == (
        ErrorCode.INVALID_REQUEST,
        None,
        "file: copy 'd': is not a regular file",
    )
    assert outcome(lambda: files.copy("nope", "z"))[:2] == (ErrorCode.NOT_FOUND, "ENOENT")


def test_open_for_reading_and_writing(files):
    with files.open("w.bin", "wb") as out:
        out.write(b"abc")
        out.writelines([b"d", b"e"])
        assert out.tell() == 5
        assert not files.exists("w.bin")  # hidden until closed
    assert files.read_bytes("w.bin") == b"abcde"
    with pytest.raises(RuntimeError), files.open("w.bin", "wb") as out:
        out.write(b"zzz")
        raise RuntimeError("abort")
    assert files.read_bytes("w.bin") == b"abcde"
    writer = files.open("w.bin", "wb", overwrite=False)
    writer.write(b"x")
    assert outcome(writer.close)[:2] == (ErrorCode.CONFLICT, "EEXIST")
    with files.open("w.bin") as src:
        assert src.read(2) == b"ab"
        assert src.seek(-1, 2) == 4
        assert src.read() == b"e"
        assert list(src.chunks(2)) == []
        src.seek(0)
        assert list(src.chunks(2)) == [b"ab", b"cd", b"e"]
        buffer = bytearray(3)
        src.seek(1)
        assert src.readinto(buffer) == 3 and bytes(buffer) == b"bcd"
    assert outcome(src.read) == (
        ErrorCode.INVALID_REQUEST,
        None,
        "file: read 'w.bin': the reader is closed",
    )
    assert outcome(lambda: files.open("missing"))[:2] == (ErrorCode.NOT_FOUND, "ENOENT")
    files.mkdir("dir")
    assert outcome(lambda: files.open("dir")) == (
        ErrorCode.INVALID_REQUEST,
        None,
        "file: open 'dir': is a directory",
    )


def test_text_decoding_errors(files):
    files.write_bytes("latin.txt", "é".encode("latin-1"))
    assert outcome(lambda: files.read_text("latin.txt"))[0] is ErrorCode.SERIALIZATION_ERROR
    assert files.read_text("latin.txt", encoding="latin-1") == "é"
    assert outcome(lambda: files.read_text("latin.txt", encoding="nope"))[0] is (
        ErrorCode.INVALID_REQUEST
    )


def test_transaction_commit_and_rollback(files):
    files.write_text("old.txt", "old")
    with files.transaction() as tx:
        tx.write_text("new.txt", "new")
        tx.delete("old.txt")
        assert tx.pending == ["new.txt", "old.txt"]
        assert not files.exists("new.txt")
    assert files.read_text("new.txt") == "new" and not files.exists("old.txt")
    with pytest.raises(RuntimeError), files.transaction() as tx:
        tx.write_text("never.txt", "x")
        raise RuntimeError("boom")
    assert not files.exists("never.txt")
    assert outcome(lambda: tx.write_text("again", "x")) == (
        ErrorCode.INVALID_REQUEST,
        None,
        "file: write: the transaction is finished",
    )
    with pytest.raises(ConnectorError) as info, files.transaction() as tx:
        tx.delete("gone.txt")
    assert info.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(ConnectorError) as info, files.transaction(overwrite=False) as tx:
        tx.write_text("new.txt", "again")
    assert info.value.code is ErrorCode.CONFLICT
    assert files.read_text("new.txt") == "new"


def test_lock_excludes_other_threads(files):
    files.mkdir("q")
    held = files.lock("q/job")
    errors: list[tuple[Any, ...]] = []
    thread = threading.Thread(target=lambda: errors.append(outcome(lambda: files.lock("q/job", 0))))
    thread.start()
    thread.join()
    assert errors == [
        (ErrorCode.LOCK_TIMEOUT, None, "file: lock 'q/job': not granted within 0s (held elsewhere)")
    ]
    held.release()
    with files.lock("q/job", timeout=0) as again:
        assert again.held
    assert not again.held
    with files.lock("q/shared", shared=True), files.lock("q/shared", shared=True, timeout=0):
        pass  # shared locks share
    assert outcome(lambda: files.lock("nodir/x", 0))[:2] == (ErrorCode.NOT_FOUND, "ENOENT")
    assert outcome(lambda: files.lock("")) == (
        ErrorCode.INVALID_REQUEST,
        None,
        "file: lock '.': the root cannot be locked (lock a name in it)",
    )


def test_max_file_size(kind, tmp_path):
    with build(kind, str(tmp_path), max_file_size=4) as files:
        files.write_bytes("ok", b"1234")
        assert outcome(lambda: files.write_bytes("big", b"12345")) == (
            ErrorCode.PAYLOAD_TOO_LARGE,
            None,
            "file: write 'big': more than max_file_size (4) bytes",
        )
        assert outcome(lambda: files.append("ok", b"5"))[0] is ErrorCode.PAYLOAD_TOO_LARGE
        with files.open("w", "wb") as out:
            assert outcome(lambda: out.write(b"123456"))[0] is ErrorCode.PAYLOAD_TOO_LARGE
        assert not files.exists("w")


def test_read_only_refuses_writes(kind, tmp_path):
    with build(kind, str(tmp_path), read_only=True) as files:
        assert outcome(lambda: files.write_text("a", "x")) == (
            ErrorCode.INVALID_REQUEST,
            None,
            "file: write: the connector is read-only",
        )
        assert outcome(files.transaction)[0] is ErrorCode.INVALID_REQUEST
        assert outcome(lambda: files.lock("a", 0))[:2] == (ErrorCode.NOT_FOUND, "ENOENT")


def test_not_connected(kind, tmp_path):
    files = build(kind, str(tmp_path))
    with pytest.raises(NotConnectedError):
        files.read_bytes("a")
    files.connect()
    files.write_text("a", "x")
    files.disconnect()
    with pytest.raises(NotConnectedError):
        files.write_text("a", "y")
    files.connect()
    assert files.read_text("a") == "x"  # the tree survives a reconnect, as a disk does
    files.disconnect()
