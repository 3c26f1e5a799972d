"""A transaction's commit killed (SIGKILL) at every step: a fresh connector sees all or none.

The child stages three writes in three directories and a delete, then
commits with every state-changing or durability call of ``os`` counted
(open, write, fsync, fdatasync, rename, link, unlink); run K kills itself
just before call K. For each K a fresh connector opens the root (which
finishes a commit whose journal is in place) and must see either every
change or none, with nothing stray listed and no journal left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dictamesh_connectors.file import FileConfig, FileConnector

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]

REPO = Path(__file__).resolve().parents[3]

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from dictamesh_connectors.file import FileConfig, FileConnector

    root, crash_at, fsync = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    files = FileConnector(FileConfig(root=root, fsync=fsync))
    files.connect()
    state = {"armed": False, "calls": 0}

    def counted(name):
        real = getattr(os, name)

        def call(*args, **kwargs):
            if state["armed"]:
                state["calls"] += 1
                if state["calls"] == crash_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        setattr(os, name, call)

    for name in ("open", "write", "fsync", "fdatasync", "rename", "link", "unlink"):
        counted(name)
    with files.transaction() as tx:
        tx.write_bytes("a/one", b"new one")
        tx.write_bytes("b/c/two", b"new two")
        tx.write_bytes("three", b"new three")
        tx.delete("gone")
        state["armed"] = True  # the commit runs as the block ends
    state["armed"] = False
    print(state["calls"], flush=True)
    """
)

OLD = {"a/one": b"old one", "b/c/two": b"old two", "three": None, "gone": b"to be deleted"}
NEW = {"a/one": b"new one", "b/c/two": b"new two", "three": b"new three", "gone": None}


def lay_out(root: Path) -> None:
    for path, data in OLD.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        if data is not None:
            target.write_bytes(data)


def hidden(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".dm*"))


def seen(files: FileConnector) -> dict[str, bytes | None]:
    return {path: files.read_bytes(path) if files.exists(path) else None for path in OLD}


def child(root: Path, crash_at: int, fsync: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(crash_at), "1" if fsync else "0"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("fsync", [True, False])
def test_a_commit_killed_at_any_step_is_all_or_nothing(root: Path, fsync: bool):
    lay_out(root)
    clean = child(root, 0, fsync)
    assert clean.returncode == 0, clean.stderr
    steps = int(clean.stdout.split()[-1])
    assert steps >= 8, steps  # journal, renames, delete, fsyncs: a real sweep
    with FileConnector(FileConfig(root=str(root))) as files:
        assert seen(files) == NEW
    outcomes = {"none": 0, "all": 0}
    for crash_at in range(1, steps + 1):
        for leftover in hidden(root):
            (root / leftover).unlink()
        lay_out(root)
        done = child(root, crash_at, fsync)
        assert done.returncode == -signal.SIGKILL, (crash_at, done.returncode, done.stderr)
        files = FileConnector(FileConfig(root=str(root), orphan_age=60))
        with files:
            state = seen(files)
            assert state in (OLD, NEW), (crash_at, state)
            outcomes["all" if state == NEW else "none"] += 1
            listed = [info.path for info in files.list(recursive=True) if info.is_file]
            assert sorted(listed) == sorted(p for p, data in state.items() if data is not None)
            journals = [p for p in hidden(root) if Path(p).name.startswith(".dmtxn-")]
            assert journals == [], (crash_at, journals)  # finished (or never committed)
            an_hour_ago = os.stat(root).st_mtime - 3600
            for orphan in hidden(root):  # a dead commit's staged files, if it died before
                os.utime(root / orphan, (an_hour_ago, an_hour_ago))
            files.write_bytes("a/sweep", b"x")  # a write removes dead staged files
            files.write_bytes("b/c/sweep", b"x")
            files.write_bytes("sweep", b"x")
            assert hidden(root) == [], (crash_at, hidden(root))
        for path in ("a/sweep", "b/c/sweep", "sweep"):
            (root / path).unlink()
    # The sweep crossed the commit point: some kills left none, later ones all.
    assert outcomes["none"] and outcomes["all"], outcomes
