"""The HTTP error tables: status -> code, Retry-After, transport exceptions, redaction."""

import email.utils
import pickle
import socket
import ssl

import pytest
import requests
import urllib3.exceptions as uexc
from hypothesis import given
from hypothesis import strategies as st

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    RetryHint,
)
from dictamesh_connectors.http.errors import (
    HTTPStatusError,
    InvalidRequestError,
    error_for_status,
    parse_retry_after,
    translate_exception,
)
from dictamesh_connectors.http.models import Response
from dictamesh_connectors.http.retry import is_idempotent

URL = "https://api.test/v1/items?id=3&api_key=SECRET-KEY"
NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    "status,code,transient,maybe_applied_for_post",
    [
        (400, ErrorCode.INVALID_REQUEST, False, False),
        (401, ErrorCode.AUTH_FAILED, False, False),
        (403, ErrorCode.PERMISSION_DENIED, False, False),
        (404, ErrorCode.NOT_FOUND, False, False),
        (405, ErrorCode.INVALID_REQUEST, False, False),
        (408, ErrorCode.TIMEOUT, True, False),
        (409, ErrorCode.CONFLICT, False, False),
        (410, ErrorCode.NOT_FOUND, False, False),
        (413, ErrorCode.PAYLOAD_TOO_LARGE, False, False),
        (418, ErrorCode.INVALID_REQUEST, False, False),
        (422, ErrorCode.INVALID_INPUT, False, False),
        (423, ErrorCode.LOCK_TIMEOUT, False, False),
        (425, ErrorCode.UNAVAILABLE, True, False),
        (429, ErrorCode.RATE_LIMITED, True, False),
        (500, ErrorCode.UNAVAILABLE, True, True),
        (501, ErrorCode.UNSUPPORTED, False, False),
        (502, ErrorCode.UNAVAILABLE, True, True),
        (503, ErrorCode.UNAVAILABLE, True, False),
        (504, ErrorCode.UNAVAILABLE, True, True),
        (599, ErrorCode.UNAVAILABLE, True, True),
    ],
)
def test_status_table(status, code, transient, maybe_applied_for_post):
    err = error_for_status(status, {}, method="POST", url=URL)
    assert err.code is code and err.transient is transient
    assert err.maybe_applied is maybe_applied_for_post
    assert err.status_code == status and err.details["status_code"] == status
    assert error_for_status(status, {}, method="GET", url=URL).maybe_applied is False
    assert "SECRET-KEY" not in str(err) and "SECRET-KEY" not in repr(err)


def test_message_format_and_classes():
    err = error_for_status(503, {}, method="GET", url="https://host/path")
    assert str(err) == "http: GET https://host/path: 503 Service Unavailable"
    assert isinstance(err, HTTPStatusError) and err.connector == "http"
    err401 = error_for_status(401, {}, method="GET", url="https://host/")
    assert isinstance(err401, AuthenticationError)
    assert err401.retry_hint is RetryHint.REFRESH_CREDENTIALS
    assert isinstance(
        error_for_status(408, {}, method="GET", url="https://h/"), ConnectorTimeoutError
    )
    assert error_for_status(403, {}, method="GET", url="https://h/").retry_hint is RetryHint.NONE


def test_retry_after_on_errors():
    err = error_for_status(429, {"Retry-After": "7"}, method="POST", url=URL)
    assert err.retry_after == 7.0 and err.retry_hint is RetryHint.RETRY_AFTER
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    err = error_for_status(503, {"Retry-After": date}, method="GET", url=URL, now=NOW)
    assert err.retry_after == pytest.approx(30.0)
    # 413 becomes transient only when the server says when to come back.
    assert error_for_status(413, {"Retry-After": "2"}, method="PUT", url=URL).transient
    # Permanent errors carry no retry_after.
    assert error_for_status(400, {"Retry-After": "2"}, method="GET", url=URL).retry_after is None


def test_conflict_with_idempotency_key_is_transient():
    err = error_for_status(409, {}, method="POST", url=URL, has_idempotency_key=True)
    assert err.transient and err.code is ErrorCode.CONFLICT and not err.maybe_applied


def test_status_error_pickles_without_the_response():
    response = Response(503, {"Retry-After": "1"}, b"busy", url="https://h/")
    err = error_for_status(503, response.headers, method="GET", url=URL, response=response)
    assert err.response is response
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is type(err) and clone.response is None
    assert clone.status_code == 503 and clone.code is ErrorCode.UNAVAILABLE
    assert clone.retry_after == 1.0 and str(clone) == str(err)
    auth = pickle.loads(pickle.dumps(error_for_status(401, {}, method="GET", url=URL)))
    assert isinstance(auth, AuthenticationError) and auth.status_code == 401


@pytest.mark.parametrize(
    "value,expected",
    [
        ("120", 120.0),
        ("  5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (email.utils.formatdate(NOW + 60, usegmt=True), 60.0),
        (email.utils.formatdate(NOW - 3600, usegmt=True), 0.0),  # past date
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),  # obsolete RFC 850 form
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1e999", None),
        ("nan", None),
        ("12abc", None),
        ("Fri, 99 Foo 2024 99:99:99 GMT", None),
        ("Fri, 31 Dec 1999 23:59:59", None),  # no zone
    ],
)
def test_parse_retry_after(value, expected):
    got = parse_retry_after(value, now=NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(text):
    got = parse_retry_after(text, now=NOW)
    assert got is None or got >= 0


def _wrap(reason):
    return requests.exceptions.ConnectionError(
        uexc.MaxRetryError(None, "/x?api_key=SECRET-KEY", reason)
    )


@pytest.mark.parametrize(
    "exc,code,transient,sent",
    [
        (
            _wrap(uexc.NewConnectionError(None, "[Errno 111] Connection refused")),
            ErrorCode.CONNECTION_FAILED,
            True,
            False,
        ),
        (
            _wrap(
                uexc.NameResolutionError(
                    "h", None, socket.gaierror(-2, "Name or service not known")
                )
            ),
            ErrorCode.CONNECTION_FAILED,
            True,
            False,
        ),
        (
            requests.exceptions.ConnectTimeout(
                uexc.MaxRetryError(None, "/", uexc.ConnectTimeoutError())
            ),
            ErrorCode.TIMEOUT,
            True,
            False,
        ),
        (
            requests.exceptions.ReadTimeout(uexc.ReadTimeoutError(None, "/", "read timed out")),
            ErrorCode.TIMEOUT,
            True,
            True,
        ),
        (
            uexc.ProtocolError(
                "Connection broken", ConnectionResetError(104, "Connection reset by peer")
            ),
            ErrorCode.CONNECTION_LOST,
            True,
            True,
        ),
        (
            requests.exceptions.ConnectionError(
                uexc.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
            ),
            ErrorCode.CONNECTION_LOST,
            True,
            True,
        ),
        (uexc.EmptyPoolError(None, "full"), ErrorCode.RESOURCE_EXHAUSTED, True, False),
        (uexc.DecodeError("bad gzip"), ErrorCode.PROTOCOL_ERROR, False, True),
    ],
)
def test_transport_exceptions(exc, code, transient, sent):
    post = translate_exception(exc, method="POST", url=URL, idempotent=False)
    get = translate_exception(exc, method="GET", url=URL, idempotent=True)
    assert post.code is code and post.transient is transient
    assert post.maybe_applied is sent and get.maybe_applied is False
    for err in (post, get):
        assert "SECRET-KEY" not in str(err)
        assert str(err).startswith("http: ")


def test_certificate_verification_failure_is_permanent_and_clear():
    cert_error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert_error.verify_message = "unable to get local issuer certificate"
    exc = requests.exceptions.SSLError(_wrap(uexc.SSLError(cert_error)).args[0])
    err = translate_exception(exc, method="GET", url=URL, idempotent=True)
    assert err.code is ErrorCode.CONNECTION_FAILED and not err.transient
    assert "certificate verification failed" in str(err)
    assert "ca_bundle" in str(err)


def test_invalid_request_error_is_a_value_error_with_its_own_code():
    err = InvalidRequestError("bad", connector="http")
    assert isinstance(err, InvalidConfigError) and isinstance(err, ValueError)
    assert err.code is ErrorCode.INVALID_REQUEST
    assert pickle.loads(pickle.dumps(err)).code is ErrorCode.INVALID_REQUEST


def test_is_idempotent():
    for method in ("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"):
        assert is_idempotent(method)
    assert not is_idempotent("POST") and not is_idempotent("PATCH")
    assert is_idempotent("POST", {"Idempotency-Key": "k"})
    assert not is_idempotent("POST", {"Idempotency-Key": ""})
    assert is_idempotent("POST", override=True) and not is_idempotent("GET", override=False)


def test_generic_connector_error_still_maps():
    err = translate_exception(RuntimeError("odd"), method="GET", url=URL, idempotent=True)
    assert isinstance(err, ConnectorError)
