"""Issue #8 regressions for HTTP, GraphQL and SOAP, against real local servers.

Each test failed before its fix: secrets in URLs (one redaction function),
header text that does not encode, API keys in ``session()`` exceptions,
credential headers on cross-origin redirects, unbounded numbers, hostile
JSON, ``iter_lines``/``iter_text`` and the 505 row.
"""

from __future__ import annotations

import json
import math
import socket
import traceback
from typing import Any

import pytest
import requests

from dictamesh_connectors import config as core_config
from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError
from dictamesh_connectors.http import HTTPConfig, urls
from tests.secretscan import SecretScan

from .conftest import FAST
from .servers import LocalServer, ScriptedApp

pytestmark = pytest.mark.integration

MARKER = "MARKER-Secret-8"
DEEP = b"[" * 100_000 + b"]" * 100_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------- item 2: one redaction function


def test_http_urls_use_the_one_core_redaction_function():
    assert urls.redact_url is core_config.redact_url
    assert {"token", "client_secret", "api_key"} <= HTTPConfig.secret_params
    from dictamesh_connectors.graphql import GraphQLConfig

    assert GraphQLConfig.secret_params == HTTPConfig.secret_params
    config = HTTPConfig(
        base_url="http://127.0.0.1:1",
        credentials={"api_key": MARKER, "api_key_name": "Sig2", "api_key_in": "query"},
    )
    assert "sig2" in config.secret_query_params()
    assert "sig2" not in HTTPConfig(base_url="http://127.0.0.1:1").secret_query_params()
    shown = core_config.redact_url(f"http://h/x?Sig2={MARKER}", config.secret_query_params())
    assert MARKER not in shown


def test_query_api_key_never_shows_in_errors_logs_or_responses(server, app, connect):
    app.route("/fail", ScriptedApp.status(500, b"boom"))
    app.route("/bad-json", ScriptedApp.status(200, b"{not json"))
    api = connect(
        base_url=server.url,
        credentials={"api_key": MARKER, "api_key_name": "sig2", "api_key_in": "query"},
    )
    with SecretScan() as scan:
        with pytest.raises(ConnectorError) as failed:
            api.get("/fail")
        response = api.get("/bad-json", params={"access_token": MARKER})
        with pytest.raises(ConnectorError) as not_json:
            response.json()
    assert app.hits("/fail")[0].query["sig2"] == MARKER  # it was sent
    scan.assert_clean(MARKER, failed.value, not_json.value, texts=[repr(response)])


# ------------------------------------------ item 4: header text that cannot be sent


@pytest.mark.parametrize(
    "fields",
    [
        {"user_agent": "agent-\u20ac"},
        {"headers": {"X-Note": f"{MARKER}-\u20ac"}},
        {"headers": {"X-Note": f"{MARKER}-\udc80"}},
        {"credentials": {"token": f"Bearer-s3cr\u00e9t-{MARKER}-\u20ac"}},
        {"credentials": {"api_key": f"{MARKER}\u20ac"}},
        {"credentials": {"username": "u\udc80", "password": MARKER}},
        {"credentials": {"username": "u", "password": f"{MARKER}\udc80"}},
        {
            "credentials": {
                "token_url": "http://127.0.0.1:1/t",
                "client_id": "c",
                "client_secret": f"{MARKER}\udc80",
            }
        },
    ],
)
def test_config_text_that_does_not_encode_is_invalid_config(fields):
    with SecretScan() as scan, pytest.raises(InvalidConfigError) as info:
        HTTPConfig(base_url="http://127.0.0.1:1", **fields)
    scan.assert_clean(MARKER, info.value)


def test_per_request_header_text_is_invalid_request_before_sending(server, app, connect):
    api = connect(base_url=server.url, credentials={"token": "plain-token"})
    with SecretScan() as scan:
        errors = []
        for headers in (
            {"X-Token": f"s3cr\u00e9t-{MARKER}-\u20ac"},
            {"Authorization": f"Bearer {MARKER}\udc80"},
        ):
            with pytest.raises(ConnectorError) as info:
                api.get("/x", headers=headers)
            errors.append(info.value)
        with pytest.raises(ConnectorError) as info:
            api.post("/x", json={}, idempotency_key=f"{MARKER}\u20ac")
        errors.append(info.value)
    for err in errors:
        assert err.code is ErrorCode.INVALID_REQUEST and not err.transient
    assert app.requests == []
    scan.assert_clean(MARKER, *errors)


def test_graphql_header_text_is_invalid_request_before_sending(server, app):
    from dictamesh_connectors.graphql import GraphQLConfig, GraphQLConnector

    config = GraphQLConfig(base_url=server.url + "/graphql", retry=FAST)
    with (
        GraphQLConnector(config) as gql,
        SecretScan() as scan,
        pytest.raises(ConnectorError) as info,
    ):
        gql.query("{ hello }", headers={"X-Api-Token": f"{MARKER}\u20ac"})
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert app.requests == []
    scan.assert_clean(MARKER, info.value)


# ------------------------------------------------ item 5: session() exceptions


def test_session_exceptions_never_show_a_query_api_key(connect):
    port = _free_port()  # nothing listens: connection refused
    api = connect(
        base_url=f"http://127.0.0.1:{port}",
        credentials={"api_key": MARKER, "api_key_name": "key", "api_key_in": "query"},
    )
    session = api.session()
    with SecretScan() as scan:
        with pytest.raises(requests.RequestException) as info:
            session.get(f"http://127.0.0.1:{port}/x")
        formatted = "".join(traceback.format_exception(info.value))
    assert MARKER not in formatted
    scan.assert_clean(MARKER, info.value, texts=[formatted])


# ------------------------------- item 6: credential headers on cross-origin redirects

CREDENTIAL_HEADERS = {
    "X-Auth-Token": MARKER,
    "X-Api-Token": MARKER,
    "Private-Token": MARKER,
    "X-Tenant": MARKER,  # marked sensitive in the config
}


def test_credential_headers_do_not_follow_a_cross_origin_redirect(connect):
    foreign_app = ScriptedApp()
    with LocalServer(foreign_app) as foreign:
        home_app = ScriptedApp()
        home_app.route("/same", ScriptedApp.redirect("/landing"))
        home_app.route("/away", ScriptedApp.redirect(foreign.url + "/landing", code=307))
        with LocalServer(home_app) as home:
            api = connect(base_url=home.url, sensitive_headers=["x-tenant"])
            headers = {**CREDENTIAL_HEADERS, "X-Plain": "kept", "Idempotency-Key": "k-1"}
            api.get("/same", headers=headers)
            landed = home_app.hits("/landing")[0]
            assert all(landed.header(name) == MARKER for name in CREDENTIAL_HEADERS)
            api.post("/away", json={}, headers=headers)
            session = api.session()
            session.get(home.url + "/away", headers=headers)
    seen = foreign_app.hits("/landing")
    assert len(seen) == 2
    for request in seen:
        assert request.header("X-Plain") == "kept"
        for name in CREDENTIAL_HEADERS:
            assert request.header(name) is None, name
    assert seen[0].header("Idempotency-Key") == "k-1"


# -------------------------------------------------- item 7: unbounded numbers


@pytest.mark.parametrize(
    "fields",
    [
        {"timeout": 1e308},
        {"connect_timeout": 1e300},
        {"pool_timeout": 1e300},
        {"timeout": math.inf},
        {"rate_limit_burst": 10**400},
        {"rate_limit": 1e300},
        {"max_response_bytes": 10**30},
        {"oauth2_refresh_margin": 1e300},
        {"max_redirects": 10**400},
        {"max_idle_conns": 10**400},
    ],
)
def test_numbers_beyond_their_documented_maximum_are_invalid_config(fields):
    with pytest.raises(InvalidConfigError):
        HTTPConfig(base_url="http://127.0.0.1:1", **fields)


def test_per_call_timeout_is_checked_before_any_io_and_inf_means_no_limit(server, app, connect):
    api = connect(base_url=server.url)
    assert api.get("/ok", timeout=math.inf).status_code == 200
    assert api.get("/ok", timeout=(math.inf, math.inf)).status_code == 200
    assert len(app.hits("/ok")) == 2
    for bad in (math.nan, -1.0, 0, 1e308, (1.0, math.nan), (1.0, 2.0, 3.0)):
        with pytest.raises(ConnectorError) as info:
            api.get("/bad", timeout=bad)
        assert info.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(TypeError):
        api.get("/bad", timeout="soon")
    assert app.hits("/bad") == []


# ------------------------------------------------------ item 8: hostile bodies


def test_deeply_nested_json_is_a_serialization_error(server, app, connect):
    app.route("/deep", ScriptedApp.status(200, DEEP, [("Content-Type", "application/json")]))
    api = connect(base_url=server.url)
    with pytest.raises(ConnectorError) as info:
        api.get("/deep").json()
    assert info.value.code is ErrorCode.SERIALIZATION_ERROR
    assert api.get("/ok").status_code == 200


def test_deeply_nested_oauth2_token_response_is_a_protocol_error(server, app, connect):
    app.route("/token", ScriptedApp.status(200, DEEP, [("Content-Type", "application/json")]))
    api = connect(
        base_url=server.url,
        credentials={
            "token_url": server.url + "/token",
            "client_id": "app",
            "client_secret": MARKER,
        },
    )
    with SecretScan() as scan, pytest.raises(ConnectorError) as info:
        api.get("/x")
    assert info.value.code is ErrorCode.PROTOCOL_ERROR
    scan.assert_clean(MARKER, info.value)


@pytest.mark.parametrize(
    "token_body",
    [
        {"access_token": "t\u20ac", "expires_in": 60},  # cannot go in a header
        {"access_token": "t\r\nX: y", "expires_in": 60},
        {"access_token": "t", "expires_in": int("9" * 400)},
        {"access_token": "t", "expires_in": "NaN"},
    ],
)
def test_unusable_oauth2_token_responses_are_protocol_errors(server, app, connect, token_body):
    app.route("/token", ScriptedApp.status(200, json.dumps(token_body).encode()))
    api = connect(
        base_url=server.url,
        credentials={"token_url": server.url + "/token", "client_id": "a", "client_secret": "s"},
    )
    with pytest.raises(ConnectorError) as info:
        api.get("/x")
    assert info.value.code is ErrorCode.PROTOCOL_ERROR
    assert app.hits("/x") == []


def _graphql(server: Any):
    from dictamesh_connectors.graphql import GraphQLConfig, GraphQLConnector

    return GraphQLConnector(GraphQLConfig(base_url=server.url + "/graphql", retry=FAST))


def test_graphql_deeply_nested_answer_is_a_protocol_error(server, app):
    app.route("/graphql", ScriptedApp.status(200, DEEP, [("Content-Type", "application/json")]))
    with _graphql(server) as gql, pytest.raises(ConnectorError) as info:
        gql.query("{ hello }")
    assert info.value.code is ErrorCode.PROTOCOL_ERROR


def test_graphql_retry_after_of_400_digits_is_raised_not_waited(server, app):
    body = {
        "errors": [
            {"message": "slow down", "extensions": {"code": "THROTTLED", "retryAfter": 10**400}}
        ]
    }
    app.route("/graphql", ScriptedApp.status(200, json.dumps(body).encode()))
    with _graphql(server) as gql, pytest.raises(ConnectorError) as info:
        gql.query("{ hello }")
    assert info.value.code is ErrorCode.RATE_LIMITED
    assert info.value.retry_after == math.inf
    assert len(app.hits("/graphql")) == 1  # beyond the policy: raised at once


# ------------------------------------------------- item 12: iter_lines / iter_text


def test_iter_lines_and_iter_text_on_a_streaming_endpoint(server, app, connect):
    # Chunks split a \r\n and a multi-byte character; the last line has no ending.
    chunks = [b"first\r", b"\nsec", b"ond \xc3", b"\xa9\n", b"\n", b"third\rfourth\r\n", b"last"]

    def handle(environ):
        return 200, [("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")], chunks

    app.route("/lines", handle)
    api = connect(base_url=server.url)
    with api.stream("GET", "/lines") as response:
        lines = list(response.iter_lines())
    assert lines == ["first", "second \u00e9", "", "third", "fourth", "last"]
    with api.stream("GET", "/lines") as response:
        text = "".join(response.iter_text())
    assert text == b"".join(chunks).decode()
    assert list(api.get("/lines").iter_lines()) == lines


# -------------------------------------------------------------- the 505 row


def test_505_is_permanent_unsupported_and_not_retried(server, app, connect):
    app.route("/v", ScriptedApp.status(505, b"no"))
    api = connect(base_url=server.url)
    with pytest.raises(ConnectorError) as info:
        api.get("/v")
    err = info.value
    assert err.code is ErrorCode.UNSUPPORTED
    assert not err.transient and not err.maybe_applied
    assert len(app.hits("/v")) == 1
