"""SOAPClient against a real document/literal WSDL service over HTTPS with Basic auth."""

from __future__ import annotations

import concurrent.futures
import os
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("zeep")
trustme = pytest.importorskip("trustme")

from dictamesh_connectors.errors import (  # noqa: E402
    AuthenticationError,
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from dictamesh_connectors.http.config import HTTPConfig  # noqa: E402
from dictamesh_connectors.http.connector import HTTPConnector  # noqa: E402
from dictamesh_connectors.retry import RetryPolicy  # noqa: E402
from dictamesh_connectors.soap import SOAPClient, SOAPFault  # noqa: E402

from ..http.servers import corrupt_tls_after  # noqa: E402
from .server import PASSWORD, USER, SOAPTestServer  # noqa: E402

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05, deadline=10)
PORTS = ["CalculatorSoap11Port", "CalculatorSoap12Port"]


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_path(ca: Any) -> Iterator[str]:
    with ca.cert_pem.tempfile() as path:
        yield path


@pytest.fixture
def server(ca: Any) -> Iterator[SOAPTestServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with SOAPTestServer(context) as srv:
        yield srv


def http_config(server: SOAPTestServer, ca_path: str, **overrides: Any) -> HTTPConfig:
    fields: dict[str, Any] = {
        "base_url": server.base_url,
        "ca_bundle": ca_path,
        "credentials": {"username": USER, "password": PASSWORD},
        "retry": FAST_RETRY,
        "max_idle_conns_per_host": 16,
    }
    fields.update(overrides)
    return HTTPConfig(**fields)


@pytest.fixture
def http(server: SOAPTestServer, ca_path: str) -> Iterator[HTTPConnector]:
    with HTTPConnector(http_config(server, ca_path)) as connector:
        yield connector


@pytest.fixture(params=PORTS)
def soap(request: pytest.FixtureRequest, http: HTTPConnector, server: SOAPTestServer) -> SOAPClient:
    return SOAPClient(http, server.wsdl_url, port_name=request.param)


# ------------------------------------------------------------------ results


def test_operation_returns_its_value(soap: SOAPClient, server: SOAPTestServer) -> None:
    assert soap.call("Add", 2, 3) == 5
    assert soap.call("Add", a=40, b=2) == 42
    assert server.count("Add") == 2


def test_wsdl_and_calls_use_the_connectors_authenticated_tls_session(
    soap: SOAPClient, server: SOAPTestServer
) -> None:
    # The server refuses anything without Basic auth, the WSDL included.
    assert soap.call("WhoAmI") == USER
    assert server.count("wsdl") == 1


def test_without_credentials_the_wsdl_fetch_is_an_authentication_error(
    server: SOAPTestServer, ca_path: str
) -> None:
    with HTTPConnector(http_config(server, ca_path, credentials=None)) as http:
        soap = SOAPClient(http, server.wsdl_url)
        with pytest.raises(AuthenticationError) as info:
            soap.call("Add", 1, 2)
    assert info.value.code is ErrorCode.AUTH_FAILED
    assert info.value.details["status_code"] == 401
    assert server.count("Add") == 0


def test_untrusted_certificate_is_a_permanent_connection_failure(server: SOAPTestServer) -> None:
    other_ca = trustme.CA()
    with (
        other_ca.cert_pem.tempfile() as wrong,
        HTTPConnector(http_config(server, wrong)) as http,
        pytest.raises(ConnectorError) as info,
    ):
        SOAPClient(http, server.wsdl_url).call("Add", 1, 2)
    assert info.value.code is ErrorCode.CONNECTION_FAILED
    assert not info.value.transient
    assert "certificate" in info.value.message


def test_tls_error_reading_the_answer_never_repeats_the_call(ca: Any, ca_path: str) -> None:
    # The service runs the call, then a corrupt TLS record replaces its answer:
    # maybe applied, sent once; an idempotent call is retried (issue #8, item 1).
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with (
        SOAPTestServer(context, corrupt_tls_after) as server,
        HTTPConnector(http_config(server, ca_path)) as http,
    ):
        soap = SOAPClient(http, server.wsdl_url)
        with pytest.raises(ConnectorError) as info:
            soap.call("Add", 1, 2)
        assert info.value.maybe_applied
        assert info.value.code is ErrorCode.CONNECTION_LOST
        assert server.count("Add") == 1
        with pytest.raises(ConnectorError) as info:
            soap.call("WhoAmI", idempotent=True)
        assert server.count("WhoAmI") == 3


# ------------------------------------------------------------------- faults


@pytest.mark.parametrize("idempotent", [False, True])
def test_client_fault_is_permanent_invalid_request_and_never_retried(
    soap: SOAPClient, server: SOAPTestServer, idempotent: bool
) -> None:
    with pytest.raises(SOAPFault) as info:
        soap.call("Reject", reason="bad sku", idempotent=idempotent)
    err = info.value
    assert err.code is ErrorCode.INVALID_REQUEST
    assert not err.transient and not err.maybe_applied
    assert err.fault_code in ("soap:Client", "env:Sender")
    assert "rejected: bad sku" in err.message
    assert server.count("Reject") == 1


def test_server_fault_of_a_non_idempotent_call_is_sent_once_and_maybe_applied(
    soap: SOAPClient, server: SOAPTestServer
) -> None:
    with pytest.raises(SOAPFault) as info:
        soap.call("Explode", key="transfer-1", failures=1)
    err = info.value
    assert err.code is ErrorCode.UNAVAILABLE
    assert not err.transient and err.maybe_applied
    assert err.fault_code in ("soap:Server", "env:Receiver")
    assert server.count("Explode") == 1


def test_server_fault_of_an_idempotent_call_is_retried_until_it_passes(
    soap: SOAPClient, server: SOAPTestServer
) -> None:
    assert soap.call("Explode", key="quote-1", failures=2, idempotent=True) == 3
    assert server.count("Explode") == 3


def test_server_fault_of_an_idempotent_call_gives_up_after_the_policy(
    soap: SOAPClient, server: SOAPTestServer
) -> None:
    with pytest.raises(SOAPFault) as info:
        soap.call("Explode", key="quote-2", failures=10, idempotent=True)
    assert info.value.transient and not info.value.maybe_applied
    assert server.count("Explode") == FAST_RETRY.max_attempts


def test_connector_retry_policy_can_be_overridden(
    http: HTTPConnector, server: SOAPTestServer
) -> None:
    soap = SOAPClient(http, server.wsdl_url, retry=RetryPolicy(max_attempts=5, initial_backoff=0))
    with pytest.raises(SOAPFault):
        soap.call("Explode", key="k", failures=10, idempotent=True)
    assert server.count("Explode") == 5


# ------------------------------------------------------ HTTP-level failures


def test_503_from_a_proxy_is_retried_even_for_a_non_idempotent_call(
    soap: SOAPClient, server: SOAPTestServer
) -> None:
    soap.call("Add", 0, 0)  # load the WSDL first
    server.script(503, b"<html>busy</html>", [("Content-Type", "text/html"), ("Retry-After", "0")])
    assert soap.call("Add", 1, 1) == 2
    assert server.count("Add") == 3


@pytest.mark.parametrize(("idempotent", "attempts"), [(False, 1), (True, 3)])
def test_502_html_is_retried_only_when_idempotent(
    soap: SOAPClient, server: SOAPTestServer, idempotent: bool, attempts: int
) -> None:
    soap.call("Add", 0, 0)
    for _ in range(5):
        server.script(502, b"<html>bad gateway</html>", [("Content-Type", "text/html")])
    with pytest.raises(ConnectorError) as info:
        soap.call("Add", 1, 1, idempotent=idempotent)
    assert not isinstance(info.value, SOAPFault)
    assert info.value.code is ErrorCode.UNAVAILABLE
    assert info.value.details["status_code"] == 502
    assert info.value.maybe_applied is (not idempotent)
    assert server.count("Add") == 1 + attempts


def test_arguments_the_wsdl_does_not_allow_are_refused_before_sending(
    soap: SOAPClient, server: SOAPTestServer
) -> None:
    with pytest.raises(ConnectorError) as info:
        soap.call("Add", a=1)  # b is required by the schema
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert "Missing element b" in info.value.message
    assert server.count("Add") == 0
    with pytest.raises(SOAPFault) as fault_info:
        soap.call("Add", "not-an-int", 1)  # the server validates this one
    assert fault_info.value.code is ErrorCode.INVALID_REQUEST


def test_unknown_operation_is_invalid_request(soap: SOAPClient) -> None:
    with pytest.raises(ConnectorError) as info:
        soap.call("Divide", 1, 0)
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert "Divide" in info.value.message


def test_unknown_port_is_invalid_config(http: HTTPConnector, server: SOAPTestServer) -> None:
    with pytest.raises(InvalidConfigError):
        SOAPClient(http, server.wsdl_url, port_name="NoSuchPort").call("Add", 1, 1)


def test_wsdl_that_is_not_xml_is_a_protocol_error(
    http: HTTPConnector, server: SOAPTestServer
) -> None:
    with pytest.raises(ConnectorError) as info:
        SOAPClient(http, server.base_url + "/not-xml").call("Add", 1, 1)
    assert info.value.code is ErrorCode.PROTOCOL_ERROR
    assert not info.value.transient


def test_missing_wsdl_is_not_found(http: HTTPConnector, server: SOAPTestServer) -> None:
    with pytest.raises(ConnectorError) as info:
        SOAPClient(http, server.base_url + "/nowhere?wsdl").call("Add", 1, 1)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert info.value.details["status_code"] == 404


def test_refused_connection_is_connection_failed(ca_path: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with SOAPTestServer(context) as srv:
        config = http_config(srv, ca_path)
        wsdl_url = srv.wsdl_url
    with HTTPConnector(config) as http, pytest.raises(ConnectorError) as info:
        SOAPClient(http, wsdl_url).call("Add", 1, 1)
    assert info.value.code is ErrorCode.CONNECTION_FAILED and info.value.transient


# ---------------------------------------------------------- threads, lifecycle


def test_sixteen_threads_share_one_soap_client(http: HTTPConnector, server: SOAPTestServer) -> None:
    soap = SOAPClient(http, server.wsdl_url)
    barrier = threading.Barrier(16)
    clients: set[int] = set()
    lock = threading.Lock()

    def worker(thread: int) -> list[int]:
        barrier.wait(10)
        results = [soap.call("Add", thread, i) for i in range(10)]
        with lock:
            clients.add(id(soap._local.state.client))
        return results

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(worker, range(16)))
    assert results == [[t + i for i in range(10)] for t in range(16)]
    assert len(clients) == 16  # one zeep Client per thread
    assert server.count("wsdl") == 1  # fetched once, shared as bytes
    assert server.count("Add") == 160


def test_calls_after_disconnect_raise_not_connected(
    http: HTTPConnector, server: SOAPTestServer
) -> None:
    soap = SOAPClient(http, server.wsdl_url)
    assert soap.call("Add", 1, 1) == 2
    http.disconnect()
    with pytest.raises(NotConnectedError):
        soap.call("Add", 1, 1)


def test_calls_survive_a_reconnect_of_the_http_connector(
    http: HTTPConnector, server: SOAPTestServer
) -> None:
    soap = SOAPClient(http, server.wsdl_url)
    assert soap.call("Add", 1, 1) == 2
    http.disconnect()
    http.connect()
    assert soap.call("Add", 2, 2) == 4  # a new session on the new pool, same zeep client
    assert server.count("wsdl") == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_builds_its_own_client(http: HTTPConnector, server: SOAPTestServer) -> None:
    soap = SOAPClient(http, server.wsdl_url)
    assert soap.call("Add", 1, 1) == 2
    parent_client = soap._local.state.client
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            ok = soap.call("Add", 20, 22) == 42 and soap._local.state.client is not parent_client
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert server.count("Add") == 2
    assert soap._local.state.client is parent_client


def test_missing_local_wsdl_file_is_invalid_config(http: HTTPConnector, tmp_path: Any) -> None:
    client = SOAPClient(http, str(tmp_path / "missing.wsdl"))
    with pytest.raises(InvalidConfigError) as info:
        client.call("Add", a=1, b=2)
    assert "cannot read the WSDL file" in str(info.value)


def test_max_response_bytes_bounds_what_zeep_reads(server: SOAPTestServer, ca_path: str) -> None:
    config = http_config(server, ca_path, max_response_bytes=512)
    with HTTPConnector(config) as http, pytest.raises(ConnectorError) as info:
        SOAPClient(http, server.wsdl_url).call("Add", a=1, b=2)  # the WSDL is larger
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE


def test_api_key_in_the_query_never_in_soap_tracebacks(ca_path: str) -> None:
    import traceback

    with SOAPTestServer() as gone:
        base = gone.base_url
    config = HTTPConfig(
        base_url=base,
        credentials={"api_key": PASSWORD, "api_key_in": "query", "api_key_name": "key"},
        retry=RetryPolicy.no_retry(),
    )
    with HTTPConnector(config) as http, pytest.raises(ConnectorError) as info:
        SOAPClient(http, base + "/calculator?wsdl").call("Add", a=1, b=2)
    assert info.value.code is ErrorCode.CONNECTION_FAILED
    assert PASSWORD not in "".join(traceback.format_exception(info.value))


# ------------------------------------------------------- hostile arguments


def test_call_with_hostile_arguments_raises_only_connector_errors(soap: SOAPClient) -> None:
    # Issue #8's property for the SOAP path: hypothesis-made operation names
    # and input parts (surrogates, NUL, non-latin-1 text, huge and non-finite
    # numbers, nested values) give a result or a ConnectorError; TypeError
    # only for a wrong argument type (zeep's unknown keyword), never from an
    # encoder.
    from hypothesis import strategies as st

    from tests.fuzzing import Call, check_call, hostile_text, nested, numbers

    value = st.one_of(hostile_text(), numbers(), nested(), st.binary(max_size=16))
    operation = st.one_of(st.sampled_from(["Add", "WhoAmI", "Reject", "Explode"]), hostile_text())

    def invoke(client: SOAPClient, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        return client.call(args[0], *args[1], **kwargs)

    kwargs = st.dictionaries(st.sampled_from(["a", "b", "reason", "key", "failures"]), value)
    call = Call("call", st.tuples(operation, st.lists(value, max_size=3)), kwargs, invoke=invoke)
    check_call(soap, call, max_examples=60)
    assert soap.call("Add", 1, 2) == 3  # still usable
    assert soap.http.stats().in_flight == 0
