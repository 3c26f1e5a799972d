"""Fixtures: a connected FileConnector on a fresh root, beside an ``outside`` directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dictamesh_connectors.file import FileConfig, FileConnector


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("outside the root")
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def files(root: Path) -> Iterator[FileConnector]:
    connector = FileConnector(FileConfig(root=str(root)))
    connector.connect()
    yield connector
    connector.disconnect()


@pytest.fixture
def following(root: Path) -> Iterator[FileConnector]:
    connector = FileConnector(FileConfig(root=str(root), follow_symlinks=True))
    connector.connect()
    yield connector
    connector.disconnect()
