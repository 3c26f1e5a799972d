"""HTTPConnector against ``responses`` mocks: mapping, retries (fake clock), auth, URL safety."""

import io
import json
import logging
import traceback
import urllib.parse

import pytest
import requests
import urllib3.exceptions as uexc
from responses import matchers

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from dictamesh_connectors.http import (
    Cursor,
    HTTPConfig,
    HTTPConnector,
    HTTPStatusError,
    InvalidRequestError,
    LinkHeader,
    OffsetLimit,
    PageNumber,
    Request,
    iter_items,
)
from dictamesh_connectors.retry import RetryPolicy

from ..fakes import FakeClock
from .mocking import mocked_http

BASE = "https://api.test/v1"
SECRET = "Sup3r-Secret-T0ken"
POLICY = RetryPolicy(max_attempts=3, initial_backoff=0.5, max_backoff=10.0, jitter=False)


@pytest.fixture
def rsps():
    with mocked_http(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make(clock):
    made = []

    def build(**fields):
        fields.setdefault("base_url", BASE)
        fields.setdefault("retry", POLICY)
        connector = HTTPConnector(HTTPConfig(**fields), sleep=clock.sleep, clock=clock.clock)
        connector.connect()
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.disconnect()


def calls(rsps, url=None):
    return [c for c in rsps.calls if url is None or c.request.url.split("?")[0] == url]


# ------------------------------------------------------------------ basics


def test_get_json_and_response_fields(rsps, make):
    rsps.get(BASE + "/users/1", json={"id": 1}, headers={"X-Trace": "t"})
    response = make().get("/users/1")
    assert response.status_code == 200 and response.json() == {"id": 1}
    assert response.headers["x-trace"] == "t" and response.headers["X-TRACE"] == "t"
    assert response.body == b'{"id": 1}' and response.text == '{"id": 1}'
    assert response.url == BASE + "/users/1" and response.request_method == "GET"
    assert response.elapsed.total_seconds() >= 0 and response.ok


def test_paths_join_onto_the_base(rsps, make):
    rsps.get(BASE + "/a/b", body="ok")
    rsps.get(BASE, body="root")
    connector = make(base_url=BASE + "/")
    assert connector.get("a/b").text == "ok"
    assert connector.get("/a/b").text == "ok"
    assert connector.get("").text == "root"
    assert connector.url_for("/x", {"q": "a b"}) == BASE + "/x?q=a+b"


def test_post_json_form_raw_and_files(rsps, make):
    rsps.post(BASE + "/echo", body="ok")
    connector = make()
    connector.post("/echo", json={"a": [1, 2]})
    connector.post("/echo", data={"f": "v"})
    connector.post("/echo", data=b"raw")
    connector.post("/echo", data=io.BytesIO(b"stream"))
    connector.post("/echo", files={"up": ("a.txt", b"data")})
    sent = [c.request for c in rsps.calls]
    assert sent[0].headers["Content-Type"] == "application/json"
    assert json.loads(sent[0].body) == {"a": [1, 2]}
    assert sent[1].body == "f=v"
    assert sent[1].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent[2].body == b"raw" and sent[2].headers["Content-Length"] == "3"
    assert sent[3].headers["Content-Length"] == "6"
    assert sent[4].headers["Content-Type"].startswith("multipart/form-data")


def test_default_and_request_headers(rsps, make):
    rsps.get(BASE + "/h", body="ok")
    connector = make(headers={"X-Tenant": "7"}, user_agent="agent/1")
    connector.get("/h", headers={"X-Extra": "1", "Accept": None})
    sent = rsps.calls[0].request.headers
    assert sent["X-Tenant"] == "7" and sent["X-Extra"] == "1"
    assert sent["User-Agent"] == "agent/1" and "Accept" not in sent


def test_execute_with_a_request_object(rsps, make):
    rsps.put(BASE + "/r", body="ok", match=[matchers.query_param_matcher({"a": "1"})])
    response = make().execute(Request("put", "/r", {"X-A": "1"}, b"body", {"a": "1"}))
    assert response.request_method == "PUT"
    assert rsps.calls[0].request.body == b"body"


def test_not_connected(make):
    connector = HTTPConnector(HTTPConfig(base_url=BASE))
    with pytest.raises(NotConnectedError):
        connector.get("/x")
    with pytest.raises(NotConnectedError):
        connector.session()


# ------------------------------------------------------------ status codes


@pytest.mark.parametrize(
    "status,code",
    [
        (400, ErrorCode.INVALID_REQUEST),
        (401, ErrorCode.AUTH_FAILED),
        (403, ErrorCode.PERMISSION_DENIED),
        (404, ErrorCode.NOT_FOUND),
        (409, ErrorCode.CONFLICT),
        (413, ErrorCode.PAYLOAD_TOO_LARGE),
        (429, ErrorCode.RATE_LIMITED),
        (500, ErrorCode.UNAVAILABLE),
        (503, ErrorCode.UNAVAILABLE),
    ],
)
def test_status_raises_with_the_response(rsps, make, status, code):
    rsps.get(BASE + "/s", body=b"why", status=status)
    with pytest.raises(HTTPStatusError) as info:
        make(retry=RetryPolicy.no_retry()).get("/s")
    err = info.value
    assert err.code is code and err.status_code == status
    assert err.response is not None and err.response.body == b"why"
    assert str(err).startswith(f"http: GET {BASE}/s: {status} ")


def test_raise_for_status_false_returns_the_last_response(rsps, make, clock):
    rsps.get(BASE + "/missing", status=404, body="nope")
    rsps.get(BASE + "/busy", status=503, body="busy")
    connector = make()
    assert connector.get("/missing", raise_for_status=False).status_code == 404
    assert len(calls(rsps)) == 1
    response = connector.get("/busy", raise_for_status=False)
    assert response.status_code == 503 and response.text == "busy"
    assert len(calls(rsps, BASE + "/busy")) == 3  # transient statuses are still retried


# ----------------------------------------------------------------- retries


def test_get_retried_on_503_then_succeeds(rsps, make, clock):
    rsps.get(BASE + "/r", status=503)
    rsps.get(BASE + "/r", status=503)
    rsps.get(BASE + "/r", body="ok")
    assert make().get("/r").text == "ok"
    assert len(calls(rsps)) == 3
    assert clock.sleeps == [0.5, 1.0]


def test_retry_after_seconds_and_date_are_honoured(rsps, make, clock):
    rsps.get(BASE + "/r", status=429, headers={"Retry-After": "3"})
    rsps.get(BASE + "/r", status=503, headers={"Retry-After": "Thu, 01 Jan 2099 00:00:00 GMT"})
    rsps.get(BASE + "/r", body="ok")
    with pytest.raises(HTTPStatusError) as info:
        make().get("/r")
    # 3 s is waited in full; the far date is beyond max_backoff (10 s): it is
    # raised with retry_after set, never retried early.
    assert clock.sleeps == [3.0]
    assert info.value.status_code == 503 and info.value.retry_after > 10
    assert len(calls(rsps)) == 2


def test_retry_after_beyond_the_deadline_gives_up(rsps, make, clock):
    rsps.get(BASE + "/r", status=503, headers={"Retry-After": "8"})
    policy = RetryPolicy(max_attempts=5, max_backoff=60, deadline=5, jitter=False)
    with pytest.raises(ConnectorError) as info:
        make(retry=policy).get("/r")
    assert info.value.retry_after == 8.0 and clock.sleeps == []
    assert len(calls(rsps)) == 1


def test_post_500_is_sent_once_without_a_key(rsps, make, clock):
    rsps.post(BASE + "/orders", status=500)
    with pytest.raises(HTTPStatusError) as info:
        make().post("/orders", json={"a": 1})
    assert len(calls(rsps)) == 1 and info.value.maybe_applied


def test_post_500_is_retried_with_an_idempotency_key(rsps, make, clock):
    rsps.post(BASE + "/orders", status=500)
    rsps.post(BASE + "/orders", body="ok")
    assert make().post("/orders", json={"a": 1}, idempotency_key="k-1").text == "ok"
    sent = calls(rsps)
    assert len(sent) == 2
    assert all(c.request.headers["Idempotency-Key"] == "k-1" for c in sent)


def test_post_idempotent_override_and_auto_key(rsps, make, clock):
    rsps.post(BASE + "/graphql", status=502)
    rsps.post(BASE + "/graphql", body="ok")
    assert make().post("/graphql", json={"query": "{a}"}, idempotent=True).text == "ok"
    rsps.post(BASE + "/auto", status=500)
    rsps.post(BASE + "/auto", body="ok")
    assert make(auto_idempotency_key=True).post("/auto").text == "ok"
    keys = {c.request.headers["Idempotency-Key"] for c in calls(rsps, BASE + "/auto")}
    assert len(keys) == 1  # the same key on every attempt


def test_an_auto_keyed_post_that_may_have_applied_says_so(rsps, make, clock):
    # Found by the fault campaign (tests/chaos): the connector retries an
    # auto-keyed POST with its key, but once it gives up the caller cannot
    # resend with that key (its next call gets a new one): maybe_applied.
    lost = requests.exceptions.ConnectionError(uexc.ProtocolError("Connection aborted."))
    for _ in range(3):
        rsps.post(BASE + "/auto", body=lost)
    with pytest.raises(ConnectorError) as info:
        make(auto_idempotency_key=True).post("/auto", json={})
    assert len(calls(rsps, BASE + "/auto")) == 3 and info.value.maybe_applied
    # With the caller's own key, resending that key is safe: not maybe_applied.
    for _ in range(3):
        rsps.post(BASE + "/keyed", body=lost)
    with pytest.raises(ConnectorError) as info:
        make().post("/keyed", json={}, idempotency_key="k-1")
    assert len(calls(rsps, BASE + "/keyed")) == 3 and not info.value.maybe_applied


def test_get_idempotent_false_is_not_retried_after_sending(rsps, make):
    rsps.get(BASE + "/r", status=500)
    with pytest.raises(HTTPStatusError):
        make().get("/r", idempotent=False)
    assert len(calls(rsps)) == 1


def test_post_503_and_429_are_retried_for_every_method(rsps, make):
    rsps.post(BASE + "/o", status=503)
    rsps.post(BASE + "/o", status=429)
    rsps.post(BASE + "/o", body="ok")
    assert make().post("/o", json={}).text == "ok"


def test_connection_refused_is_retried_for_post(rsps, make, clock):
    refused = requests.exceptions.ConnectionError(
        uexc.MaxRetryError(None, "/", uexc.NewConnectionError(None, "refused"))
    )
    rsps.post(BASE + "/o", body=refused)
    rsps.post(BASE + "/o", body="ok")
    assert make().post("/o", json={}).text == "ok"
    assert len(calls(rsps)) == 2


def test_read_timeout_on_post_is_not_retried(rsps, make):
    rsps.post(BASE + "/o", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ConnectorTimeoutError) as info:
        make().post("/o", json={})
    assert info.value.maybe_applied and info.value.transient
    assert len(calls(rsps)) == 1


def test_read_timeout_on_get_is_retried(rsps, make):
    rsps.get(BASE + "/o", body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.get(BASE + "/o", body="ok")
    assert make().get("/o").text == "ok"


def test_unrewindable_body_is_never_resent(rsps, make):
    rsps.put(BASE + "/u", status=503)
    with pytest.raises(HTTPStatusError):
        make().put("/u", data=iter([b"a", b"b"]))
    assert len(calls(rsps)) == 1


def test_max_retries_zero_means_one_attempt(rsps, make):
    rsps.get(BASE + "/r", status=503)
    with pytest.raises(HTTPStatusError):
        make(max_retries=0).get("/r")
    assert len(calls(rsps)) == 1


# -------------------------------------------------------------- URL safety


@pytest.mark.parametrize(
    "path",
    [
        "https://evil.test/steal",
        "//evil.test/steal",
        "http://api.test/v1/x",  # scheme change = another origin
        "https://api.test:444/x",
        "https://user:pw@api.test/x",
        "ftp://api.test/x",
        "/x\r\nHost: evil",
        "/x y",
        "/\\evil.test",
        "/x\x00",
    ],
)
def test_unsafe_urls_are_rejected_before_sending(rsps, make, path):
    with pytest.raises(InvalidRequestError) as info:
        make().get(path)
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert isinstance(info.value, InvalidConfigError)
    assert not rsps.calls


def test_absolute_urls_to_own_or_allowed_hosts(rsps, make):
    rsps.get(BASE + "/x", body="own")
    rsps.get("https://cdn.test/f", body="cdn")
    rsps.get("https://a.files.test/f", body="files")
    connector = make(allowed_hosts=["cdn.test", "*.files.test"], credentials={"token": SECRET})
    assert connector.get(BASE + "/x").text == "own"
    assert connector.get("https://cdn.test/f").text == "cdn"
    assert connector.get("https://a.files.test/f").text == "files"
    sent = {c.request.url: c.request.headers.get("Authorization") for c in rsps.calls}
    assert sent[BASE + "/x"] == "Bearer " + SECRET
    assert sent["https://cdn.test/f"] is None and sent["https://a.files.test/f"] is None


@pytest.mark.parametrize(
    "headers",
    [{"X-A": "v\r\nInjected: 1"}, {"X-A": "v\nx"}, {"Bad\r\nName": "v"}, {"": "v"}, {"X A": "v"}],
)
def test_header_injection_is_rejected(rsps, make, headers):
    with pytest.raises(InvalidRequestError):
        make().get("/x", headers=headers)
    assert not rsps.calls


@pytest.mark.parametrize("method", ["GE T", "GET\r\n", "", "G(T", None, 7])
def test_invalid_methods_are_rejected(rsps, make, method):
    with pytest.raises(InvalidRequestError):
        make().request(method, "/x")
    assert not rsps.calls


def test_bad_arguments(rsps, make):
    connector = make()
    with pytest.raises(InvalidRequestError):
        connector.post("/x", json={"a": float("nan")})
    with pytest.raises(InvalidRequestError):
        connector.execute(Request("POST", "/x", body=b"a", json={"b": 1}))
    with pytest.raises(InvalidRequestError):
        connector.get("/x", timeout=-1)
    with pytest.raises(InvalidRequestError):
        connector.get("/x", idempotency_key="a\nb")
    assert not rsps.calls


# -------------------------------------------------------------------- auth


def test_basic_auth(rsps, make):
    rsps.get(BASE + "/x", body="ok")
    make(credentials={"username": "alice", "password": SECRET}).get("/x")
    header = rsps.calls[0].request.headers["Authorization"]
    assert header == requests.auth._basic_auth_str("alice", SECRET)


def test_api_key_header_and_query(rsps, make):
    rsps.get(BASE + "/x", body="ok")
    make(credentials={"api_key": SECRET, "api_key_name": "X-Key"}).get("/x")
    assert rsps.calls[0].request.headers["X-Key"] == SECRET
    rsps.get(BASE + "/q", status=404)
    connector = make(credentials={"api_key": SECRET, "api_key_in": "query", "api_key_name": "key"})
    with pytest.raises(HTTPStatusError) as info:
        connector.get("/q", params={"page": 2})
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(rsps.calls[-1].request.url).query)
    assert query == {"page": ["2"], "key": [SECRET]}
    assert SECRET not in str(info.value) and SECRET not in info.value.response.url
    assert SECRET not in "".join(traceback.format_exception(info.value))


def _token_body(token, expires_in=3600):
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}


OAUTH = {
    "token_url": "https://auth.test/token",
    "client_id": "cid",
    "client_secret": SECRET,
    "scope": "read",
}


def test_oauth2_token_is_cached_and_refreshed_before_expiry(rsps, make, clock):
    rsps.post(OAUTH["token_url"], json=_token_body("t1", 100))
    rsps.post(OAUTH["token_url"], json=_token_body("t2", 100))
    rsps.get(BASE + "/x", body="ok")
    connector = make(credentials=OAUTH, oauth2_refresh_margin=30)
    connector.get("/x")
    connector.get("/x")
    tokens = calls(rsps, OAUTH["token_url"])
    assert len(tokens) == 1
    form = urllib.parse.parse_qs(tokens[0].request.body.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["read"]}
    assert tokens[0].request.headers["Authorization"].startswith("Basic ")
    clock.now += 79  # refresh margin is min(30, 100/5) = 20s: 79 < 80 keeps t1
    connector.get("/x")
    assert len(calls(rsps, OAUTH["token_url"])) == 1
    clock.now += 2
    connector.get("/x")
    assert len(calls(rsps, OAUTH["token_url"])) == 2
    used = [c.request.headers["Authorization"] for c in calls(rsps, BASE + "/x")]
    assert used == ["Bearer t1"] * 3 + ["Bearer t2"]


def _old_token_refused_new_accepted(rsps):
    rsps.post(OAUTH["token_url"], json=_token_body("old"))
    rsps.post(OAUTH["token_url"], json=_token_body("new"))
    rsps.get(
        BASE + "/x", status=401, match=[matchers.header_matcher({"Authorization": "Bearer old"})]
    )
    rsps.get(
        BASE + "/x", body="ok", match=[matchers.header_matcher({"Authorization": "Bearer new"})]
    )


def test_oauth2_401_forces_one_refresh_and_one_resend(rsps, make):
    _old_token_refused_new_accepted(rsps)
    assert make(credentials=OAUTH).get("/x").text == "ok"
    assert len(calls(rsps, OAUTH["token_url"])) == 2


def test_oauth2_persistent_401_is_an_authentication_error(rsps, make):
    rsps.post(OAUTH["token_url"], json=_token_body("t"))
    rsps.get(BASE + "/x", status=401)
    with pytest.raises(AuthenticationError):
        make(credentials=OAUTH).get("/x")
    assert len(calls(rsps, BASE + "/x")) == 2  # the original and one resend


def test_oauth2_refused_client_is_permanent(rsps, make):
    rsps.post(OAUTH["token_url"], status=401, json={"error": "invalid_client"})
    with pytest.raises(AuthenticationError) as info:
        make(credentials=OAUTH).get("/x")
    assert "invalid_client" in str(info.value) and SECRET not in str(info.value)
    assert len(calls(rsps, OAUTH["token_url"])) == 1


def test_oauth2_token_endpoint_down_is_retried(rsps, make):
    rsps.post(OAUTH["token_url"], status=503)
    rsps.post(OAUTH["token_url"], json=_token_body("t"))
    rsps.get(BASE + "/x", body="ok")
    assert make(credentials=OAUTH, oauth2_refresh_margin=0).get("/x").text == "ok"


def test_oauth2_client_secret_in_body(rsps, make):
    rsps.post(OAUTH["token_url"], json=_token_body("t"))
    rsps.get(BASE + "/x", body="ok")
    make(credentials={**OAUTH, "client_auth": "body"}).get("/x")
    request = calls(rsps, OAUTH["token_url"])[0].request
    assert "Authorization" not in request.headers
    assert urllib.parse.parse_qs(request.body.decode())["client_secret"] == [SECRET]


# --------------------------------------------------------------- redirects


def test_303_becomes_get_and_307_keeps_method_and_body(rsps, make):
    rsps.post(BASE + "/a", status=303, headers={"Location": "/v1/b"})
    rsps.get(BASE + "/b", body="got")
    rsps.post(BASE + "/c", status=307, headers={"Location": BASE + "/d"})
    rsps.post(BASE + "/d", body="posted")
    connector = make()
    response = connector.post("/a", json={"x": 1})
    assert response.text == "got" and response.request_method == "GET"
    assert [h.status_code for h in response.history] == [303]
    assert rsps.calls[1].request.body is None
    assert connector.post("/c", data=b"payload").text == "posted"
    assert rsps.calls[3].request.body == b"payload"


def test_cross_host_redirect_strips_credentials(rsps, make):
    rsps.get(BASE + "/go", status=302, headers={"Location": "https://other.test/land"})
    rsps.get("https://other.test/land", status=302, headers={"Location": BASE + "/back"})
    rsps.get(BASE + "/back", body="ok")
    connector = make(credentials={"api_key": SECRET})
    connector.get("/go", headers={"Cookie": "session=1"})
    first, second, third = (c.request.headers for c in rsps.calls)
    assert first["X-API-Key"] == SECRET and first["Cookie"] == "session=1"
    assert "X-API-Key" not in second and "Cookie" not in second
    assert "X-API-Key" not in third  # once stripped, never re-added


def test_same_origin_redirect_keeps_credentials(rsps, make):
    rsps.get(BASE + "/go", status=301, headers={"Location": "/v1/there"})
    rsps.get(BASE + "/there", body="ok")
    make(credentials={"token": SECRET}).get("/go")
    assert rsps.calls[1].request.headers["Authorization"] == "Bearer " + SECRET


def test_too_many_redirects(rsps, make):
    rsps.get(BASE + "/loop", status=302, headers={"Location": "/v1/loop"})
    with pytest.raises(ConnectorError) as info:
        make(max_redirects=3).get("/loop")
    assert info.value.code is ErrorCode.PROTOCOL_ERROR
    assert len(rsps.calls) == 4


def test_redirects_can_be_left_alone(rsps, make):
    rsps.get(BASE + "/go", status=302, headers={"Location": "https://x.test/"})
    response = make(follow_redirects=False).get("/go")
    assert response.status_code == 302 and len(rsps.calls) == 1


def test_redirect_to_a_non_http_location_is_refused(rsps, make):
    rsps.get(BASE + "/go", status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(ConnectorError) as info:
        make().get("/go")
    assert info.value.code is ErrorCode.PROTOCOL_ERROR


# ------------------------------------------------------------- large bodies


def test_max_response_bytes_with_and_without_content_length(rsps, make):
    rsps.get(BASE + "/declared", body=b"x" * 2000)
    rsps.get(BASE + "/streamed", body=b"x" * 2000, auto_calculate_content_length=False)
    connector = make(max_response_bytes=1000)
    for path in ("/declared", "/streamed"):
        with pytest.raises(ConnectorError) as info:
            connector.get(path)
        assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE and not info.value.transient
    rsps.get(BASE + "/ok", body=b"x" * 1000)
    assert len(connector.get("/ok").body) == 1000


def test_stream_and_download(rsps, make, tmp_path):
    rsps.get(BASE + "/file", body=b"0123456789" * 1000)
    connector = make()
    with connector.stream("GET", "/file") as response:
        assert response.status_code == 200 and response.is_streamed
        assert b"".join(response) == b"0123456789" * 1000
    target = tmp_path / "out.bin"
    assert connector.download("/file", target) == 10_000
    assert target.read_bytes() == b"0123456789" * 1000
    sink = io.BytesIO()
    assert connector.download("/file", sink) == 10_000


def test_failed_download_leaves_no_file(rsps, make, tmp_path):
    rsps.get(BASE + "/big", body=b"x" * 5000)
    target = tmp_path / "big.bin"
    with pytest.raises(ConnectorError):
        make(max_response_bytes=100).download("/big", target)
    assert list(tmp_path.iterdir()) == []


def test_streamed_upload_from_a_file(rsps, make, tmp_path):
    path = tmp_path / "up.bin"
    path.write_bytes(b"z" * 4096)
    rsps.put(BASE + "/up", body="ok")
    with open(path, "rb") as fh:
        make().put("/up", data=fh)
    assert rsps.calls[0].request.headers["Content-Length"] == "4096"


# -------------------------------------------------------------- pagination


def test_link_header_pagination(rsps, make):
    rsps.get(
        BASE + "/items",
        json=[1, 2],
        headers={"Link": f'<{BASE}/items?page=2>; rel="next"'},
        match=[matchers.query_string_matcher("")],
    )
    rsps.get(
        BASE + "/items",
        json=[3],
        headers={"Link": '</v1/items?page=1>; rel="prev"'},
        match=[matchers.query_string_matcher("page=2")],
    )
    assert list(iter_items(make(), "/items", LinkHeader())) == [1, 2, 3]


def test_cursor_offset_and_page_number_pagination(rsps, make):
    rsps.get(
        BASE + "/c",
        json={"data": [1], "meta": {"next": "n2"}},
        match=[matchers.query_string_matcher("f=x")],
    )
    rsps.get(
        BASE + "/c",
        json={"data": [2], "meta": {"next": None}},
        match=[matchers.query_string_matcher("f=x&cursor=n2")],
    )
    connector = make()
    cursor = Cursor(next_cursor="meta.next", items="data")
    assert list(iter_items(connector, "/c", cursor, params={"f": "x"})) == [1, 2]
    rsps.get(BASE + "/o", json=[1, 2], match=[matchers.query_string_matcher("offset=0&limit=2")])
    rsps.get(BASE + "/o", json=[3], match=[matchers.query_string_matcher("offset=2&limit=2")])
    assert list(iter_items(connector, "/o", OffsetLimit(limit=2))) == [1, 2, 3]
    rsps.get(
        BASE + "/p", json={"r": [1, 2]}, match=[matchers.query_string_matcher("page=1&per_page=2")]
    )
    rsps.get(
        BASE + "/p", json={"r": []}, match=[matchers.query_string_matcher("page=2&per_page=2")]
    )
    pages = list(connector.paginate("/p", PageNumber(per_page=2, items="r")))
    assert len(pages) == 2


# ------------------------------------------------------------ rate limiting


def test_rate_limit_spaces_requests(rsps, make, clock):
    rsps.get(BASE + "/x", body="ok")
    connector = make(rate_limit=2, rate_limit_burst=1)
    for _ in range(3):
        connector.get("/x")
    assert clock.sleeps == [0.5, 0.5]


# ------------------------------------------------------------------- ping


def test_ping(rsps, make):
    rsps.head(BASE, status=404)
    make().ping()  # < 500 is healthy
    rsps.head(BASE + "/health", status=503)
    with pytest.raises(ConnectorError) as info:
        make(health_path="/health").ping()
    assert info.value.code is ErrorCode.UNAVAILABLE
    rsps.get(BASE + "/ready", status=404)
    with pytest.raises(ConnectorError):
        make(health_method="GET", health_path="ready", health_ok_below=300).ping()


# ---------------------------------------------------------------- session()


def test_session_uses_auth_defaults_and_strips_cross_origin(rsps, make):
    rsps.get(BASE + "/s", status=302, headers={"Location": "https://other.test/x"})
    rsps.get("https://other.test/x", body="ok")
    connector = make(credentials={"api_key": SECRET}, headers={"X-Tenant": "7"})
    session = connector.session()
    assert isinstance(session, requests.Session)
    assert session.get(BASE + "/s").text == "ok"
    first, second = (c.request.headers for c in rsps.calls)
    assert first["X-API-Key"] == SECRET and first["X-Tenant"] == "7"
    assert "X-API-Key" not in second
    session.close()  # must not close the connector's pool
    rsps.get(BASE + "/after", body="still")
    assert connector.get("/after").text == "still"
    assert connector.session() is not session


def test_session_oauth2_resends_once_on_401(rsps, make):
    _old_token_refused_new_accepted(rsps)
    session = make(credentials=OAUTH).session()
    assert session.get(BASE + "/x").text == "ok"


def test_session_after_disconnect_refuses(rsps, make):
    connector = make()
    session = connector.session()
    connector.disconnect()
    with pytest.raises(NotConnectedError):
        session.get(BASE + "/x")


# ----------------------------------------------------------------- secrets


def test_credentials_never_in_logs_reprs_or_messages(rsps, make, caplog):
    caplog.set_level(logging.DEBUG)
    rsps.post(OAUTH["token_url"], json=_token_body(SECRET + "-tok"))
    rsps.get(BASE + "/x", status=503)
    connector = make(credentials=OAUTH)
    texts = [
        repr(connector),
        repr(connector.config),
        connector.config.connection_string(),
        repr(connector.token_source),
        repr(connector._auth),
    ]
    with pytest.raises(ConnectorError) as info:
        connector.get("/x")
    texts += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
    texts += [r.getMessage() for r in caplog.records] + [str(r.__dict__) for r in caplog.records]
    assert caplog.records
    for text in texts:
        assert SECRET not in text


# --------------------------------------------------------------- internals


def test_urllib3_retries_are_off_so_nothing_stacks(make):
    connector = make()
    adapter = connector._handle
    retries = adapter.max_retries
    assert retries.total == 0 and retries.read is False and retries.redirect in (0, False)
    assert retries.is_exhausted() is False  # exactly one attempt, then raise


def test_head_with_a_large_declared_length_reads_nothing(rsps, make):
    rsps.head(BASE + "/big", headers={"Content-Length": "999999999"})
    response = make(max_response_bytes=10).head("/big")
    assert response.status_code == 200 and response.body == b""


def test_unsafe_path_characters_are_quoted(rsps, make):
    rsps.get(BASE + "/a%22b%7Bc%7D", body="ok")
    assert make().get('/a"b{c}').text == "ok"
    assert make().url_for("/ü") == BASE + "/%C3%BC"


def test_query_api_key_is_masked_even_in_urllib3_debug_logs(caplog):
    from tests.integration.http.servers import LocalServer, ScriptedApp

    caplog.set_level(logging.DEBUG)
    with LocalServer(ScriptedApp()) as server:
        connector = HTTPConnector(
            HTTPConfig(
                base_url=server.url,
                credentials={"api_key": SECRET, "api_key_in": "query", "api_key_name": "k"},
            )
        )
        connector.connect()
        assert connector.get("/x").json()["query"] == {"k": SECRET}
        connector.disconnect()
    lines = [r.getMessage() for r in caplog.records]
    assert any("/x?k=***" in line for line in lines), lines
    assert not any(SECRET in line for line in lines)
