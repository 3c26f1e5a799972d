"""SOAP client through FaultProxy against the real local SOAP service.

The service is ``tests/integration/soap/server.py``'s calculator (document/
literal, SOAP 1.1 and 1.2, Basic auth) on a threaded WSGI server; the proxy
(the plugin's ``fault_proxy`` fixture) sits between it and the client. The
WSDL the client reads names the proxy's address, so every exchange crosses
it. Timeouts, resets and refused connections, for a call that is not
idempotent (never repeated once sent) and one that is (retried).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dictamesh_connectors.errors import ConnectorError, ConnectorTimeoutError, ErrorCode
from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.soap import SOAPClient
from dictamesh_connectors.testing.faultproxy import FaultProxy
from tests.integration.faultproxy.conftest import bounded
from tests.integration.soap.server import PASSWORD, USER, SOAPTestServer, build_wsdl

pytestmark = pytest.mark.integration

ONCE = RetryPolicy(max_attempts=1)
RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.1, jitter=False)


@pytest.fixture
def server() -> Iterator[SOAPTestServer]:
    with SOAPTestServer() as srv:
        yield srv


@pytest.fixture
def proxy(fault_proxy: Callable[..., FaultProxy], server: SOAPTestServer) -> FaultProxy:
    host, port = server.base_url.split("//", 1)[1].split(":")
    return fault_proxy((host, int(port)))


@pytest.fixture(params=["CalculatorSoap11Port", "CalculatorSoap12Port"])
def connect(
    request: pytest.FixtureRequest, proxy: FaultProxy, tmp_path: Path
) -> Iterator[Callable[..., SOAPClient]]:
    base = f"http://{proxy.host}:{proxy.port}"
    wsdl = tmp_path / "calculator.wsdl"
    wsdl.write_text(build_wsdl(f"{base}/soap11", f"{base}/soap12"))
    made: list[HTTPConnector] = []

    def build(**fields: Any) -> SOAPClient:
        fields.setdefault("retry", ONCE)
        fields.setdefault("timeout", 1.0)
        fields.setdefault("connect_timeout", 1.0)
        http = HTTPConnector(
            HTTPConfig(
                base_url=base, credentials={"username": USER, "password": PASSWORD}, **fields
            )
        )
        http.connect()
        made.append(http)
        return SOAPClient(http, str(wsdl), port_name=request.param)

    yield build
    proxy.clear()
    for http in made:
        http.disconnect(10)


def test_call_through_the_proxy(connect: Callable[..., SOAPClient], proxy: FaultProxy):
    assert connect().call("Add", 2, 3) == 5
    assert proxy.stats.bytes_upstream > 0 and proxy.stats.bytes_downstream > 0


def test_blackhole_times_out_then_recovers(
    connect: Callable[..., SOAPClient], proxy: FaultProxy, server: SOAPTestServer
):
    soap = connect()
    assert soap.call("Add", 1, 1) == 2
    proxy.blackhole(True)
    err = bounded(lambda: soap.call("Add", 2, 2)).error
    assert isinstance(err, ConnectorTimeoutError), err
    assert err.code is ErrorCode.TIMEOUT
    proxy.clear()
    assert bounded(lambda: soap.call("Add", 3, 3)).result == 6


def test_a_reset_call_is_maybe_applied_and_not_repeated(
    connect: Callable[..., SOAPClient], proxy: FaultProxy, server: SOAPTestServer
):
    soap = connect(retry=RETRY)
    assert soap.call("Add", 1, 1) == 2
    proxy.reset_next(direction="downstream")  # the service runs it, the answer is lost
    err = bounded(lambda: soap.call("Add", 2, 2)).error
    assert isinstance(err, ConnectorError), err
    assert err.code is ErrorCode.CONNECTION_LOST and err.maybe_applied
    assert server.count("Add") == 2  # sent once, never again
    assert soap.call("Add", 3, 3) == 6  # a new connection


def test_a_reset_idempotent_call_is_retried(
    connect: Callable[..., SOAPClient], proxy: FaultProxy, server: SOAPTestServer
):
    soap = connect(retry=RETRY)
    assert soap.call("Add", 1, 1) == 2
    proxy.reset_next(direction="downstream")
    assert bounded(lambda: soap.call("Add", 2, 2, idempotent=True)).result == 4
    assert server.count("Add") == 3 and proxy.stats.faults["reset"] == 1


def test_refused_connections_fail_unsent_then_reconnect(
    connect: Callable[..., SOAPClient], proxy: FaultProxy, server: SOAPTestServer
):
    soap = connect()
    assert soap.call("Add", 1, 1) == 2
    proxy.refuse(True)
    proxy.reset_connections()  # the pooled connection too: the next call must connect
    err = bounded(lambda: soap.call("Add", 2, 2)).error
    assert isinstance(err, ConnectorError), err
    assert err.code is ErrorCode.CONNECTION_FAILED and not err.maybe_applied
    assert server.count("Add") == 1
    proxy.refuse(False)
    assert bounded(lambda: soap.call("Add", 3, 3)).result == 6
