"""pytest fixtures for the fakes: ``fake_http``, ``fake_postgresql``, ``fake_file``,
``fake_mongodb``, ``fake_kafka``; and ``fault_proxy`` for the fault-injection proxy.

Installed with the package, pytest loads this plugin by itself (entry point
``pytest11``: ``dictamesh_connectors``); elsewhere, enable it with
``-p dictamesh_connectors.testing.pytest_plugin`` or
``pytest_plugins = ["dictamesh_connectors.testing.pytest_plugin"]`` in a
``conftest.py``.

Each fixture yields a connected fake with its default config and
disconnects it after the test (function scope: nothing leaks between
tests). Retry backoffs do not sleep (the fake's retry loop gets a no-op
``sleep``), so a test of "retried twice, then succeeded" takes no time;
latency programmed with ``set_latency`` still sleeps. A fixture whose fake
needs a driver that is not installed (``fake_postgresql`` needs the
``postgresql`` extra), or whose fake does not exist in this version, skips
the test with the reason.

Example::

    def test_sync_survives_one_timeout(fake_http):
        fake_http.add("GET", "/contacts", json=[{"id": 1}])
        fake_http.fail_next("get", code=ErrorCode.TIMEOUT)
        assert sync(fake_http) == 1

``fault_proxy`` is a factory: ``fault_proxy(upstream)`` starts a
``testing.faultproxy.FaultProxy`` in front of a real server (``(host,
port)``, ``"host:port"`` or a port on 127.0.0.1) and returns it; every proxy
it started is closed at teardown (its sockets closed, its thread joined)::

    def test_query_times_out_through_a_blackhole(fault_proxy):
        proxy = fault_proxy(("127.0.0.1", 55432))
        db = PostgreSQLConnector(PostgreSQLConfig(port=proxy.port, ...))
        proxy.blackhole(True)
        ...

Importing this module imports no connector: each fixture imports its fake
(or the proxy) when a test asks for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dictamesh_connectors.testing.faultproxy import FaultProxy

__all__ = [
    "fake_file",
    "fake_http",
    "fake_kafka",
    "fake_mongodb",
    "fake_postgresql",
    "fault_proxy",
]

_FAKES = {
    "fake_file": ("dictamesh_connectors.testing.fakes.file", "FakeFile"),
    "fake_http": ("dictamesh_connectors.testing.fakes.http", "FakeHTTP"),
    "fake_kafka": ("dictamesh_connectors.testing.fakes.kafka", "FakeKafka"),
    "fake_mongodb": ("dictamesh_connectors.testing.fakes.mongodb", "FakeMongoDB"),
    "fake_postgresql": ("dictamesh_connectors.testing.fakes.postgresql", "FakePostgreSQL"),
}


def _no_sleep(seconds: float) -> None:
    """The retry loop's ``sleep`` in fixtures: backoffs take no time."""


def _fake_class(fixture: str) -> Any:
    """The fake class behind ``fixture``, or a skip naming what is missing."""
    from dictamesh_connectors.errors import MissingDependencyError

    module_name, class_name = _FAKES[fixture]
    try:
        module = importlib.import_module(module_name)
    except MissingDependencyError as err:
        pytest.skip(f"{fixture}: {err}")
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            pytest.skip(f"{fixture}: {class_name} is not available in this version")
        pytest.skip(f"{fixture}: {class_name} needs {err.name!r}, which is not installed")
    cls = getattr(module, class_name, None)
    if cls is None:
        pytest.skip(f"{fixture}: {class_name} is not available in this version")
    return cls


def _connected(fixture: str) -> Iterator[Any]:
    fake = _fake_class(fixture)()
    fake._sleep = _no_sleep
    fake.connect()
    try:
        yield fake
    finally:
        fake.disconnect()


@pytest.fixture
def fake_http() -> Iterator[Any]:
    """A connected ``FakeHTTP`` (base URL ``http://fake.test``), disconnected after the test."""
    yield from _connected("fake_http")


@pytest.fixture
def fake_postgresql() -> Iterator[Any]:
    """A connected ``FakePostgreSQL``, disconnected after the test (needs the postgresql extra)."""
    yield from _connected("fake_postgresql")


@pytest.fixture
def fake_file() -> Iterator[Any]:
    """A connected ``FakeFile`` with an empty in-memory tree, disconnected after the test."""
    yield from _connected("fake_file")


@pytest.fixture
def fake_mongodb() -> Iterator[Any]:
    """A connected ``FakeMongoDB``, disconnected after the test (skips if unavailable)."""
    yield from _connected("fake_mongodb")


@pytest.fixture
def fake_kafka() -> Iterator[Any]:
    """A connected ``FakeKafka``, disconnected after the test (skips if unavailable)."""
    yield from _connected("fake_kafka")


def _upstream(upstream: object) -> tuple[str, int]:
    """``(host, port)`` from a tuple, ``"host:port"`` or a port on 127.0.0.1."""
    if isinstance(upstream, bool):
        raise TypeError("upstream must be (host, port), 'host:port' or a port, not a bool")
    if isinstance(upstream, int):
        return ("127.0.0.1", upstream)
    if isinstance(upstream, str):
        host, sep, port = upstream.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"upstream must look like 'host:port', not {upstream!r}")
        return (host.strip("[]"), int(port))
    if (
        isinstance(upstream, tuple)
        and len(upstream) == 2
        and isinstance(upstream[0], str)
        and isinstance(upstream[1], int)
        and not isinstance(upstream[1], bool)
    ):
        return (upstream[0], upstream[1])
    raise TypeError(
        f"upstream must be (host, port), 'host:port' or a port, not {type(upstream).__name__}"
    )


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """A factory of fault proxies: ``fault_proxy(upstream, **options)`` -> a started ``FaultProxy``.

    ``upstream`` is the real server: ``(host, port)``, ``"host:port"`` or a
    port on 127.0.0.1; ``options`` go to ``FaultProxy`` (``listen_port``,
    ``seed``, ``command_timeout``). Point the connector at ``proxy.port``.
    Every proxy the factory started is closed at teardown, in reverse order;
    a proxy whose loop failed, or that does not stop, fails the teardown
    with its ``FaultProxyError``.
    """
    from dictamesh_connectors.testing.faultproxy import FaultProxy

    started: list[FaultProxy] = []

    def start(upstream: object, **options: Any) -> FaultProxy:
        proxy = FaultProxy(_upstream(upstream), **options)
        started.append(proxy)
        return proxy

    yield start
    failures: list[BaseException] = []
    for proxy in reversed(started):
        try:
            proxy.close()
        except Exception as exc:  # close the others first, then report it
            failures.append(exc)
    if failures:
        raise failures[0]
