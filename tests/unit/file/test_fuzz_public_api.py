"""Garbage in every argument of every public method: a ConnectorError with a code, nothing else.

#11: bad input is an ``InvalidConfigError`` / ``ConnectorError`` with a code,
raised before any I/O, never a raw ``TypeError``, ``ValueError``,
``LookupError`` or ``OverflowError``. A wrong *type* is an
``ArgumentTypeError``: a ``ConnectorError`` (INVALID_REQUEST) that is also a
``TypeError``, so both catches work. ``test_every_public_method_is_fuzzed``
fails when a new public method has no entry here.

The base class's own verbs (``ping``, ``disconnect``: a ``timeout`` of the
wrong type) follow the toolkit-wide rule of docs/errors.md (a plain
``TypeError``); they are fuzzed too, with that one allowance.
"""

from __future__ import annotations

import math
import shutil
from pathlib import PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError
from dictamesh_connectors.file import (
    ArgumentTypeError,
    AtomicWriter,
    FileConfig,
    FileConnector,
    FileInfo,
    FileLock,
    FileReader,
    Transaction,
)
from dictamesh_connectors.testing.conformance.fuzzing import garbage, public_methods

# What hostile callers pass: the conformance garbage, plus values aimed at this
# connector's own checks (codecs, modes, flags, sizes, paths).
ANY = st.one_of(
    garbage(),
    st.sampled_from(
        [
            "\x00",
            "utf-8\x00",
            "base64",
            "rot13",
            "bogus",
            "\ud800",
            "rb",
            "wb",
            "r",
            "d/a",
            "..",
            "/etc",
            "x.lock",
            ".dmtmp-" + "0" * 32,
            -1,
            0,
            1,
            2**63,
            2**63 - 1,
            -(2**63) - 1,
            2**400,
            math.inf,
            math.nan,
            b"a",
            bytearray(b"xy"),
            memoryview(b"abcd")[::2],  # not contiguous
            PurePosixPath("a"),
            PurePosixPath("/abs"),
        ]
    ),
)


def _reader(files, call):
    files.write_bytes("r", b"0123456789")
    with files.open("r") as src:
        call(src)


def _writer(files, call):
    with files.open("w", "wb") as out:
        out.write(b"x")
        call(out)


def _txn(files, call):
    tx = files.transaction()
    try:
        call(tx)
    finally:
        tx.rollback()


def _lock(files, a, b):
    lock = files.lock(a, timeout=b)
    lock.release()


def _consume(result):
    if isinstance(result, (FileReader, AtomicWriter)):
        result.abort() if isinstance(result, AtomicWriter) else result.close()
    elif isinstance(result, FileLock):
        result.release()
    elif isinstance(result, Transaction):
        result.rollback()


# "Class.method[:argument]" -> a call with two garbage values a and b.
CALLS = {
    "FileConnector.read_bytes": lambda f, a, b: f.read_bytes(a),
    "FileConnector.read_text": lambda f, a, b: f.read_text(a, encoding=b),
    "FileConnector.read_text:encoding": lambda f, a, b: f.read_text("r", a, b),
    "FileConnector.read_text:errors": lambda f, a, b: f.read_text("r", errors=a),
    "FileConnector.open": lambda f, a, b: _consume(f.open(a, b)),
    "FileConnector.open:mode": lambda f, a, b: _consume(f.open("w", a)),
    "FileConnector.open:overwrite": lambda f, a, b: _consume(f.open("w", "wb", overwrite=a)),
    "FileConnector.write_bytes": lambda f, a, b: f.write_bytes(a, b),
    "FileConnector.write_bytes:data": lambda f, a, b: f.write_bytes("w", a),
    "FileConnector.write_bytes:overwrite": lambda f, a, b: f.write_bytes("w", b"", overwrite=a),
    "FileConnector.write_text": lambda f, a, b: f.write_text(a, b),
    "FileConnector.write_text:codec": lambda f, a, b: f.write_text("w", "x", encoding=a, errors=b),
    "FileConnector.write_text:errors": lambda f, a, b: f.write_text("w", "\udc80", errors=a),
    "FileConnector.write_text:overwrite": lambda f, a, b: f.write_text("w", "", overwrite=a),
    "FileConnector.append": lambda f, a, b: f.append(a, b),
    "FileConnector.append:data": lambda f, a, b: f.append("w", a),
    "FileConnector.append:encoding": lambda f, a, b: f.append("w", "x", encoding=a),
    "FileConnector.list": lambda f, a, b: f.list(a, b),
    "FileConnector.list:pattern": lambda f, a, b: f.list(".", a, b),
    "FileConnector.list:recursive": lambda f, a, b: f.list(".", "*", a),
    "FileConnector.query": lambda f, a, b: f.query(a, path=b),
    "FileConnector.query:recursive": lambda f, a, b: f.query("*", recursive=a),
    "FileConnector.stat": lambda f, a, b: f.stat(a),
    "FileConnector.exists": lambda f, a, b: f.exists(a),
    "FileConnector.delete": lambda f, a, b: f.delete(a, missing_ok=True),
    "FileConnector.delete:missing_ok": lambda f, a, b: f.delete("nothing", missing_ok=a),
    "FileConnector.move": lambda f, a, b: f.move(a, b),
    "FileConnector.move:overwrite": lambda f, a, b: f.move("nothing", "other", overwrite=a),
    "FileConnector.copy": lambda f, a, b: f.copy(a, b),
    "FileConnector.copy:overwrite": lambda f, a, b: f.copy("r", "r2", overwrite=a),
    "FileConnector.mkdir": lambda f, a, b: f.mkdir(a, exist_ok=True),
    "FileConnector.mkdir:flags": lambda f, a, b: f.mkdir("d", parents=a, exist_ok=b),
    "FileConnector.rmdir": lambda f, a, b: f.rmdir(a, missing_ok=True),
    "FileConnector.rmdir:missing_ok": lambda f, a, b: f.rmdir("nothing", missing_ok=a),
    "FileConnector.lock": _lock,
    "FileConnector.lock:shared": lambda f, a, b: f.lock("l", 0, a).release(),
    "FileConnector.transaction": lambda f, a, b: _consume(f.transaction(overwrite=a)),
    "FileConnector.clean_orphans": lambda f, a, b: f.clean_orphans(a),
    "FileConnector.add_listener": lambda f, a, b: (f.add_listener(a), f.remove_listener(a)),
    "FileConnector.remove_listener": lambda f, a, b: f.remove_listener(a),
    "FileReader.read": lambda f, a, b: _reader(f, lambda r: r.read(a)),
    "FileReader.readinto": lambda f, a, b: _reader(f, lambda r: r.readinto(a)),
    "FileReader.chunks": lambda f, a, b: _reader(f, lambda r: list(r.chunks(a))),
    "FileReader.seek": lambda f, a, b: _reader(f, lambda r: (r.seek(a, b), r.read(4))),
    "FileReader.seek:offset": lambda f, a, b: _reader(f, lambda r: (r.seek(a), r.read(4))),
    "AtomicWriter.write": lambda f, a, b: _writer(f, lambda w: (w.write(a), w.write(b))),
    "AtomicWriter.writelines": lambda f, a, b: _writer(f, lambda w: w.writelines(a)),
    "AtomicWriter.copy_from": lambda f, a, b: _writer(f, lambda w: w.copy_from(a, b)),
    "Transaction.write_bytes": lambda f, a, b: _txn(f, lambda t: t.write_bytes(a, b)),
    "Transaction.write_text": lambda f, a, b: _txn(f, lambda t: t.write_text(a, b)),
    "Transaction.write_text:codec": lambda f, a, b: _txn(
        f, lambda t: t.write_text("w", "x", encoding=a, errors=b)
    ),
    "Transaction.delete": lambda f, a, b: _txn(f, lambda t: t.delete(a, missing_ok=b)),
    "FileInfo.from_stat": lambda f, a, b: FileInfo.from_stat(a, b),
    "FileInfo.from_stat:st": lambda f, a, b: FileInfo.from_stat(("a",), a),
}

# The base class's verbs: a timeout of the wrong type is its documented TypeError.
BASE_CALLS = {
    "FileConnector.ping": lambda f, a, b: f.ping(a),
    "FileConnector.disconnect": lambda f, a, b: (f.disconnect(a), f.connect()),
}

# Methods with no argument to garble (or only the connector's lifecycle).
NO_ARGUMENT = {
    "FileConnector.connect",
    "FileConnector.stats",
    "FileReader.close",
    "FileReader.readable",
    "FileReader.seekable",
    "FileReader.tell",
    "FileReader.writable",
    "AtomicWriter.abort",
    "AtomicWriter.close",
    "AtomicWriter.flush",
    "AtomicWriter.readable",
    "AtomicWriter.seekable",
    "AtomicWriter.tell",
    "AtomicWriter.writable",
    "FileLock.acquire",
    "FileLock.release",
    "Transaction.commit",
    "Transaction.rollback",
}


def test_every_public_method_is_fuzzed():
    named = {key.split(":")[0] for key in (*CALLS, *BASE_CALLS)} | NO_ARGUMENT
    for cls in (FileConnector, FileReader, AtomicWriter, FileLock, Transaction, FileInfo):
        missing = {f"{cls.__name__}.{m}" for m in public_methods(cls)} - named
        assert not missing, f"no garbage-argument entry for {sorted(missing)}"


@pytest.mark.parametrize("call", sorted(CALLS))
def test_garbage_arguments_raise_only_connector_errors(files, call):
    run = CALLS[call]

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(a=ANY, b=ANY)
    def check(a, b):
        try:
            run(files, a, b)
        except ConnectorError as err:
            assert isinstance(err.code, ErrorCode)
            if isinstance(err, TypeError):
                assert isinstance(err, ArgumentTypeError), repr(err)
        # Anything else (TypeError, ValueError, LookupError...) fails the test.

    check()


@pytest.mark.parametrize("call", sorted(BASE_CALLS))
def test_base_verbs_garbage(files, call):
    run = BASE_CALLS[call]

    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(a=ANY)
    def check(a):
        try:
            run(files, a, None)
        except (ConnectorError, TypeError):
            pass
        finally:
            if not files.is_connected:
                files.connect()

    check()


class Weird:
    """Not a path, not bytes, not a number."""


# (what, call, code, a TypeError too). Every row runs on a connector whose root
# directory was removed after connect(): any I/O would fail with NOT_FOUND
# (or CONNECTION_LOST), so the code seen proves the check came first.
INVALID = ErrorCode.INVALID_REQUEST
DENIED = ErrorCode.PERMISSION_DENIED
BEFORE_IO = [
    ("read_text NUL encoding", lambda f: f.read_text("a", encoding="\x00"), INVALID, False),
    ("read_text NUL in encoding", lambda f: f.read_text("a", encoding="utf-8\x00"), INVALID, False),
    ("read_text unknown encoding", lambda f: f.read_text("a", encoding="bogus"), INVALID, False),
    ("read_text bytes codec", lambda f: f.read_text("a", encoding="base64"), INVALID, False),
    ("read_text str codec", lambda f: f.read_text("a", encoding="rot13"), INVALID, False),
    ("read_text surrogate encoding", lambda f: f.read_text("a", encoding="\ud800"), INVALID, False),
    ("read_text encoding None", lambda f: f.read_text("a", encoding=None), INVALID, True),
    ("read_text NUL errors", lambda f: f.read_text("a", errors="\x00"), INVALID, False),
    ("read_text unknown errors", lambda f: f.read_text("a", errors="bogus"), INVALID, False),
    ("read_text errors int", lambda f: f.read_text("a", errors=1), INVALID, True),
    ("write_text NUL encoding", lambda f: f.write_text("a", "x", encoding="\x00"), INVALID, False),
    ("write_text unknown errors", lambda f: f.write_text("a", "x", errors="nope"), INVALID, False),
    ("write_text bytes", lambda f: f.write_text("a", b"x"), INVALID, True),
    ("append NUL encoding", lambda f: f.append("a", "x", encoding="\x00"), INVALID, False),
    ("append int data", lambda f: f.append("a", 5), INVALID, True),
    ("write_bytes str", lambda f: f.write_bytes("a", "x"), INVALID, True),
    ("write_bytes int", lambda f: f.write_bytes("a", 5), INVALID, True),
    (
        "write_bytes strided view",
        lambda f: f.write_bytes("a", memoryview(b"abcd")[::2]),
        INVALID,
        True,
    ),
    ("write_bytes overwrite str", lambda f: f.write_bytes("a", b"", overwrite="no"), INVALID, True),
    ("open mode int", lambda f: f.open("a", 5), INVALID, True),
    ("open mode 'r'", lambda f: f.open("a", "r"), INVALID, False),
    ("open overwrite None", lambda f: f.open("a", "wb", overwrite=None), INVALID, True),
    ("path int", lambda f: f.read_bytes(5), INVALID, True),
    ("path bytes", lambda f: f.read_bytes(b"a"), INVALID, True),
    ("path None", lambda f: f.stat(None), INVALID, True),
    ("path object", lambda f: f.exists(Weird()), INVALID, True),
    ("path NUL", lambda f: f.read_bytes("a\x00b"), DENIED, False),
    ("path absolute", lambda f: f.write_bytes("/etc/x", b""), DENIED, False),
    ("path ..", lambda f: f.delete("a/../b"), DENIED, False),
    ("path PathLike absolute", lambda f: f.stat(PurePosixPath("/etc")), DENIED, False),
    ("path too long", lambda f: f.read_bytes("a" * 5000), INVALID, False),
    ("name too long", lambda f: f.read_bytes("a" * 300), INVALID, False),
    ("path surrogate", lambda f: f.read_bytes("\ud800"), INVALID, False),
    ("list pattern int", lambda f: f.list(".", 5), INVALID, True),
    ("list recursive str", lambda f: f.list(".", "*", "yes"), INVALID, True),
    ("query recursive None", lambda f: f.query("*", recursive=None), INVALID, True),
    ("delete missing_ok int", lambda f: f.delete("a", missing_ok=1), INVALID, True),
    ("move overwrite str", lambda f: f.move("a", "b", overwrite="x"), INVALID, True),
    ("copy overwrite list", lambda f: f.copy("a", "b", overwrite=[]), INVALID, True),
    ("mkdir parents str", lambda f: f.mkdir("a", parents="x"), INVALID, True),
    ("mkdir exist_ok None", lambda f: f.mkdir("a", exist_ok=None), INVALID, True),
    ("rmdir missing_ok str", lambda f: f.rmdir("a", missing_ok="x"), INVALID, True),
    ("lock timeout str", lambda f: f.lock("a", timeout="1"), INVALID, True),
    ("lock timeout negative", lambda f: f.lock("a", timeout=-1), INVALID, False),
    ("lock timeout NaN", lambda f: f.lock("a", timeout=math.nan), INVALID, False),
    ("lock shared str", lambda f: f.lock("a", shared="x"), INVALID, True),
    ("transaction overwrite int", lambda f: f.transaction(overwrite=0), INVALID, True),
    ("clean_orphans path float", lambda f: f.clean_orphans(1.5), INVALID, True),
]


@pytest.mark.parametrize("row", BEFORE_IO, ids=[row[0] for row in BEFORE_IO])
def test_bad_arguments_refused_before_any_io(tmp_path, row):
    _, call, code, is_type = row
    root = tmp_path / "gone"
    root.mkdir()
    files = FileConnector(FileConfig(root=str(root)))
    files.connect()
    try:
        shutil.rmtree(root)  # from here on, any I/O fails (the descriptor names a dead directory)
        with pytest.raises(ConnectorError) as info:
            call(files)
        assert info.value.code is code, info.value
        assert isinstance(info.value, TypeError) is is_type
        assert not isinstance(info.value, InvalidConfigError)  # a request, not the config
        assert str(tmp_path) not in str(info.value)
    finally:
        files.disconnect()


def test_reader_and_writer_arguments_refused(files):
    files.write_bytes("r", b"0123456789")
    with files.open("r") as src:
        for bad in ("1", 1.5, [1], None):
            with pytest.raises(ArgumentTypeError):
                src.seek(bad)
        with pytest.raises(ArgumentTypeError):
            src.seek(0, "end")
        with pytest.raises(ConnectorError) as info:
            src.seek(0, 7)
        assert info.value.code is INVALID
        with pytest.raises(ConnectorError) as info:
            src.seek(2**63)
        assert info.value.code is INVALID
        with pytest.raises(ArgumentTypeError):
            src.read("4")
        with pytest.raises(ArgumentTypeError):
            src.read(4.0)
        with pytest.raises(ArgumentTypeError):
            src.readinto(b"immutable")
        with pytest.raises(ArgumentTypeError):
            src.readinto(memoryview(bytearray(8))[::2])
        with pytest.raises(ArgumentTypeError):
            src.chunks("4")  # at the call, not at the first chunk
        with pytest.raises(ConnectorError) as info:
            src.chunks(0)  # would yield nothing and hide the content
        assert info.value.code is INVALID
        assert src.read(2**400) == b"0123456789"  # a huge size reads what there is
        src.seek(0)
        assert list(src.chunks(4)) == [b"0123", b"4567", b"89"]
    with files.open("w", "wb") as out:
        with pytest.raises(ArgumentTypeError):
            out.write("str")
        with pytest.raises(ArgumentTypeError):
            out.write(memoryview(b"abcd")[::2])
        with pytest.raises(ArgumentTypeError):
            out.writelines(5)
        with pytest.raises(ArgumentTypeError):
            out.copy_from("3", 1)
        with pytest.raises(ConnectorError) as info:
            out.copy_from(-1, 1)
        assert info.value.code is INVALID
        out.write(b"ok")
    assert files.read_bytes("w") == b"ok"


def test_argument_type_error_is_both_and_pickles():
    import pickle

    err = ArgumentTypeError("file: read: a path must be a str, not int", connector="file")
    assert isinstance(err, ConnectorError) and isinstance(err, TypeError)
    assert err.code is INVALID and not err.transient
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ArgumentTypeError and back.code is INVALID and str(back) == str(err)
