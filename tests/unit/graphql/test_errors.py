"""GraphQL response classification: request errors, partial data, extension codes, statuses."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ErrorCode,
    RetryHint,
)
from dictamesh_connectors.graphql.errors import (
    EXTENSION_CODES,
    GraphQLAuthenticationError,
    GraphQLError,
    GraphQLResponse,
    classify_response,
)

URL = "https://api.example.com/graphql"
GQL = {"Content-Type": "application/graphql-response+json; charset=utf-8"}
JSON = {"Content-Type": "application/json"}


def classify(
    status: int, body: Any, headers: dict[str, str] | None = None, **kwargs: Any
) -> GraphQLResponse:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return classify_response(status, headers or JSON, content, url=URL, **kwargs)


def error_of(status: int, body: Any, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    with pytest.raises(ConnectorError) as info:
        classify(status, body, headers, **kw)
    return info.value


def test_data_without_errors_is_returned_with_extensions_and_headers() -> None:
    result = classify(
        200,
        {"data": {"hello": "world"}, "extensions": {"cost": 3}},
        {**JSON, "X-RateLimit-Remaining": "9"},
    )
    assert result.data == {"hello": "world"}
    assert result.extensions == {"cost": 3}
    assert result.status_code == 200
    assert result.headers["x-ratelimit-remaining"] == "9"


def test_request_error_without_data_entry_is_invalid_request() -> None:
    body = {"errors": [{"message": "Cannot query field 'nope'", "locations": [{"line": 1}]}]}
    err = error_of(200, body)
    assert type(err) is GraphQLError
    assert err.code is ErrorCode.INVALID_REQUEST
    assert not err.transient and err.retry_hint is RetryHint.NONE
    assert err.errors == body["errors"]
    assert err.data is None
    assert "Cannot query field 'nope'" in err.message
    assert URL in err.message


def test_null_data_with_pathless_errors_is_a_request_error_as_graphql_core_sends_it() -> None:
    body = {"data": None, "errors": [{"message": "Cannot query field 'nope'"}]}
    err = error_of(200, body, operation="mutation")
    assert err.code is ErrorCode.INVALID_REQUEST
    assert not err.maybe_applied


def test_null_data_with_a_field_error_is_an_execution_error() -> None:
    body = {"data": None, "errors": [{"message": "boom", "path": ["pay"]}]}
    err = error_of(200, body, operation="mutation")
    assert err.code is ErrorCode.GRAPHQL_ERROR
    assert err.maybe_applied


def test_partial_data_with_errors_is_graphql_error_carrying_data_and_every_error() -> None:
    body = {
        "data": {"me": {"name": "Ada", "orders": None, "avatar": None}},
        "errors": [
            {
                "message": "orders service down",
                "path": ["me", "orders"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
            },
            {"message": "avatar missing", "path": ["me", "avatar"]},
        ],
    }
    err = error_of(200, body, operation_name="Me")
    assert err.code is ErrorCode.GRAPHQL_ERROR
    assert not err.transient
    assert err.data == body["data"]
    assert [e["path"] for e in err.errors] == [["me", "orders"], ["me", "avatar"]]
    assert err.errors[0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "(at me.orders)" in err.message and "and 1 more error" in err.message
    assert "query Me" in err.message
    assert err.details["status_code"] == 200


@pytest.mark.parametrize(
    ("extension_code", "expected", "transient", "cls"),
    [
        ("UNAUTHENTICATED", ErrorCode.AUTH_FAILED, False, GraphQLAuthenticationError),
        ("FORBIDDEN", ErrorCode.PERMISSION_DENIED, False, GraphQLError),
        ("THROTTLED", ErrorCode.RATE_LIMITED, True, GraphQLError),
        ("RATE_LIMITED", ErrorCode.RATE_LIMITED, True, GraphQLError),
        ("GRAPHQL_VALIDATION_FAILED", ErrorCode.INVALID_REQUEST, False, GraphQLError),
        ("GRAPHQL_PARSE_FAILED", ErrorCode.INVALID_REQUEST, False, GraphQLError),
        ("BAD_USER_INPUT", ErrorCode.INVALID_INPUT, False, GraphQLError),
        ("PERSISTED_QUERY_NOT_SUPPORTED", ErrorCode.UNSUPPORTED, False, GraphQLError),
        ("SOMETHING_CUSTOM", ErrorCode.GRAPHQL_ERROR, False, GraphQLError),
    ],
)
def test_extension_codes_map_to_our_codes(
    extension_code: str, expected: ErrorCode, transient: bool, cls: type[GraphQLError]
) -> None:
    entry = {"message": "x", "path": ["a"], "extensions": {"code": extension_code}}
    err = error_of(200, {"data": {"a": None}, "errors": [entry]})
    assert type(err) is cls
    assert err.code is expected
    assert err.transient is transient


def test_extension_code_matching_is_case_insensitive_and_reads_github_type() -> None:
    err = error_of(200, {"errors": [{"message": "slow down", "type": "RATE_LIMITED"}]})
    assert err.code is ErrorCode.RATE_LIMITED
    err = error_of(
        200, {"errors": [{"message": "who?", "extensions": {"code": "unauthenticated"}}]}
    )
    assert err.code is ErrorCode.AUTH_FAILED


def test_unauthenticated_is_caught_as_authentication_error() -> None:
    body = {"data": None, "errors": [{"message": "no", "extensions": {"code": "UNAUTHENTICATED"}}]}
    with pytest.raises(AuthenticationError):
        classify(200, body)


def test_permanent_codes_win_over_throttling_when_errors_disagree() -> None:
    body = {
        "data": None,
        "errors": [
            {"message": "slow", "extensions": {"code": "THROTTLED"}},
            {"message": "who?", "extensions": {"code": "FORBIDDEN"}},
        ],
    }
    assert error_of(200, body).code is ErrorCode.PERMISSION_DENIED


def test_throttled_takes_retry_after_from_the_header() -> None:
    body = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
    err = error_of(200, body, {**JSON, "Retry-After": "7"})
    assert err.code is ErrorCode.RATE_LIMITED
    assert err.retry_after == 7.0
    assert err.retry_hint is RetryHint.RETRY_AFTER


def test_permanent_errors_drop_retry_after() -> None:
    body = {"errors": [{"message": "no", "extensions": {"code": "FORBIDDEN"}}]}
    err = error_of(200, body, {**JSON, "Retry-After": "30"})
    assert err.retry_after is None and err.retry_hint is RetryHint.NONE


def test_throttled_falls_back_to_extensions_retry_after() -> None:
    body = {"errors": [{"message": "T", "extensions": {"code": "THROTTLED", "retryAfter": 2.5}}]}
    err = error_of(200, body)
    assert err.retry_after == 2.5


def test_graphql_response_media_type_is_parsed_whatever_the_status() -> None:
    body = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
    err = error_of(429, body, {**GQL, "Retry-After": "3"})
    assert isinstance(err, GraphQLError)
    assert err.code is ErrorCode.RATE_LIMITED and err.retry_after == 3.0
    assert err.errors[0]["message"] == "Throttled"


@pytest.mark.parametrize("status", [400, 422])
def test_request_errors_on_400_and_422_are_invalid_request(status: int) -> None:
    body = {"errors": [{"message": "Variable $id got invalid value"}]}
    err = error_of(status, body, GQL)
    assert isinstance(err, GraphQLError)
    assert err.code is ErrorCode.INVALID_REQUEST
    assert not err.transient


def test_status_decides_when_no_extension_code_maps() -> None:
    err = error_of(403, {"errors": [{"message": "go away"}]}, GQL)
    assert isinstance(err, GraphQLError)
    assert err.code is ErrorCode.PERMISSION_DENIED and not err.transient

    err = error_of(503, {"errors": [{"message": "maintenance"}]}, {**GQL, "Retry-After": "1"})
    assert isinstance(err, GraphQLError)
    assert err.code is ErrorCode.UNAVAILABLE and err.transient
    assert err.retry_after == 1.0
    assert err.errors == [{"message": "maintenance"}]


def test_status_294_partial_success_is_a_2xx() -> None:
    body = {"data": {"a": 1, "b": None}, "errors": [{"message": "b failed", "path": ["b"]}]}
    err = error_of(294, body, GQL)
    assert err.code is ErrorCode.GRAPHQL_ERROR and err.data == {"a": 1, "b": None}
    assert classify(294, {"data": {"a": 1}}, GQL).data == {"a": 1}


@pytest.mark.parametrize(
    ("status", "code", "transient", "maybe_applied"),
    [
        (502, ErrorCode.UNAVAILABLE, True, True),
        (503, ErrorCode.UNAVAILABLE, True, False),
        (500, ErrorCode.UNAVAILABLE, True, True),
        (401, ErrorCode.AUTH_FAILED, False, False),
        (404, ErrorCode.NOT_FOUND, False, False),
    ],
)
def test_non_graphql_bodies_on_error_statuses_use_the_http_mapping(
    status: int, code: ErrorCode, transient: bool, maybe_applied: bool
) -> None:
    err = error_of(
        status, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}, idempotent=False
    )
    assert not isinstance(err, GraphQLError)
    assert err.code is code
    assert err.transient is transient
    assert err.maybe_applied is maybe_applied
    assert err.details["status_code"] == status


def test_legacy_json_error_status_with_non_graphql_json_uses_the_http_mapping() -> None:
    err = error_of(503, {"message": "upstream overloaded"}, JSON)
    assert not isinstance(err, GraphQLError)
    assert err.code is ErrorCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", JSON),
        (b"<html>hello</html>", {"Content-Type": "text/html"}),
        (b'["a", "list"]', JSON),
        (b'{"something": "else"}', JSON),
        (b'{"errors": "not a list"}', JSON),
        (b'{"errors": [{"no": "message"}]}', JSON),
        (b"", JSON),
    ],
)
def test_2xx_without_a_graphql_body_is_a_protocol_error(
    body: bytes, headers: dict[str, str]
) -> None:
    err = error_of(200, body, headers)
    assert err.code is ErrorCode.PROTOCOL_ERROR
    assert not err.transient


def test_bad_json_on_a_graphql_media_type_with_5xx_uses_the_http_mapping() -> None:
    err = error_of(502, b"{truncated", GQL)
    assert err.code is ErrorCode.UNAVAILABLE and err.transient


def test_mutation_errors_after_execution_began_are_maybe_applied() -> None:
    body = {"data": {"pay": None}, "errors": [{"message": "boom", "path": ["pay"]}]}
    assert error_of(200, body, operation="mutation").maybe_applied
    assert not error_of(200, body, operation="query").maybe_applied
    request_error = {"errors": [{"message": "invalid"}]}
    assert not error_of(200, request_error, operation="mutation").maybe_applied


def test_mutation_500_with_graphql_body_without_data_is_still_maybe_applied() -> None:
    body = {"errors": [{"message": "Internal error"}]}
    err = error_of(500, body, GQL, operation="mutation", idempotent=False)
    assert err.maybe_applied and err.transient  # the core loop retries it only if idempotent


def test_409_with_idempotency_key_is_transient() -> None:
    body = {"errors": [{"message": "still running"}]}
    assert error_of(409, body, GQL, idempotency_key=True).transient
    assert not error_of(409, body, GQL, idempotency_key=False).transient


def test_long_messages_are_truncated() -> None:
    err = error_of(200, {"errors": [{"message": "x" * 10_000}]})
    assert len(err.message) < 600


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_errors_pickle_with_partial_data_and_every_error(protocol: int) -> None:
    body = {
        "data": {"me": {"name": "Ada", "orders": None}},
        "errors": [
            {
                "message": "orders down",
                "path": ["me", "orders"],
                "locations": [{"line": 1, "column": 9}],
                "extensions": {"code": "UNAUTHENTICATED", "detail": {"why": "expired"}},
            }
        ],
        "extensions": {"requestId": "r-1"},
    }
    err = error_of(200, body, {**JSON, "Retry-After": "5"}, operation_name="Me")
    clone = pickle.loads(pickle.dumps(err, protocol=protocol))
    assert type(clone) is GraphQLAuthenticationError
    assert isinstance(clone, AuthenticationError)
    assert clone.code is err.code is ErrorCode.AUTH_FAILED
    assert clone.data == body["data"]
    assert clone.errors == body["errors"]
    assert clone.extensions == {"requestId": "r-1"}
    assert clone.message == err.message
    assert (clone.transient, clone.retry_hint, clone.maybe_applied) == (
        err.transient,
        err.retry_hint,
        err.maybe_applied,
    )


def test_rate_limited_error_pickles_with_retry_after() -> None:
    body = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
    err = error_of(429, body, {**GQL, "Retry-After": "4"})
    clone = pickle.loads(pickle.dumps(err))
    assert clone.retry_after == 4.0 and clone.transient and clone.code is ErrorCode.RATE_LIMITED


def test_extension_table_only_maps_to_known_codes() -> None:
    assert all(isinstance(code, ErrorCode) for code in EXTENSION_CODES.values())
    assert EXTENSION_CODES["UNAUTHENTICATED"] is ErrorCode.AUTH_FAILED
    assert EXTENSION_CODES["FORBIDDEN"] is ErrorCode.PERMISSION_DENIED
    assert EXTENSION_CODES["THROTTLED"] is ErrorCode.RATE_LIMITED
