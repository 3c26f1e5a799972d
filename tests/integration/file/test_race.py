"""A directory swapped for a symlink to outside, 10,000 times, while writes go through it.

Run with each resolver: the kernel's ``openat2`` (one call for ``d/e/f``)
and the component walk alone; and at two depths, since a path of one
directory is walked even where ``openat2`` exists.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.file import FileConfig, FileConnector, beneath

pytestmark = pytest.mark.integration

ITERATIONS = 10_000
FORK = multiprocessing.get_context("fork")


def swap_forever(root: Path, outside: Path, stop) -> None:
    # A process of its own: it races the writer on another CPU, and the
    # writer's thread cannot starve it of the GIL.
    d, real = root / "d", root / "d.real"
    while not stop.is_set():
        os.rename(d, real)
        os.symlink(outside, d)  # an absolute link leading out of the root
        os.unlink(d)
        os.rename(real, d)


@pytest.mark.parametrize("follow", [False, True])
@pytest.mark.parametrize(("resolver", "below"), [("openat2", "e/"), ("walk", "e/"), ("walk", "")])
def test_swapping_a_directory_for_a_symlink_never_lets_a_write_out(
    tmp_path: Path, follow: bool, resolver: str, below: str, monkeypatch: pytest.MonkeyPatch
):
    outside = tmp_path / "outside"
    (outside / "e").mkdir(parents=True)
    (outside / "e" / "bait").write_bytes(b"outside")
    root = tmp_path / "root"
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "e" / "bait").write_bytes(b"inside")
    if resolver == "walk":
        monkeypatch.setattr(beneath, "enabled", False)
    files = FileConnector(FileConfig(root=str(root), follow_symlinks=follow, fsync=False))
    files.connect()
    if resolver == "openat2" and files._handle.sandbox.beneath is None:
        files.disconnect()
        pytest.skip("this kernel (or its seccomp filter) has no openat2")
    stop = FORK.Event()
    swapper = FORK.Process(target=swap_forever, args=(root, outside, stop))
    swapper.start()
    outcomes = {"written": 0, "refused": 0, "missing": 0}
    i = 0
    try:
        # At least 10,000 writes, and on until both sides of the race were met
        # (a loaded machine may schedule the swapper late), within a bound.
        while i < ITERATIONS or not (outcomes["written"] and outcomes["refused"]):
            assert i < 20 * ITERATIONS, outcomes
            try:
                files.write_bytes(f"d/{below}f{i % 16}", b"%d" % i)
                if below:
                    assert files.read_bytes("d/e/bait") == b"inside"  # never the outside one
                outcomes["written"] += 1
            except ConnectorError as err:
                if err.code is ErrorCode.PERMISSION_DENIED:
                    outcomes["refused"] += 1  # met the symlink: refused, not followed
                elif err.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_REQUEST):
                    outcomes["missing"] += 1  # met the gap between rename and symlink
                else:
                    raise
            i += 1
    finally:
        stop.set()
        swapper.join()
        files.disconnect()
    assert swapper.exitcode == 0
    assert sorted(p.name for p in outside.rglob("*")) == ["bait", "e"]  # nothing written outside
    assert (outside / "e" / "bait").read_bytes() == b"outside"
    assert [p.name for p in (root / "d").rglob(".*")] == []
