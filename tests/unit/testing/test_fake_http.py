"""FakeHTTP: routes, the real status table and retries, faults, the request record."""

from __future__ import annotations

import io
import re
import threading

import pytest
import requests

from dictamesh_connectors.errors import (
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    NotConnectedError,
)
from dictamesh_connectors.http import (
    Credentials,
    HTTPAuthenticationError,
    HTTPConfig,
    HTTPConnector,
    HTTPStatusError,
    InvalidRequestError,
    LinkHeader,
    Request,
    Response,
)
from dictamesh_connectors.http.errors import error_for_status, translate_exception
from dictamesh_connectors.testing.fakes import FakeHTTP
from dictamesh_connectors.testing.fakes.http import DEFAULT_BASE_URL, RecordedRequest, Reply
from tests.secretscan import SecretScan

MARKER = "MARKER-SECRET-9f8e7d"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def api(sleeps: list[float]):
    fake = FakeHTTP(sleep=sleeps.append, rand=lambda: 1.0)
    fake.connect()
    yield fake
    fake.disconnect()


def test_is_a_real_http_connector_with_a_default_config():
    fake = FakeHTTP()
    assert isinstance(fake, HTTPConnector)
    assert fake.base_url == DEFAULT_BASE_URL and fake.name == "http"
    assert FakeHTTP("http://api.local/v1").base_url == "http://api.local/v1"
    config = HTTPConfig(base_url="http://x.test", timeout=3)
    assert FakeHTTP(config).config is config


def test_not_connected_before_connect_and_after_disconnect():
    fake = FakeHTTP()
    fake.add("GET", "/x")
    with pytest.raises(NotConnectedError):
        fake.get("/x")
    fake.connect()
    fake.connect()  # idempotent
    assert fake.get("/x").status_code == 200
    fake.disconnect()
    fake.disconnect()
    with pytest.raises(NotConnectedError):
        fake.get("/x")
    assert len(fake.requests) == 1


def test_json_body_headers_and_the_record(api: FakeHTTP):
    api.add("POST", "/users", status=201, json={"id": 2}, headers={"Location": "/users/2"})
    response = api.post("/users", json={"name": "Grace"}, params={"a": "1"})
    assert isinstance(response, Response)
    assert (response.status_code, response.json()) == (201, {"id": 2})
    assert response.headers["location"] == "/users/2"
    (request,) = api.requests
    assert isinstance(request, RecordedRequest)
    assert (request.method, request.url, request.path) == (
        "POST",
        "http://fake.test/users?a=1",
        "/users",
    )
    assert request.params == {"a": ["1"]}
    assert request.json() == {"name": "Grace"}
    assert request.header("content-type") == "application/json"
    assert request.header("Idempotency-Key") is None or request.header("Idempotency-Key")


def test_text_body_and_head(api: FakeHTTP):
    api.add("GET", "/t", body="héllo", headers={"Content-Type": "text/plain; charset=utf-8"})
    api.add("HEAD", "/t", body="ignored")
    assert api.get("/t").text == "héllo"
    head = api.head("/t")
    assert head.status_code == 200 and head.body == b""


def test_routes_match_in_order_and_times_uses_them_up(api: FakeHTTP, sleeps):
    api.add("GET", "/flaky", status=503, times=2)
    route = api.add("GET", "/flaky", body="ok")
    assert api.get("/flaky").text == "ok"  # two 503s, retried by the real policy
    assert [r.path for r in api.requests] == ["/flaky"] * 3
    assert len(sleeps) == 2 and route.calls == 1
    assert len(api.routes) == 1


def test_regex_and_any_method_routes(api: FakeHTTP):
    api.add("*", re.compile(r"/items/\d+$"), json={"ok": True})
    api.add("GET", re.compile(r"page=2"), json=[2])
    assert api.delete("/items/7").json() == {"ok": True}
    assert api.get("/list", params={"page": 2}).json() == [2]


def test_a_path_with_a_query_matches_it_exactly(api: FakeHTTP):
    api.add("GET", "/search?q=a", json=["a"])
    api.add("GET", "/search", json=[])
    assert api.get("/search", params={"q": "a"}).json() == ["a"]
    assert api.get("/search", params={"q": "b"}).json() == []


def test_callable_responder_sees_the_request(api: FakeHTTP):
    def echo(request: RecordedRequest) -> Reply:
        return Reply(200, json={"got": request.json(), "auth": request.header("Authorization")})

    api.add("PUT", "/echo", echo)
    body = api.put("/echo", json=[1, 2], headers={"Authorization": f"Bearer {MARKER}"}).json()
    assert body == {"got": [1, 2], "auth": "***"}


def test_responder_raising_a_transport_error_is_translated_by_the_real_table(api: FakeHTTP):
    def reset(request: RecordedRequest) -> Reply:
        raise ConnectionResetError("connection reset by peer")

    api.add("POST", "/boom", reset)
    with pytest.raises(ConnectorError) as info:
        api.post("/boom", json={})
    err = info.value
    assert err.code is ErrorCode.CONNECTION_LOST and err.maybe_applied
    assert isinstance(err.__cause__, ConnectionResetError)
    assert len(api.requests) == 1  # a POST that may have been sent: not retried


def test_responder_must_return_a_reply(api: FakeHTTP):
    api.add("GET", "/bad", lambda request: 200)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError):
        api.get("/bad")


def test_unmatched_request_is_invalid_request_not_a_404(api: FakeHTTP):
    with pytest.raises(InvalidRequestError) as info:
        api.get("/nowhere")
    err = info.value
    assert err.code is ErrorCode.INVALID_REQUEST and err.details["unmatched"]
    assert not isinstance(err, HTTPStatusError)
    assert "fake.add('GET', '/nowhere'" in str(err)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, ErrorCode.INVALID_REQUEST, HTTPStatusError),
        (401, ErrorCode.AUTH_FAILED, HTTPAuthenticationError),
        (403, ErrorCode.PERMISSION_DENIED, HTTPStatusError),
        (404, ErrorCode.NOT_FOUND, HTTPStatusError),
        (409, ErrorCode.CONFLICT, HTTPStatusError),
        (422, ErrorCode.INVALID_INPUT, HTTPStatusError),
        (501, ErrorCode.UNSUPPORTED, HTTPStatusError),
    ],
)
def test_error_statuses_go_through_the_real_status_table(api: FakeHTTP, status, code, cls):
    api.add("GET", "/e", status=status, json={"error": "x"})
    with pytest.raises(cls) as info:
        api.get("/e")
    assert info.value.code is code and info.value.status_code == status
    assert info.value.response is not None and info.value.response.json() == {"error": "x"}
    assert len(api.requests) == 1  # permanent: not retried
    response = api.get("/e", raise_for_status=False)
    assert response.status_code == status


def test_retry_after_is_honoured_and_429_retried_for_post(api: FakeHTTP, sleeps):
    api.add("POST", "/limited", status=429, headers={"Retry-After": "2"}, times=1)
    api.add("POST", "/limited", status=201)
    assert api.post("/limited", json={}).status_code == 201
    assert sleeps == [2.0]


def test_500_on_post_is_not_retried_but_on_get_it_is(api: FakeHTTP, sleeps):
    api.add("*", "/five", status=500)
    with pytest.raises(HTTPStatusError) as info:
        api.post("/five", json={})
    assert info.value.maybe_applied and len(api.requests) == 1
    with pytest.raises(HTTPStatusError):
        api.get("/five")
    assert len(api.requests) == 1 + 3  # the default policy makes 3 attempts


def test_redirects_are_followed_by_the_real_code(api: FakeHTTP):
    api.add("GET", "/old", status=301, headers={"Location": "/new"})
    api.add("GET", "/new", json="here")
    response = api.get("/old")
    assert response.json() == "here" and response.url == "http://fake.test/new"
    assert [r.status_code for r in response.history] == [301]


def test_fail_next_uses_the_retry_policy(api: FakeHTTP, sleeps):
    api.add("GET", "/x")
    api.fail_next("get", code=ErrorCode.UNAVAILABLE, times=2)
    assert api.get("/x").status_code == 200
    assert api.faults.call_count("get") == 3 and len(api.requests) == 1
    api.fail_next("get", code=ErrorCode.TIMEOUT, times=5)
    with pytest.raises(ConnectorTimeoutError):
        api.get("/x")
    assert api.stats().errors["TIMEOUT"] == 3
    api.faults.clear()
    api.fail_next("post", code=ErrorCode.CONNECTION_LOST, maybe_applied=True)
    api.add("POST", "/x")
    with pytest.raises(ConnectorError) as info:
        api.post("/x")
    assert info.value.maybe_applied and api.faults.call_count("post") == 1
    api.fail_next("post", code=ErrorCode.CONNECTION_LOST, maybe_applied=True)
    assert api.post("/x", idempotency_key="k1").status_code == 200  # keyed: retried


def test_fail_next_invalid_request_has_the_http_class(api: FakeHTTP):
    api.fail_next("get", code=ErrorCode.INVALID_REQUEST)
    with pytest.raises(InvalidRequestError):
        api.get("/x")


def test_connect_and_ping_faults():
    fake = FakeHTTP()
    fake.fail_next("connect", code=ErrorCode.CONNECTION_FAILED)
    with pytest.raises(ConnectorError) as info:
        fake.connect()
    assert info.value.code is ErrorCode.CONNECTION_FAILED and not fake.is_connected
    fake.connect()
    fake.ping()  # no route for the health check: the fake server is up
    fake.add("HEAD", "", status=503)
    with pytest.raises(HTTPStatusError):
        fake.ping()
    fake.fail_next("ping", code=ErrorCode.TIMEOUT)
    with pytest.raises(ConnectorTimeoutError):
        fake.ping()
    fake.disconnect()


def test_latency_is_programmable(api: FakeHTTP):
    waits: list[float] = []
    api.faults._sleep = waits.append
    api.set_latency("get", 0.25)
    api.add("GET", "/x")
    api.get("/x")
    assert waits == [0.25]


def test_execute_stream_download_and_paginate(api: FakeHTTP, tmp_path):
    api.add("GET", "/a", json={"a": 1})
    assert api.execute(Request("GET", "/a")).json() == {"a": 1}
    api.add("GET", "/big", body=b"x" * 200_000)
    with api.stream("GET", "/big") as response:
        assert sum(len(chunk) for chunk in response) == 200_000
    assert api.download("/big", tmp_path / "big.bin") == 200_000
    assert (tmp_path / "big.bin").stat().st_size == 200_000
    sink = io.BytesIO()
    api.download("/big", sink)
    assert len(sink.getvalue()) == 200_000
    api.add("GET", "/pages", json=[1], headers={"Link": '<http://fake.test/pages2>; rel="next"'})
    api.add("GET", "/pages2", json=[2])
    assert [page.json() for page in api.paginate("/pages", LinkHeader())] == [[1], [2]]


def test_max_response_bytes_applies():
    fake = FakeHTTP(HTTPConfig(base_url="http://fake.test", max_response_bytes=10))
    fake.add("GET", "/big", body=b"y" * 11)
    with fake, pytest.raises(ConnectorError) as info:
        fake.get("/big")
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE


def test_session_goes_through_the_routes(api: FakeHTTP):
    api.add("GET", "/s", json={"via": "session"})
    session = api.session()
    assert session.get(api.url_for("/s")).json() == {"via": "session"}
    assert api.requests[-1].path == "/s"


# What a real session raises (requests' exceptions) or answers (a status) for each
# injected code; the connector's own tables turn it back into that code.
SESSION_FAULTS = [
    (ErrorCode.TIMEOUT, False, requests.exceptions.ConnectTimeout),
    (ErrorCode.TIMEOUT, True, requests.exceptions.ReadTimeout),
    (ErrorCode.CONNECTION_FAILED, False, requests.exceptions.ConnectionError),
    (ErrorCode.CONNECTION_LOST, True, requests.exceptions.ConnectionError),
    (ErrorCode.PROTOCOL_ERROR, True, requests.exceptions.ContentDecodingError),
    (ErrorCode.UNAVAILABLE, False, 503),
    (ErrorCode.UNAVAILABLE, True, 502),
    (ErrorCode.RATE_LIMITED, False, 429),
    (ErrorCode.NOT_FOUND, False, 404),
    (ErrorCode.AUTH_FAILED, False, 401),
    (ErrorCode.PERMISSION_DENIED, False, 403),
    (ErrorCode.CONFLICT, False, 409),
    (ErrorCode.INVALID_REQUEST, False, 400),
    (ErrorCode.INVALID_INPUT, False, 422),
    (ErrorCode.UNSUPPORTED, False, 501),
    (ErrorCode.PAYLOAD_TOO_LARGE, False, 413),
    (ErrorCode.LOCK_TIMEOUT, False, 423),
]


@pytest.mark.parametrize(
    ("code", "maybe_applied", "outcome"),
    SESSION_FAULTS,
    ids=[f"{c.value}-{m}" for c, m, _ in SESSION_FAULTS],
)
def test_session_meets_programmed_faults_as_a_real_session(
    api: FakeHTTP, code: ErrorCode, maybe_applied: bool, outcome: object
):
    api.add("POST", "/s", json={"ok": True})
    api.fail_next("post", code=code, maybe_applied=maybe_applied)
    session = api.session()
    url = api.url_for("/s")
    if isinstance(outcome, int):
        response = session.post(url, json={"n": 1})
        assert response.status_code == outcome
        assert "injected fault" in response.text
        got = error_for_status(response.status_code, response.headers, method="POST", url=url)
    else:
        with pytest.raises(requests.RequestException) as info:
            session.post(url, json={"n": 1})
        assert type(info.value) is outcome
        got = translate_exception(info.value, method="POST", url=url, idempotent=False)
    assert got.code is code
    assert api.requests == []  # the fault came first: no route answered
    assert session.post(url, json={"n": 2}).json() == {"ok": True}  # the next one works
    assert api.faults.calls == ["connect", "post", "post"]


def test_session_fault_with_retry_after_and_latency(api: FakeHTTP, monkeypatch):
    api.add("GET", "/s", json=[])
    api.fail_next("get", code=ErrorCode.RATE_LIMITED, retry_after=2.5)
    response = api.session().get(api.url_for("/s"))
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    slept: list[float] = []
    monkeypatch.setattr(api.faults, "_sleep", slept.append)
    api.set_latency("get", 0.25)
    assert api.session().get(api.url_for("/s")).json() == []
    assert slept == [0.25]


def test_session_fault_without_a_session_equivalent_raises_it(api: FakeHTTP):
    api.add("GET", "/s")
    api.fail_next("*", code=ErrorCode.SERIALIZATION_FAILURE)
    with pytest.raises(ConnectorError) as info:
        api.session().get(api.url_for("/s"))
    assert info.value.code is ErrorCode.SERIALIZATION_FAILURE
    assert info.value.details["injected"]


def test_file_and_iterator_bodies_are_recorded(api: FakeHTTP):
    api.add("POST", "/up")
    api.post("/up", data=io.BytesIO(b"file-bytes"))
    api.post("/up", data=iter([b"a", b"b"]))
    assert [r.body for r in api.requests] == [b"file-bytes", b"ab"]


def test_secrets_never_reach_the_record_or_errors():
    config = HTTPConfig(
        base_url="http://fake.test",
        credentials=Credentials(api_key=MARKER, api_key_in="query", api_key_name="token"),
    )
    fake = FakeHTTP(config)
    fake.add("GET", "/private", status=403)
    with fake, SecretScan() as scan, pytest.raises(HTTPStatusError) as info:
        fake.get("/private", headers={"X-Auth-Token": MARKER})
    (request,) = fake.requests
    assert "token=***" in request.url or "token=%2A%2A%2A" in request.url
    assert request.header("X-Auth-Token") == "***"
    scan.assert_clean(MARKER, info.value, texts=[repr(request), str(request.headers), request.url])


def test_add_validates(api: FakeHTTP):
    with pytest.raises(TypeError):
        api.add(1, "/x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        api.add("GET", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        api.add("GET", "/x", "not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        api.add("GET", "/x", times=0)
    with pytest.raises(InvalidRequestError):
        api.add("BAD METHOD", "/x")
    with pytest.raises(InvalidRequestError):
        api.add("GET", "http://elsewhere.example/x")  # not an allowed host


def test_reset_forgets_routes_requests_and_faults(api: FakeHTTP):
    api.add("GET", "/x")
    api.get("/x")
    api.fail_next("get")
    api.reset()
    assert api.routes == [] and api.requests == [] and api.faults.pending == 0


def test_32_threads_share_one_fake(api: FakeHTTP):
    api.add("GET", re.compile(r"/n/\d+"), lambda request: Reply(200, json=request.path))
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def worker(n: int) -> None:
        barrier.wait()
        try:
            for i in range(20):
                assert api.get(f"/n/{n * 100 + i}").json() == f"/n/{n * 100 + i}"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(api.requests) == 640
    assert api.stats().operations == 640


def test_disconnect_drains_a_slow_request():
    fake = FakeHTTP()
    fake.add("GET", "/slow")
    started, release = threading.Event(), threading.Event()

    def gate(seconds: float) -> None:
        started.set()
        release.wait(5)

    fake.faults._sleep = gate
    fake.set_latency("get", 0.001)
    fake.connect()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(fake.get("/slow").status_code))
    thread.start()
    assert started.wait(5)
    closer = threading.Thread(target=fake.disconnect)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waiting for the request in flight
    release.set()
    thread.join(5)
    closer.join(5)
    assert result == [200] and not fake.is_connected
