"""Connectors that each break one rule of the base contract (the suite must catch each).

Each subclasses ``MemoryConnector``; ``test_conformance`` runs the matching
conformance check on it in a pytest subprocess and expects that check to fail.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import attrs

from dictamesh_connectors import _fork
from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.errors import ConnectorError, ErrorCode

from .memory_connector import MemoryConfig, MemoryConnector, SocketConnector


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


class BrokenOperationLockConnector(MemoryConnector):
    """Holds a lock of its own across the slow operation that its other operations take
    too (ping() does not: a check on ping alone passed it)."""

    def __init__(self, config: MemoryConfig) -> None:
        super().__init__(config)
        self._io_lock = _fork.create_lock()

    def wait(self, seconds: float) -> None:
        with self._io_lock:
            super().wait(seconds)

    def get(self, key: str) -> Any:
        with self._io_lock:
            return super().get(key)


class _Session:
    def __init__(self) -> None:
        self._lock = _fork.create_rlock()


class BrokenHelperLockConnector(MemoryConnector):
    """Holds a helper object's lock across the slow operation (nothing else takes it yet:
    only sampling the locks shows it)."""

    def __init__(self, config: MemoryConfig) -> None:
        super().__init__(config)
        self._session = _Session()

    def wait(self, seconds: float) -> None:
        with self._session._lock:
            super().wait(seconds)


class BrokenNestedForkConnector(MemoryConnector):
    """A plain threading.Lock inside a helper object (a check of the connector's own
    attributes passed it)."""

    def __init__(self, config: MemoryConfig) -> None:
        super().__init__(config)
        self._cache = _Cache()

    def get(self, key: str) -> Any:
        with self._cache.lock:
            return super().get(key)


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()


class BrokenConditionForkConnector(MemoryConnector):
    """A plain threading.Condition (a check of Lock and RLock attributes passed it)."""

    def __init__(self, config: MemoryConfig) -> None:
        super().__init__(config)
        self._ready = threading.Condition(threading.Lock())

    def get(self, key: str) -> Any:
        with self._ready:
            return super().get(key)


class BrokenForkSocketConnector(SocketConnector):
    """Keeps using the parent's socket in a forked child (its parent's next operation is
    out of step, fails and is retried: a check on the parent's results alone passed it)."""

    def _after_fork_in_child(self) -> None:
        handle = self._handle
        super()._after_fork_in_child()
        self._handle = handle
