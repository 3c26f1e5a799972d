"""Connectors that each break one rule of the base contract (the suite must catch each).

Each subclasses ``MemoryConnector``; ``test_conformance`` runs the matching
conformance check on it in a pytest subprocess and expects that check to fail.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import attrs

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.errors import ConnectorError, ErrorCode

from .memory_connector import MemoryConfig, MemoryConnector


class BrokenLockConnector(MemoryConnector):
    """Holds the connector lock while it waits on the "server"."""

    def wait(self, seconds: float) -> None:
        def run(handle: dict[str, Any]) -> None:
            with self._lock:
                time.sleep(seconds)

        self._run(run, idempotent=False, description="wait")


class BrokenReprConnector(MemoryConnector):
    """Shows its password in repr()."""

    def __repr__(self) -> str:
        return f"<BrokenReprConnector {self.config.connection_string(redact=False)}>"


class BrokenForkConnector(MemoryConnector):
    """A plain threading.Lock (not from _fork) that a forked child may inherit held."""

    def __init__(self, config: MemoryConfig) -> None:
        super().__init__(config)
        self._stats_lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._stats_lock:
            return super().get(key)


class BrokenDrainConnector(MemoryConnector):
    """Closes the handle before waiting for the operations in flight."""

    def disconnect(self, timeout: float | None = None) -> None:
        handle = self._handle
        if handle is not None:
            handle["open"] = False
        super().disconnect(timeout)


class LossyError(ConnectorError):
    """Pickles through a constructor that drops the code."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (LossyError, (self.message,))


class BrokenPickleConnector(MemoryConnector):
    """Raises an error that loses its code in a pickle round trip."""

    def get(self, key: str) -> Any:
        raise LossyError("memory: get: lossy", code=ErrorCode.NOT_FOUND, connector=self.name)


@attrs.frozen(kw_only=True)
class BrokenConfig(MemoryConfig):
    """A field whose converter lets a raw KeyError escape."""

    limit: int = attrs.field(default=1, converter=lambda value: {1: 1, "1": 1}[value])


class BrokenConfigConnector(MemoryConnector):
    config_class: ClassVar[type[BaseConfig]] = BrokenConfig
