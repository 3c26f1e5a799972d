"""A connector whose "server" is in memory, for testing the base class; a fake clock."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import attrs

from dictamesh_connectors.base import Connector
from dictamesh_connectors.config import (
    BaseConfig,
    float_field,
    secret_field,
    str_field,
    url_credentials,
)
from dictamesh_connectors.errors import ConnectorError, ErrorCode


class FakeClock:
    """A monotonic clock that only moves when ``sleep`` is called (retry loops, buckets)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeDriverError(Exception):
    """What the fake driver raises; ``lost`` marks a broken connection."""

    def __init__(self, message: str, lost: bool = False) -> None:
        super().__init__(message)
        self.lost = lost


@attrs.frozen(kw_only=True)
class FakeConfig(BaseConfig):
    url_schemes = ("fake",)

    host: str = str_field("localhost", nonempty=True)
    username: str | None = str_field(None, optional=True)
    password: Any = secret_field()
    open_delay: float = float_field(0.0, min=0.0)

    @classmethod
    def _fields_from_url(cls, parts: urllib.parse.SplitResult) -> dict[str, Any]:
        return {"host": parts.hostname or "localhost", **url_credentials(parts)}

    def connection_string(self, redact: bool = True) -> str:
        password = ""
        if self.password is not None:
            password = ":***" if redact else ":" + self.password.get_secret_value()
        user = f"{self.username or ''}{password}@" if self.username else ""
        return f"fake://{user}{self.host}"


class FakeHandle:
    def __init__(self, serial: int) -> None:
        self.serial = serial
        self.closed = False
        self.discarded = False
        self.broken = False


class FakeConnector(Connector[FakeConfig, FakeHandle]):
    name = "fake"
    config_class = FakeConfig

    def __init__(self, config: FakeConfig) -> None:
        super().__init__(config)
        self.opened: list[FakeHandle] = []
        self.fail_open: Exception | None = None
        self.open_gate: threading.Event | None = None

    def _open(self) -> FakeHandle:
        if self.open_gate is not None:
            self.open_gate.wait(5)
        if self.fail_open is not None:
            raise self.fail_open
        handle = FakeHandle(len(self.opened) + 1)
        self.opened.append(handle)
        return handle

    def _close(self, handle: FakeHandle, timeout: float | None) -> None:
        handle.closed = True

    def _ping(self, handle: FakeHandle, timeout: float | None) -> None:
        if handle.broken:
            raise FakeDriverError("ping failed", lost=True)

    def _discard_after_fork(self, handle: FakeHandle) -> None:
        handle.discarded = True

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except FakeDriverError as exc:
            code = ErrorCode.CONNECTION_LOST if exc.lost else ErrorCode.QUERY_FAILED
            raise ConnectorError(f"fake: {exc}", code=code, connector=self.name) from exc

    def work(self, fn: Any = None, *, idempotent: bool = True) -> Any:
        """An operation: runs ``fn(handle)`` (default: returns the handle's serial)."""

        def op(handle: FakeHandle) -> Any:
            if handle.broken:
                raise FakeDriverError("connection reset", lost=True)
            return fn(handle) if fn is not None else handle.serial

        return self._run(op, idempotent=idempotent, description="work")


class Blocker:
    """An operation body that blocks until released: ``connector.work(blocker)``.

    ``started`` is set once it runs; it then waits for ``release`` (at most
    ``limit`` seconds), records whether its handle was already closed in
    ``saw_closed``, and returns ``result`` (or raises ``error``).
    """

    def __init__(
        self, result: Any = None, error: Exception | None = None, limit: float = 5
    ) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.saw_closed: list[bool] = []
        self.result = result
        self.error = error
        self.limit = limit

    def __call__(self, handle: FakeHandle) -> Any:
        self.started.set()
        self.release.wait(self.limit)
        self.saw_closed.append(handle.closed)
        if self.error is not None:
            raise self.error
        return self.result


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    """Poll ``predicate()`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.001)
