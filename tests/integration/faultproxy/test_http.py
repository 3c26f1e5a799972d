"""HTTP connector through FaultProxy against a real local threaded WSGI server.

The server is ``tests/integration/http/servers.py``'s ``LocalServer`` (real
sockets, real HTTP/1.1); the proxy sits between it and the connector.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dictamesh_connectors.errors import ConnectorError, ConnectorTimeoutError, ErrorCode
from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.faultproxy import FaultProxy
from tests.integration.faultproxy.conftest import bounded, wait_for
from tests.integration.http.servers import LocalServer, ScriptedApp

pytestmark = pytest.mark.integration

ONCE = RetryPolicy(max_attempts=1)
RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.1, jitter=False)


@pytest.fixture
def app() -> ScriptedApp:
    app = ScriptedApp(ScriptedApp.echo())
    app.route("/big", ScriptedApp.status(200, b"b" * 300_000))
    return app


@pytest.fixture
def proxy(app: ScriptedApp) -> Iterator[FaultProxy]:
    with LocalServer(app) as server:
        host, port = server.url.split("//", 1)[1].split(":")
        with FaultProxy(upstream=(host, int(port))) as proxy:
            yield proxy


@pytest.fixture
def connect(proxy: FaultProxy) -> Iterator[Callable[..., HTTPConnector]]:
    made: list[HTTPConnector] = []

    def build(**fields: Any) -> HTTPConnector:
        fields.setdefault("retry", ONCE)
        fields.setdefault("timeout", 2.0)
        fields.setdefault("connect_timeout", 2.0)
        connector = HTTPConnector(
            HTTPConfig(base_url=f"http://{proxy.host}:{proxy.port}", **fields)
        )
        connector.connect()
        made.append(connector)
        return connector

    yield build
    proxy.clear()
    for connector in made:
        connector.disconnect(10)


def test_plain_round_trip(connect: Callable[..., HTTPConnector], proxy: FaultProxy) -> None:
    assert connect().get("/x", params={"a": "1"}).json()["query"] == {"a": "1"}
    assert proxy.stats.bytes_upstream > 0 and proxy.stats.bytes_downstream > 0


@pytest.mark.parametrize("direction", ["both", "upstream", "downstream"])
def test_blackhole_read_times_out(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy, direction: str
) -> None:
    api = connect()
    proxy.blackhole(True, direction=direction)  # type: ignore[arg-type]
    err = bounded(lambda: api.get("/x")).error
    assert isinstance(err, ConnectorTimeoutError), err
    assert err.code is ErrorCode.TIMEOUT and err.transient
    proxy.clear()
    assert bounded(lambda: api.get("/y")).result.json()["path"] == "/y"  # recovers


def test_blackhole_on_a_post_is_maybe_applied_and_not_retried(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy, app: ScriptedApp
) -> None:
    api = connect(retry=RETRY)
    proxy.blackhole(True, direction="downstream")  # the request arrives, the answer never
    err = bounded(lambda: api.post("/order", json={"n": 1})).error
    assert isinstance(err, ConnectorTimeoutError), err
    assert err.transient and err.maybe_applied
    assert len(app.hits("/order")) == 1  # a POST that may have happened is not re-sent


def test_reset_after_the_request_is_maybe_applied(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy, app: ScriptedApp
) -> None:
    api = connect(retry=RETRY)
    proxy.reset_next(direction="downstream")
    err = bounded(lambda: api.post("/order", json={"n": 2})).error
    assert isinstance(err, ConnectorError), err
    assert err.code is ErrorCode.CONNECTION_LOST and err.transient and err.maybe_applied, err
    assert len(app.hits("/order")) == 1
    assert bounded(lambda: api.get("/next")).result.json()["path"] == "/next"


def test_reset_on_a_get_is_retried(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy, app: ScriptedApp
) -> None:
    api = connect(retry=RETRY)
    proxy.reset_next(direction="downstream")
    assert bounded(lambda: api.get("/again")).result.json()["path"] == "/again"
    assert len(app.hits("/again")) == 2  # the first answer was cut, the retry got through
    assert proxy.stats.faults["reset"] == 1


def test_reset_before_the_request_is_still_maybe_applied(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy, app: ScriptedApp
) -> None:
    api = connect()
    assert api.get("/warm").status_code == 200
    proxy.reset_next(direction="upstream")  # the request never reaches the server
    err = bounded(lambda: api.post("/order", json={"n": 3})).error
    assert isinstance(err, ConnectorError), err
    # the client cannot tell that nothing arrived: not-sent is claimed only when proved
    assert err.transient and err.maybe_applied, err
    assert app.hits("/order") == []


def test_idle_keep_alive_connection_reset_is_replaced(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy, app: ScriptedApp
) -> None:
    api = connect()
    assert api.get("/one").status_code == 200
    assert proxy.reset_connections() == 1
    assert bounded(lambda: api.get("/two")).result.status_code == 200
    assert len({request.client_port for request in app.requests}) == 2


def test_refused_is_connection_failed_not_sent_and_retried(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy
) -> None:
    api = connect(retry=RETRY)
    proxy.refuse(True)
    err = bounded(lambda: api.post("/order", json={})).error  # nothing sent: even a POST retries
    assert isinstance(err, ConnectorError), err
    assert err.code is ErrorCode.CONNECTION_FAILED and err.transient and not err.maybe_applied
    proxy.refuse(False)
    assert bounded(lambda: api.post("/order", json={})).result.status_code == 200


def test_half_open_times_out_then_recovers(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy
) -> None:
    api = connect()
    assert api.get("/a").status_code == 200
    proxy.half_open(True)
    err = bounded(lambda: api.get("/b")).error
    assert isinstance(err, ConnectorError) and err.transient, err
    assert err.code in (ErrorCode.TIMEOUT, ErrorCode.CONNECTION_LOST), err
    proxy.half_open(False)
    # the half-open connection is dead for good; the pool opens a new one
    assert wait_for(lambda: bounded(lambda: api.get("/c")).error is None)


def test_latency_bandwidth_and_slow_close_still_succeed(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy
) -> None:
    api = connect(timeout=10.0)
    proxy.set_latency(0.05, jitter=0.02)
    proxy.set_bandwidth(500_000, direction="downstream")
    proxy.slow_close(1.0)
    for number in range(3):
        assert api.post("/echo", json={"n": number}).json()["body"] == f'{{"n":{number}}}'
    assert api.get("/big").content == b"b" * 300_000
    stats = proxy.stats
    assert stats.faults["latency"] > 0 and stats.faults["bandwidth"] > 0


def test_32_threads_through_latency_and_a_reset(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy, app: ScriptedApp
) -> None:
    """One connector, 32 threads, through jitter and a reset of every connection."""
    api = connect(retry=RETRY, timeout=10.0, max_idle_conns_per_host=32)
    proxy.set_latency(0.01, jitter=0.01)
    barrier = threading.Barrier(32)

    def work(number: int) -> list[str]:
        barrier.wait()
        paths = []
        for request in range(10):
            path = f"/t{number}/r{request}"
            assert api.get(path).json()["path"] == path  # GETs: a reset is retried
            paths.append(path)
            if number == 0 and request == 5:
                proxy.reset_connections()
        return paths

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(work, range(32)))
    assert sum(len(paths) for paths in results) == 320
    assert proxy.stats.accepted >= 32 and proxy.stats.faults["reset"] >= 1


def test_disconnect_through_a_blackhole_with_a_request_in_flight(
    connect: Callable[..., HTTPConnector], proxy: FaultProxy
) -> None:
    api = connect(timeout=30.0)
    assert api.get("/warm").status_code == 200
    proxy.blackhole(True)
    in_flight = threading.Thread(target=lambda: bounded(lambda: api.get("/stuck")), daemon=True)
    in_flight.start()
    assert wait_for(lambda: proxy.stats.active >= 1)
    assert bounded(lambda: api.disconnect(1)).error is None  # stops waiting after 1 s
    assert not api.is_connected
    proxy.clear()
    in_flight.join(60)
