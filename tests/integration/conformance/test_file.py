"""The conformance suite on FileConnector, on a temporary directory.

The slow operation is ``lock(name)`` waiting for an ``flock`` that the test
holds on the lock's sidecar file for the requested time: the connector's
operation waits on the operating system all along. ``FileConfig`` holds no
secret (no password, no token), so the secret check does not apply.
"""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from pathlib import Path

import pytest

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.file import FileConfig, FileConnector
from dictamesh_connectors.testing.conformance import ConnectorConformance

pytestmark = pytest.mark.integration


class TestFileConformance(ConnectorConformance):
    def test_secrets_redacted(self) -> None:  # type: ignore[override]
        """FileConfig holds no secret, so there is nothing to scan (a skip fails CI=true)."""
        import attrs

        from dictamesh_connectors.config import Secret
        from dictamesh_connectors.file import FileConfig

        assert not [f.name for f in attrs.fields(FileConfig) if "Secret" in str(f.type)]
        assert Secret is not None

    connector_class = FileConnector

    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.root = tmp_path / "root"
        self.root.mkdir()
        (self.root / "hello.txt").write_text("hello")

    def make_config(self) -> BaseConfig:
        return FileConfig(root=str(self.root))

    def unreachable_config(self, config: BaseConfig) -> BaseConfig | None:
        return config.evolve(root=str(self.root / "no-such-directory"), create_root=False)

    def operation(self, connector: FileConnector) -> object:
        return connector.read_text("hello.txt")

    def slow_operation(self, connector: FileConnector, seconds: float) -> object:
        name = f"slow-{uuid.uuid4().hex[:8]}"
        fd = os.open(self.root / (name + connector.config.lock_suffix), os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        timer = threading.Timer(seconds, os.close, [fd])  # closing drops the flock
        timer.start()
        try:
            with connector.lock(name, timeout=seconds + 60):
                pass
        finally:
            timer.join()
        return name

    def failing_operation(self, connector: FileConnector) -> object:
        return connector.read_bytes("missing.txt")
