"""Commit journals: what recovery finishes, what it refuses, what it leaves alone."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path

import pytest

from dictamesh_connectors.file import FileConfig, FileConnector
from dictamesh_connectors.file.paths import JOURNAL_PREFIX, TEMP_PREFIX

TOKEN = "0123456789abcdef0123456789abcdef"


def plant(root: Path, ops: list[dict], *, token: str = TOKEN, overwrite: bool = True) -> Path:
    journal = root / (JOURNAL_PREFIX + token)
    journal.write_text(json.dumps({"version": 1, "overwrite": overwrite, "ops": ops}))
    return journal


def staged(directory: Path, data: bytes, token: str) -> str:
    name = TEMP_PREFIX + token
    (directory / name).write_bytes(data)
    return name


def test_connect_finishes_a_dead_commit(root: Path, caplog: pytest.LogCaptureFixture):
    (root / "d").mkdir()
    (root / "d" / "old").write_bytes(b"old")
    (root / "gone").write_bytes(b"delete me")
    st = os.stat(root / "gone")
    temp = staged(root / "d", b"new", "1" * 32)
    plant(
        root,
        [
            {"dir": ["d"], "temp": temp, "name": "old"},
            {"dir": [], "delete": "gone", "ino": st.st_ino, "ctime_ns": st.st_ctime_ns},
            {"dir": ["d"], "temp": TEMP_PREFIX + "2" * 32, "name": "renamed-before-the-crash"},
        ],
    )
    with caplog.at_level(logging.WARNING), FileConnector(FileConfig(root=str(root))) as files:
        assert files.read_bytes("d/old") == b"new"
        assert not files.exists("gone")
    assert sorted(p.name for p in root.rglob(".dm*")) == []
    assert "finished a commit interrupted by a crash" in caplog.text


def test_a_replayed_delete_spares_a_newer_file_of_that_name(root: Path):
    (root / "f").write_bytes(b"the commit saw this one")
    st = os.stat(root / "f")
    (root / "f").unlink()
    (root / "f").write_bytes(b"a later writer's file")  # new inode (or at least new ctime)
    plant(root, [{"dir": [], "delete": "f", "ino": st.st_ino, "ctime_ns": st.st_ctime_ns - 1}])
    with FileConnector(FileConfig(root=str(root))) as files:
        assert files.read_bytes("f") == b"a later writer's file"
    assert not list(root.glob(".dmtxn-*"))


def test_a_live_commit_is_left_alone(root: Path):
    temp = staged(root, b"new", "3" * 32)
    journal = plant(root, [{"dir": [], "temp": temp, "name": "f"}])
    fd = os.open(journal, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as its committer holds it
        with FileConnector(FileConfig(root=str(root))) as files:
            assert not files.exists("f")
        assert journal.exists() and (root / temp).exists()
    finally:
        os.close(fd)
    with FileConnector(FileConfig(root=str(root))) as files:  # its committer died
        assert files.read_bytes("f") == b"new"


@pytest.mark.parametrize(
    "ops",
    [
        [{"dir": [".."], "temp": TEMP_PREFIX + "4" * 32, "name": "f"}],  # out of the root
        [{"dir": [], "temp": "not-ours", "name": "f"}],  # not one of our temporary files
        [{"dir": [], "temp": TEMP_PREFIX + "4" * 32, "name": "../f"}],
        [{"dir": [], "delete": "f"}],  # no inode to check
        "not a list",
    ],
)
def test_a_journal_we_did_not_write_is_ignored_and_kept(root: Path, tmp_path: Path, ops, caplog):
    (root / (TEMP_PREFIX + "4" * 32)).write_bytes(b"x")
    journal = plant(root, ops)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING), FileConnector(FileConfig(root=str(root))) as files:
        assert files.list() == []
    assert journal.exists()
    assert not (tmp_path / "f").exists() and not (root / "f").exists()
    assert "ignoring the unreadable commit journal" in caplog.text


def test_a_read_only_connector_recovers_nothing(root: Path):
    temp = staged(root, b"new", "5" * 32)
    journal = plant(root, [{"dir": [], "temp": temp, "name": "f"}])
    with FileConnector(FileConfig(root=str(root), read_only=True)) as files:
        assert not files.exists("f")
    assert journal.exists()


def test_the_orphan_cleaner_never_removes_a_journal(root: Path):
    # One recovery cannot use (so it stays), unlocked and old: only its
    # name keeps the cleaner off it.
    journal = plant(root, "not a list")  # type: ignore[arg-type]
    orphan = root / staged(root, b"a dead writer's", "6" * 32)
    an_hour_ago = os.stat(root).st_mtime - 3600
    for path in (journal, orphan):
        os.utime(path, (an_hour_ago, an_hour_ago))
    with FileConnector(FileConfig(root=str(root), orphan_age=1)) as files:
        assert files.clean_orphans() == 1
    assert journal.exists() and not orphan.exists()
