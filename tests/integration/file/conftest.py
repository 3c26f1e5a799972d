"""Fixtures for the file connector's multi-thread, multi-process and fault tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dictamesh_connectors.file import FileConfig, FileConnector


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def files(root: Path) -> Iterator[FileConnector]:
    connector = FileConnector(FileConfig(root=str(root)))
    connector.connect()
    yield connector
    connector.disconnect()


def open_fds() -> set[str]:
    """This process's open descriptors (Linux)."""
    return set(Path("/proc/self/fd").iterdir()) if Path("/proc/self/fd").exists() else set()
