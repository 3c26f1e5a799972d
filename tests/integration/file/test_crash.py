"""SIGKILL in the middle of a 200 MB atomic write: old content survives, nothing stray listed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dictamesh_connectors.file import FileConfig, FileConnector

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
SIZE = 200 * 1024 * 1024

WRITER = textwrap.dedent(
    """
    import sys
    from dictamesh_connectors.file import FileConfig, FileConnector

    files = FileConnector(FileConfig(root=sys.argv[1]))
    files.connect()
    if sys.argv[2] == "write_bytes":
        files.write_bytes("data.bin", b"n" * {size})
    else:
        with files.open("data.bin", "wb") as out:
            chunk = b"n" * (1 << 20)
            for _ in range({size} >> 20):
                out.write(chunk)
    print("committed", flush=True)
    """
).format(size=SIZE)


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(".dmtmp-")]


@pytest.mark.parametrize("how", ["write_bytes", "open"])
def test_sigkill_mid_write_leaves_the_old_content_and_lists_nothing_stray(root, how):
    old = b"the old content\n" * 1000
    (root / "data.bin").write_bytes(old)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), how], env=env, stdout=subprocess.PIPE
    )
    try:
        # Kill it once its temporary file holds a good part of the 200 MB.
        while True:
            assert child.poll() is None, "the writer finished before it could be killed"
            partial = [p for p in temp_files(root) if p.stat().st_size > 20 * 1024 * 1024]
            if partial:
                break
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert hashlib.sha256((root / "data.bin").read_bytes()).digest() == hashlib.sha256(old).digest()
    orphans = temp_files(root)
    assert len(orphans) == 1  # the orphan is on disk...
    files = FileConnector(FileConfig(root=str(root), orphan_age=60))
    with files:
        assert [i.path for i in files.list()] == ["data.bin"]  # ...but never listed
        assert files.read_bytes("data.bin") == old
        files.write_text("other", "a write while the orphan is young")
        assert temp_files(root) == orphans  # too young to be removed
    an_hour_ago = time.time() - 3600
    os.utime(orphans[0], (an_hour_ago, an_hour_ago))
    with FileConnector(FileConfig(root=str(root), orphan_age=60)) as files:
        files.write_text("another", "a later write in the same directory")
        assert temp_files(root) == []  # the dead writer's file is gone
        assert files.read_bytes("data.bin") == old
