"""A directory swapped for a symlink to outside, 10,000 times, while a thread writes through it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.file import FileConfig, FileConnector

pytestmark = pytest.mark.integration

ITERATIONS = 10_000


@pytest.mark.parametrize("follow", [False, True])
def test_swapping_a_directory_for_a_symlink_never_lets_a_write_out(tmp_path: Path, follow: bool):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    files = FileConnector(FileConfig(root=str(root), follow_symlinks=follow, fsync=False))
    files.connect()
    stop = threading.Event()
    swaps = [0]

    def swapper() -> None:
        d, real = root / "d", root / "d.real"
        while not stop.is_set():
            os.rename(d, real)
            os.symlink(outside, d)  # an absolute link leading out of the root
            swaps[0] += 1
            os.unlink(d)
            os.rename(real, d)

    thread = threading.Thread(target=swapper)
    thread.start()
    outcomes = {"written": 0, "refused": 0, "missing": 0}
    try:
        for i in range(ITERATIONS):
            try:
                files.write_bytes(f"d/f{i % 16}", b"%d" % i)
                outcomes["written"] += 1
            except ConnectorError as err:
                if err.code is ErrorCode.PERMISSION_DENIED:
                    outcomes["refused"] += 1  # met the symlink: refused, not followed
                elif err.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_REQUEST):
                    outcomes["missing"] += 1  # met the gap between rename and symlink
                else:
                    raise
    finally:
        stop.set()
        thread.join()
        files.disconnect()
    assert list(outside.iterdir()) == []  # nothing was ever written outside
    assert outcomes["written"] > 0
    assert outcomes["refused"] + outcomes["missing"] > 0, (outcomes, swaps)
    assert [p.name for p in (root / "d").iterdir() if p.name.startswith(".")] == []
