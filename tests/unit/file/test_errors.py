"""The errno table: every row, the drawn table kept in step, real faults, pickling."""

from __future__ import annotations

import errno
import os
import pickle
import re

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, RetryHint
from dictamesh_connectors.file import errors as file_errors
from dictamesh_connectors.file.errors import ERRNO_RULES, classify, translate

ISSUE_TABLE = {
    "ENOENT": (ErrorCode.NOT_FOUND, False),
    "EEXIST": (ErrorCode.CONFLICT, False),
    "EACCES": (ErrorCode.PERMISSION_DENIED, False),
    "EPERM": (ErrorCode.PERMISSION_DENIED, False),
    "ENOSPC": (ErrorCode.RESOURCE_EXHAUSTED, True),
    "EDQUOT": (ErrorCode.RESOURCE_EXHAUSTED, True),
    "EISDIR": (ErrorCode.INVALID_REQUEST, False),
    "ENOTDIR": (ErrorCode.INVALID_REQUEST, False),
    "ENAMETOOLONG": (ErrorCode.INVALID_REQUEST, False),
    "EIO": (ErrorCode.CONNECTION_LOST, True),
}


@pytest.mark.parametrize("name", sorted(ISSUE_TABLE))
def test_issue_rows(name):
    code, transient = ISSUE_TABLE[name]
    number = getattr(errno, name)
    err = classify(OSError(number, os.strerror(number)), operation="write", path="a/b")
    assert (err.code, err.transient) == (code, transient)
    assert err.connector == "file"
    assert err.details["errno"] == name
    assert err.message == f"file: write 'a/b': {os.strerror(number)}"


def test_eio_reconnects_and_full_disks_retry():
    eio = classify(OSError(errno.EIO, "I/O error"), operation="read", path="x")
    assert eio.retry_hint is RetryHint.RECONNECT
    full = classify(OSError(errno.ENOSPC, "full"), operation="write", path="x")
    assert full.retry_hint is RetryHint.RETRY


def test_the_drawn_table_matches_the_rules():
    """Each errno row of the docstring names the code ERRNO_RULES gives it."""
    doc = file_errors.__doc__ or ""
    rows = re.findall(
        r"^\s*\|\s+([A-Z][A-Z/, ]+?) \.+ ([A-Z_]+)\s+(transient|permanent)", doc, re.M
    )
    assert len(rows) >= 15
    seen = set()
    for names, code, kind in rows:
        for name in re.split(r"[,/ ]+", names.strip()):
            if not hasattr(errno, name):
                continue
            rule = ERRNO_RULES[getattr(errno, name)]
            assert rule.code.value == code, name
            assert rule.transient == (kind == "transient"), name
            seen.add(getattr(errno, name))
    assert seen == set(ERRNO_RULES), set(ERRNO_RULES) - seen


def test_unknown_errno_falls_back_by_direction():
    odd = OSError(errno.ENOEXEC, "Exec format error")
    assert classify(odd, operation="read", path="x").code is ErrorCode.QUERY_FAILED
    assert classify(odd, operation="write", path="x", write=True).code is ErrorCode.EXEC_FAILED
    assert classify(OSError("no errno"), operation="read", path="x").code is ErrorCode.QUERY_FAILED


def test_non_os_errors_pass_through():
    assert classify(KeyError("x"), operation="read", path="x") is None
    with pytest.raises(ValueError), translate("read", "x"):
        raise ValueError("a programming error")


def test_translate_keeps_the_cause_and_drops_the_absolute_file_name(tmp_path):
    with pytest.raises(ConnectorError) as info, translate("read", "inbox/a.csv"):
        open(tmp_path / "missing")  # noqa: SIM115
    err = info.value
    assert err.code is ErrorCode.NOT_FOUND
    assert isinstance(err.__cause__, FileNotFoundError)
    assert err.__cause__.filename is None
    assert str(tmp_path) not in str(err) + repr(err) + str(err.__cause__)


def test_codec_errors_never_quote_the_data():
    try:
        b"\xffsecret-bytes".decode("utf-8")
    except UnicodeDecodeError as exc:
        err = classify(exc, operation="read", path="a")
    assert err.code is ErrorCode.SERIALIZATION_ERROR
    assert "secret" not in err.message


def test_errors_pickle_with_every_attribute():
    err = classify(OSError(errno.ENOSPC, "full"), operation="write", path="a", maybe_applied=True)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.code, copy.transient, copy.retry_hint, copy.maybe_applied, copy.details) == (
        err.code,
        err.transient,
        err.retry_hint,
        err.maybe_applied,
        err.details,
    )
    assert str(copy) == str(err)


# --------------------------------------------------------------- real faults


def code_of(fn) -> ErrorCode:
    with pytest.raises(ConnectorError) as info:
        fn()
    assert "/" + "tmp" not in str(info.value), info.value  # relative paths only
    return info.value.code


def test_real_faults(files, root):
    files.write_text("a.txt", "x")
    files.mkdir("d")
    files.write_text("d/inner", "y")
    assert code_of(lambda: files.read_bytes("missing")) is ErrorCode.NOT_FOUND
    assert code_of(lambda: files.write_text("a.txt", "z", overwrite=False)) is ErrorCode.CONFLICT
    assert code_of(lambda: files.mkdir("d")) is ErrorCode.CONFLICT
    assert code_of(lambda: files.read_bytes("a.txt/x")) is ErrorCode.INVALID_REQUEST  # ENOTDIR
    assert code_of(lambda: files.read_bytes("d")) is ErrorCode.INVALID_REQUEST  # EISDIR
    assert code_of(lambda: files.write_text("d", "z")) is ErrorCode.INVALID_REQUEST  # EISDIR
    assert code_of(lambda: files.rmdir("d")) is ErrorCode.CONFLICT  # ENOTEMPTY
    assert code_of(lambda: files.delete("d")) is ErrorCode.INVALID_REQUEST
    assert code_of(lambda: files.read_bytes("x" * 256)) is ErrorCode.INVALID_REQUEST
    assert code_of(lambda: files.list("a.txt")) is ErrorCode.INVALID_REQUEST
    assert code_of(lambda: files.write_text("nodir/a", "z")) is ErrorCode.NOT_FOUND
    assert code_of(lambda: files.read_text("a.txt", encoding="nope")) is ErrorCode.INVALID_REQUEST
    files.write_bytes("bad", b"\xff")
    assert code_of(lambda: files.read_text("bad")) is ErrorCode.SERIALIZATION_ERROR
    assert code_of(lambda: files.write_text("e", "\ud800")) is ErrorCode.SERIALIZATION_ERROR


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_real_eacces(files, root):
    (root / "locked").mkdir()
    (root / "locked").chmod(0)
    try:
        assert code_of(lambda: files.list("locked")) is ErrorCode.PERMISSION_DENIED
    finally:
        (root / "locked").chmod(0o755)
