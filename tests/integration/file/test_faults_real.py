"""Faults produced for real on small mounted file systems: ENOSPC, EROFS, EPERM.

Mounting needs privileges; outside CI a refused mount skips with the
reason (in CI, a skipped integration test is a failure: tests/conftest.py).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.file import FileConfig, FileConnector

pytestmark = pytest.mark.integration


def _mount(target: Path, *options: str) -> None:
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip() or 'refused'}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    target = tmp_path / "small"
    target.mkdir()
    _mount(target, "size=1m", "mode=0755")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def code_of(fn) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        fn()
    return info.value


def test_enospc_leaves_the_old_file_and_no_temporary_file(small_fs):
    files = FileConnector(FileConfig(root=str(small_fs), retry=1))
    with files:
        files.write_bytes("kept", b"old content")
        err = code_of(lambda: files.write_bytes("kept", b"x" * (2 << 20)))
        assert err.code is ErrorCode.RESOURCE_EXHAUSTED and err.transient
        assert err.details["errno"] == "ENOSPC"
        assert not err.maybe_applied  # nothing happened: safe to retry
        assert files.read_bytes("kept") == b"old content"
        assert os.listdir(small_fs) == ["kept"]
        with pytest.raises(ConnectorError) as info, files.open("streamed", "wb") as out:
            for _ in range(40):
                out.write(b"y" * (64 << 10))
        assert info.value.code is ErrorCode.RESOURCE_EXHAUSTED
        assert os.listdir(small_fs) == ["kept"]
        err = code_of(lambda: files.append("kept", b"z" * (2 << 20)))
        assert err.code is ErrorCode.RESOURCE_EXHAUSTED and err.maybe_applied


def test_enospc_is_retried_for_atomic_writes(small_fs):
    files = FileConnector(FileConfig(root=str(small_fs), retry={"max_attempts": 3}))
    sleeps: list[float] = []
    files._sleep = sleeps.append  # no real waiting
    with files:
        err = code_of(lambda: files.write_bytes("big", b"x" * (2 << 20)))
        assert err.code is ErrorCode.RESOURCE_EXHAUSTED
        assert len(sleeps) == 2  # three attempts, all-or-nothing each
        assert os.listdir(small_fs) == []


def test_a_read_only_file_system_is_permission_denied(tmp_path):
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    target = tmp_path / "ro"
    target.mkdir()
    _mount(target, "size=1m")
    try:
        (target / "f").write_text("x")
        remount = subprocess.run(
            ["mount", "-o", "remount,ro", str(target)], capture_output=True, text=True
        )
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        files = FileConnector(FileConfig(root=str(target)))
        with files:
            assert files.read_text("f") == "x"
            err = code_of(lambda: files.write_text("g", "y"))
            assert err.code is ErrorCode.PERMISSION_DENIED
            assert err.details["errno"] == "EROFS"
            assert code_of(files.ping).code is ErrorCode.PERMISSION_DENIED
        with FileConnector(FileConfig(root=str(target), read_only=True)) as reader:
            reader.ping()  # read-only connector on a read-only file system: healthy
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_an_immutable_file_is_permission_denied_even_for_root(files, root):
    if shutil.which("chattr") is None:
        pytest.skip("no chattr command")
    files.write_text("frozen", "x")
    made = subprocess.run(["chattr", "+i", str(root / "frozen")], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot set the immutable flag here: {made.stderr.strip()}")
    try:
        err = code_of(lambda: files.delete("frozen"))
        assert err.code is ErrorCode.PERMISSION_DENIED
        assert err.details["errno"] == errno.errorcode[errno.EPERM]
    finally:
        subprocess.run(["chattr", "-i", str(root / "frozen")], check=False)
