"""Fixtures: a connected FileConnector on a fresh root, beside an ``outside`` directory.

``files`` and ``following`` run every test twice: with the kernel's
``openat2`` fast path (where this kernel has it) and with the
component-by-component walk alone, so both resolvers meet every case.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dictamesh_connectors.file import FileConfig, FileConnector, beneath


def openat2_works(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return beneath.load(fd) is not None
    finally:
        os.close(fd)


@pytest.fixture(params=["openat2", "walk"])
def resolver(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    if request.param == "walk":
        monkeypatch.setattr(beneath, "enabled", False)
    elif not openat2_works(tmp_path):
        pytest.skip("this kernel (or its seccomp filter) has no openat2: the walk alone runs")
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("outside the root")
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def files(root: Path, resolver: str) -> Iterator[FileConnector]:
    connector = FileConnector(FileConfig(root=str(root)))
    connector.connect()
    yield connector
    connector.disconnect()


@pytest.fixture
def following(root: Path, resolver: str) -> Iterator[FileConnector]:
    connector = FileConnector(FileConfig(root=str(root), follow_symlinks=True))
    connector.connect()
    yield connector
    connector.disconnect()
