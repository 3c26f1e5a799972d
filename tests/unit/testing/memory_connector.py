"""A tiny in-process connector that keeps the base contract (the suite's own tests).

Its "server" is a dict and ``time.sleep``; ``broken_connectors`` breaks it
one rule at a time.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from typing import Any, ClassVar

import attrs

from dictamesh_connectors import _fork
from dictamesh_connectors.base import Connector
from dictamesh_connectors.config import (
    BaseConfig,
    Secret,
    float_field,
    int_field,
    query_params,
    redact_url,
    secret_field,
    str_field,
)
from dictamesh_connectors.errors import ErrorCode, ErrorRule, RetryHint, build_error

LISTENING_PORT = 1
_NOT_FOUND = ErrorRule(ErrorCode.NOT_FOUND, False, RetryHint.NONE)
_LOST = ErrorRule(ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT)


@attrs.frozen(kw_only=True)
class MemoryConfig(BaseConfig):
    """``memory://:password@name:1/``; only port 1 "listens"."""

    url_schemes: ClassVar[tuple[str, ...]] = ("memory",)
    name: str = str_field("default", nonempty=True)
    port: int = int_field(LISTENING_PORT, min=1, max=65535)
    password: Secret | None = secret_field()
    latency: float = float_field(0.0, min=0.0, max=10.0)

    @classmethod
    def _fields_from_url(cls, parts: urllib.parse.SplitResult) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if parts.hostname:
            fields["name"] = parts.hostname
        if parts.port is not None:
            fields["port"] = parts.port
        if parts.password:
            fields["password"] = urllib.parse.unquote(parts.password)
        fields.update(query_params(parts))
        return fields

    def connection_string(self, redact: bool = True) -> str:
        secret = self.password.get_secret_value() if self.password else ""
        url = f"memory://:{urllib.parse.quote(secret, safe='')}@{self.name}:{self.port}/"
        return redact_url(url) if redact else url


class MemoryConnector(Connector[MemoryConfig, dict[str, Any]]):
    """Keeps the contract: ``get``/``put`` on a dict, ``wait`` sleeps in flight."""

    name: ClassVar[str] = "memory"
    config_class: ClassVar[type[BaseConfig]] = MemoryConfig

    def _open(self) -> dict[str, Any]:
        if self.config.port != LISTENING_PORT:
            raise build_error(
                f"memory: connect to {self.config.name}:{self.config.port}: refused",
                ErrorRule(ErrorCode.CONNECTION_FAILED, True, RetryHint.RECONNECT),
                connector=self.name,
            )
        return {"open": True, "data": {}}

    def _close(self, handle: dict[str, Any], timeout: float | None) -> None:
        handle["open"] = False

    def _ping(self, handle: dict[str, Any], timeout: float | None) -> None:
        time.sleep(self.config.latency)
        self._check_open(handle)

    def _check_open(self, handle: dict[str, Any]) -> None:
        if not handle["open"]:
            raise build_error("memory: the connection was closed", _LOST, connector=self.name)

    def get(self, key: str) -> Any:
        def run(handle: dict[str, Any]) -> Any:
            self._check_open(handle)
            if key not in handle["data"]:
                raise build_error(f"memory: get: no key {key!r}", _NOT_FOUND, connector=self.name)
            return handle["data"][key]

        return self._run(run, idempotent=True, description="get")

    def put(self, key: str, value: Any) -> None:
        def run(handle: dict[str, Any]) -> None:
            self._check_open(handle)
            handle["data"][key] = value

        self._run(run, idempotent=True, description="put")

    def wait(self, seconds: float) -> None:
        def run(handle: dict[str, Any]) -> None:
            time.sleep(seconds)  # the "server" takes its time
            self._check_open(handle)

        self._run(run, idempotent=False, description="wait")


class SlowStartConnector(MemoryConnector):
    """Keeps the contract too, with a real connector's timing: its slow operation spends
    a while setting up before it is in flight (SecantusDB's arms a fail point), and each
    cheap operation is in flight for a moment (a round trip), so the drain check's
    hammering threads always have several in flight at once."""

    def get(self, key: str) -> Any:
        def run(handle: dict[str, Any]) -> Any:
            time.sleep(0.002)
            self._check_open(handle)
            return handle["data"].get(key)

        return self._run(run, idempotent=True, description="get")

    def wait(self, seconds: float) -> None:
        time.sleep(0.5)  # setting up, not in flight yet
        super().wait(seconds)


def _count_requests(server: socket.socket) -> None:
    """The "server" of one connection: answers each request byte with its running count."""
    count = 0
    with server:
        while server.recv(1):
            count += 1
            server.sendall(count.to_bytes(8, "big"))


class SocketConnector(MemoryConnector):
    """Keeps the contract, on a real socket: each ``get``/``put`` is also a round trip to a
    server thread that numbers the connection's requests; a number out of step means that
    someone else (a forked child) used the connection: CONNECTION_LOST, retried."""

    def _open(self) -> dict[str, Any]:
        handle = super()._open()
        client, server = socket.socketpair()
        threading.Thread(target=_count_requests, args=(server,), daemon=True).start()
        handle.update(sock=client, sent=0, lock=_fork.create_lock())
        return handle

    def _close(self, handle: dict[str, Any], timeout: float | None) -> None:
        super()._close(handle, timeout)
        handle["sock"].close()

    def _round_trip(self, handle: dict[str, Any]) -> None:
        with handle["lock"]:  # one request at a time on the connection (its own lock)
            handle["sent"] += 1
            handle["sock"].sendall(b"x")
            answer = int.from_bytes(handle["sock"].recv(8), "big")
            if answer != handle["sent"]:
                raise build_error(
                    f"memory: request {handle['sent']} answered as {answer}",
                    _LOST,
                    connector=self.name,
                )

    def get(self, key: str) -> Any:
        def run(handle: dict[str, Any]) -> Any:
            self._check_open(handle)
            self._round_trip(handle)
            return handle["data"].get(key)

        return self._run(run, idempotent=True, description="get")

    def put(self, key: str, value: Any) -> None:
        def run(handle: dict[str, Any]) -> None:
            self._check_open(handle)
            self._round_trip(handle)
            handle["data"][key] = value

        self._run(run, idempotent=True, description="put")
