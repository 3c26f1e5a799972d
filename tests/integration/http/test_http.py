"""HTTPConnector against real local servers (plain, TLS, mTLS, OAuth2, misbehaving).

Every server is started by the test on 127.0.0.1 (see ``servers.py``); no
mocks. Timing assertions are lower bounds on server-observed gaps only.
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import logging
import os
import socket
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
)
from dictamesh_connectors.http import HTTPConfig, HTTPConnector, HTTPStatusError
from dictamesh_connectors.retry import RetryPolicy

from .conftest import FAST
from .servers import (
    LocalServer,
    OAuth2Server,
    ScriptedApp,
    corrupt_tls_after,
    server_tls_context,
    tls_files,
)

pytestmark = pytest.mark.integration

PASSWORD = "Int3gration-Pa55word"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return tls_files(tmp_path_factory.mktemp("tls"))


# ------------------------------------------------------------ plain + threads


def test_echo_round_trip_and_keep_alive(server, app, connect):
    api = connect(base_url=server.url + "/api")
    for i in range(10):
        body = api.post("/echo", json={"i": i}, params={"q": str(i)}).json()
        assert body["path"] == "/api/echo" and body["query"] == {"q": str(i)}
        assert body["body"] == f'{{"i":{i}}}'
    ports = {r.client_port for r in app.requests}
    assert len(ports) == 1, "sequential requests should reuse one keep-alive connection"


def test_64_threads_share_one_connector_without_cross_talk(server, app, connect):
    echo = ScriptedApp.echo()

    def echo_and_set_cookie(environ):
        status, headers, body = echo(environ)
        tag = environ["PATH_INFO"].rsplit("/", 1)[-1]
        return status, [*headers, ("Set-Cookie", f"owner={tag}; Path=/")], body

    app.default = echo_and_set_cookie
    api = connect(base_url=server.url, max_idle_conns_per_host=64, credentials={"token": PASSWORD})
    per_thread = 20
    barrier = threading.Barrier(64)

    def work(n: int) -> list[tuple[str, str]]:
        barrier.wait()
        seen = []
        for i in range(per_thread):
            tag = f"t{n}-r{i}"
            method = ("GET", "POST", "PUT", "DELETE")[i % 4]
            response = api.request(
                method,
                f"/echo/{tag}",
                headers={"X-Tag": tag},
                data=tag.encode(),
                params={"tag": tag},
            )
            echo = response.json()
            seen.append((tag, echo["headers"]["X-Tag"]))
            assert echo["path"] == f"/echo/{tag}" and echo["query"] == {"tag": tag}
            assert echo["body"] == tag and echo["method"] == method
            assert response.request_method == method
        return seen

    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(work, range(64)))
    for seen in results:
        assert all(sent == echoed for sent, echoed in seen)
    assert len(app.requests) == 64 * per_thread
    assert len({r.id for r in app.requests}) == 64 * per_thread
    assert len({r.client_port for r in app.requests}) <= 64 + 8  # the pool was reused
    # No cookie jar is shared (or kept): a cookie set for one thread never reaches another.
    assert all(r.header("Cookie") is None for r in app.requests)
    assert {r.header("Authorization") for r in app.requests} == {"Bearer " + PASSWORD}


def test_connection_refused_is_retried_then_connection_failed(connect, caplog):
    with LocalServer(ScriptedApp()) as srv:
        url = srv.url
    api = connect(base_url=url)  # nothing listens there any more
    caplog.set_level(logging.WARNING, logger="dictamesh_connectors")
    with pytest.raises(ConnectorError) as info:
        api.post("/x", json={})  # nothing was sent, so even a POST is retried
    err = info.value
    assert err.code is ErrorCode.CONNECTION_FAILED and err.transient and not err.maybe_applied
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == FAST.max_attempts - 1


# ----------------------------------------------------------------------- TLS


def test_https_with_the_right_ca(tls, connect):
    app = ScriptedApp()
    with LocalServer(app, tls=server_tls_context(tls)) as srv:
        api = connect(base_url=srv.url, ca_bundle=tls.ca_pem)
        assert api.get("/x").json()["path"] == "/x"


def test_tls_error_reading_the_response_never_repeats_a_post(tls, connect):
    # The server runs the POST, then sends a TLS record that cannot be
    # decrypted instead of the answer: the request was sent, so the error is
    # maybe_applied and the POST is not repeated (issue #8, item 1).
    app = ScriptedApp()
    with LocalServer(corrupt_tls_after(app), tls=server_tls_context(tls)) as srv:
        api = connect(base_url=srv.url, ca_bundle=tls.ca_pem)
        with pytest.raises(ConnectorError) as info:
            api.post("/pay", json={"amount": 1})
        assert len(app.hits("/pay")) == 1
        err = info.value
        assert err.maybe_applied and err.code is ErrorCode.CONNECTION_LOST
        # An idempotent request may be repeated (3 attempts), as may a POST
        # with an Idempotency-Key.
        with pytest.raises(ConnectorError) as info:
            api.post("/keyed", json={}, headers={"Idempotency-Key": "k-1"})
        assert len(app.hits("/keyed")) == 3
        assert not info.value.maybe_applied
    put_app = ScriptedApp()
    with LocalServer(
        corrupt_tls_after(put_app, lambda environ: True), tls=server_tls_context(tls)
    ) as srv:
        api = connect(base_url=srv.url, ca_bundle=tls.ca_pem)
        with pytest.raises(ConnectorError):
            api.put("/item", json={})
        assert len(put_app.hits("/item")) == 3


def test_tls_handshake_failure_is_not_sent_and_a_post_is_retried(connect):
    # A server that answers the ClientHello with garbage: the handshake fails
    # in connect(), before a byte of the request was written, so even a POST
    # is retried (three attempts, counted as accepted connections).
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"\x15\x03\x03\x00\x02\x02\x28")  # alert: handshake_failure
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        api = connect(base_url=f"https://127.0.0.1:{port}")
        with pytest.raises(ConnectorError) as info:
            api.post("/pay", json={"amount": 1})
        err = info.value
        assert err.code is ErrorCode.CONNECTION_FAILED and not err.maybe_applied
        assert len(accepted) == 3
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        listener.close()
        thread.join(5)


def test_https_with_a_wrong_ca_fails_clearly(tls, connect):
    with LocalServer(ScriptedApp(), tls=server_tls_context(tls)) as srv:
        for fields in ({"ca_bundle": tls.other_ca_pem}, {}):
            api = connect(base_url=srv.url, **fields)
            with pytest.raises(ConnectorError) as info:
                api.get("/x")
            err = info.value
            assert err.code is ErrorCode.CONNECTION_FAILED and not err.transient
            assert "certificate verification failed" in str(err)


def test_skip_verify_works_and_warns_once(tls, connect, caplog):
    import dictamesh_connectors.http.connector as module

    module._insecure_warned = False
    caplog.set_level(logging.WARNING, logger="dictamesh_connectors")
    with LocalServer(ScriptedApp(), tls=server_tls_context(tls)) as srv:
        for _ in range(2):
            api = connect(base_url=srv.url, skip_verify=True)
            with pytest.warns(Warning):  # urllib3's InsecureRequestWarning
                assert api.get("/x").status_code == 200
    warnings = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1


def test_mtls_required_by_the_server(tls, connect):
    app = ScriptedApp()
    app.route("/who", lambda env: (200, [], repr(env.get("dictamesh.peercert")).encode()))
    with LocalServer(app, tls=server_tls_context(tls, require_client_cert=True)) as srv:
        api = connect(
            base_url=srv.url,
            ca_bundle=tls.ca_pem,
            client_cert=tls.client_cert_pem,
            client_key=tls.client_key_pem,
        )
        assert "client@dictamesh.test" in api.get("/who").text
        anonymous = connect(base_url=srv.url, ca_bundle=tls.ca_pem, retry=RetryPolicy.no_retry())
        with pytest.raises(ConnectorError) as info:
            anonymous.get("/who")
        assert info.value.code in (ErrorCode.CONNECTION_FAILED, ErrorCode.CONNECTION_LOST)


# -------------------------------------------------------------------- OAuth2


def _oauth(srv, oauth, **extra):
    return {
        "base_url": srv.url + "/api",
        "credentials": {
            "token_url": srv.url + "/token",
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
        },
        **extra,
    }


def _protected_by(oauth, handler):
    """An app serving ``oauth``'s token endpoint at /token and ``handler`` to its tokens."""
    app = ScriptedApp().route("/token", oauth.token_endpoint)
    app.default = oauth.bearer_required(handler)
    return app


def test_oauth2_32_threads_one_token_request_per_expiry(connect):
    oauth = OAuth2Server(ttl=1.0, delay=0.05)
    app = _protected_by(oauth, ScriptedApp.echo())
    with LocalServer(app) as srv:
        api = connect(**_oauth(srv, oauth, max_idle_conns_per_host=32))
        stop = time.monotonic() + 2.6
        barrier = threading.Barrier(32)

        def hammer(_):
            barrier.wait()
            n = 0
            while time.monotonic() < stop:
                api.get("/data")
                n += 1
            return n

        with ThreadPoolExecutor(32) as pool:
            done = sum(pool.map(hammer, range(32)))
    token_hits = app.hits("/token")
    assert done > 32
    # 2.6 s of 1 s tokens refreshed 0.2 s early: about 3-4 token requests, never a stampede.
    assert 2 <= len(token_hits) <= 5, len(token_hits)
    gaps = [b.at - a.at for a, b in itertools.pairwise(token_hits)]
    assert all(gap >= 0.5 for gap in gaps), gaps
    assert not [r for r in app.requests if r.path != "/token" and r.header("Authorization") is None]


def test_oauth2_revoked_tokens_one_refresh_for_32_threads(connect):
    oauth = OAuth2Server(ttl=300, delay=0.1)
    app = _protected_by(oauth, ScriptedApp.echo())
    with LocalServer(app) as srv:
        api = connect(**_oauth(srv, oauth, max_idle_conns_per_host=32))
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda _: api.get("/a"), range(32)))
        assert oauth.token_requests == 1  # 32 concurrent first calls, one token
        oauth.revoke_all()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda _: api.get("/b"), range(32)))
        assert oauth.token_requests == 2  # 32 concurrent 401s, one refresh


def test_oauth2_bad_client_secret(connect):
    oauth = OAuth2Server()
    app = ScriptedApp().route("/token", oauth.token_endpoint)
    with LocalServer(app) as srv:
        fields = _oauth(srv, oauth)
        fields["credentials"]["client_secret"] = PASSWORD
        api = connect(**fields)
        with pytest.raises(AuthenticationError) as info:
            api.get("/x")
        assert "invalid_client" in str(info.value) and PASSWORD not in str(info.value)


# --------------------------------------------------------------- misbehaving


def test_reset_mid_response(server, app, connect):
    app.route("/reset", ScriptedApp.reset_mid_body())
    api = connect(base_url=server.url)
    with pytest.raises(ConnectorError) as info:
        api.get("/reset")
    assert info.value.code is ErrorCode.CONNECTION_LOST and info.value.transient
    assert len(app.hits("/reset")) == 3  # idempotent: retried
    with pytest.raises(ConnectorError) as info:
        api.post("/reset", json={})
    assert info.value.maybe_applied
    assert len(app.hits("/reset")) == 4  # POST: sent once
    assert api.get("/after").status_code == 200  # the pool recovered


def test_slow_server_times_out(server, app, connect):
    app.route("/slow", ScriptedApp.slow(1.0))
    api = connect(base_url=server.url, timeout=0.2, retry=RetryPolicy(max_attempts=2, jitter=False))
    with pytest.raises(ConnectorTimeoutError) as info:
        api.get("/slow")
    assert info.value.code is ErrorCode.TIMEOUT and not info.value.maybe_applied
    assert len(app.hits("/slow")) == 2
    with pytest.raises(ConnectorTimeoutError) as info:
        api.post("/slow", json={})
    assert info.value.maybe_applied and len(app.hits("/slow")) == 3
    with pytest.raises(ConnectorTimeoutError):
        api.get("/slow", timeout=0.1, retry=RetryPolicy.no_retry())


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_503_retry_after_is_honoured(server, app, connect, form):
    first = (
        ScriptedApp.retry_after(503, "1")
        if form == "seconds"
        else ScriptedApp.retry_after_date(503, 1.0)
    )
    app.route("/busy", ScriptedApp.sequence(first, ScriptedApp.status(200, b"ok")))
    api = connect(base_url=server.url, retry=RetryPolicy(max_attempts=3, max_backoff=5))
    assert api.post("/busy", json={}).text == "ok"  # 503: not processed, so POST too
    hits = app.hits("/busy")
    assert len(hits) == 2
    assert hits[1].at - hits[0].at >= 0.99


def test_429_rate_limited(server, app, connect):
    app.route("/limited", ScriptedApp.retry_after(429, "30"))
    api = connect(base_url=server.url, retry=RetryPolicy(max_attempts=3, max_backoff=5, deadline=2))
    with pytest.raises(HTTPStatusError) as info:
        api.get("/limited")
    err = info.value
    assert err.code is ErrorCode.RATE_LIMITED and err.transient and err.retry_after == 30.0
    assert len(app.hits("/limited")) == 1  # waiting would overrun the deadline


def test_post_500_once_without_key_twice_with_key(server, app, connect):
    app.route("/pay", ScriptedApp.status(500))
    api = connect(base_url=server.url)
    with pytest.raises(HTTPStatusError) as info:
        api.post("/pay", json={"amount": 1})
    assert info.value.maybe_applied
    assert len(app.hits("/pay")) == 1
    app.route(
        "/pay2", ScriptedApp.sequence(ScriptedApp.status(500), ScriptedApp.status(201, b"done"))
    )
    response = api.post("/pay2", json={"amount": 1}, idempotency_key="key-123")
    assert response.status_code == 201
    hits = app.hits("/pay2")
    assert len(hits) == 2 and {h.header("Idempotency-Key") for h in hits} == {"key-123"}


def test_redirect_to_another_host_strips_credentials(connect):
    other_app = ScriptedApp()
    home_app = ScriptedApp()
    with LocalServer(other_app) as other, LocalServer(home_app) as home:
        home_app.route("/away", ScriptedApp.redirect(other.url + "/landing", 302))
        home_app.route("/stay", ScriptedApp.redirect("/here", 307))
        api = connect(base_url=home.url, credentials={"username": "u", "password": PASSWORD})
        assert api.get("/away", headers={"Cookie": "s=1"}).json()["path"] == "/landing"
        landed = other_app.hits("/landing")[0]
        assert landed.header("Authorization") is None and landed.header("Cookie") is None
        assert (
            home_app.hits("/away")[0].header(
                "Authorization",
            )
            is not None
        )
        assert api.put("/stay", data=b"payload").json()["body"] == "payload"
        assert home_app.hits("/here")[0].header("Authorization") is not None


def test_max_response_bytes_on_a_big_body(server, app, connect):
    app.route("/big", ScriptedApp.big(5_000_000))
    app.route("/big-chunked", ScriptedApp.big(5_000_000, declare_length=False))
    api = connect(base_url=server.url, max_response_bytes=1_000_000)
    for path in ("/big", "/big-chunked"):
        with pytest.raises(ConnectorError) as info:
            api.get(path)
        assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
        with pytest.raises(ConnectorError), api.stream("GET", path) as response:
            for _ in response:
                pass
    assert api.get("/small").status_code == 200


def test_streaming_download_and_upload(server, app, connect, tmp_path):
    app.route("/file", ScriptedApp.big(3_000_000, declare_length=False))
    api = connect(base_url=server.url)
    target = tmp_path / "f.bin"
    assert api.download("/file", target) == 3_000_000
    assert target.stat().st_size == 3_000_000
    with open(target, "rb") as fh:
        api.put("/upload", data=fh)
    api.put("/chunks", data=iter([b"a" * 1000, b"b" * 1000]))
    assert len(app.hits("/upload")[0].body) == 3_000_000
    assert app.hits("/upload")[0].header("Content-Length") == "3000000"
    assert app.hits("/chunks")[0].body == b"a" * 1000 + b"b" * 1000
    assert app.hits("/chunks")[0].header("Transfer-Encoding") == "chunked"


def test_a_destination_that_cannot_be_written_is_a_connector_error(server, app, connect, tmp_path):
    # A raw FileNotFoundError/IsADirectoryError/OSError left download()
    # (issue #8: no builtin exception from a public method); classified by
    # errno as the File connector does, the connection given back.
    app.route("/file", ScriptedApp.big(100_000, declare_length=False))
    api = connect(base_url=server.url)

    class Full(io.RawIOBase):
        def writable(self):
            return True

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    directory = tmp_path / "a-directory"
    directory.mkdir()
    cases = [
        (tmp_path / "no-such-dir" / "f.bin", ErrorCode.NOT_FOUND, "ENOENT"),
        (directory, ErrorCode.INVALID_REQUEST, "EISDIR"),  # written to .part, replace() refuses
        (Full(), ErrorCode.RESOURCE_EXHAUSTED, "ENOSPC"),
    ]
    for dest, code, name in cases:
        with pytest.raises(ConnectorError) as info:
            api.download("/file", dest)
        err = info.value
        assert (err.code, err.details.get("errno")) == (code, name), err
        assert isinstance(err.__cause__, OSError)
    assert not list(tmp_path.glob("*.part"))
    assert api.stats().in_flight == 0
    assert api.download("/file", tmp_path / "ok.bin") == 100_000


def test_session_shares_the_pool_and_applies_auth(server, app, connect):
    api = connect(base_url=server.url, credentials={"token": PASSWORD})
    sessions = [api.session() for _ in range(4)]

    def use(session):
        for _ in range(5):
            assert (
                session.get(server.url + "/s")
                .json()["headers"]["Authorization"]
                .startswith("Bearer ")
            )
        session.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(use, sessions))
    assert api.get("/after").status_code == 200


def test_ping_against_a_real_server(server, app, connect):
    connect(base_url=server.url).ping()
    app.route("/health", ScriptedApp.status(503))
    with pytest.raises(ConnectorError):
        connect(base_url=server.url, health_path="/health").ping()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_uses_its_own_pool(server, app, connect):
    api = connect(base_url=server.url)
    api.get("/parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            ok = api.get("/child").status_code == 200
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    os.close(read)
    assert api.get("/parent-again").status_code == 200
    ports = {h.path: h.client_port for h in app.requests}
    assert ports["/child"] != ports["/parent"]


def test_secrets_never_in_logs_reprs_or_errors(connect, caplog):
    caplog.set_level(logging.DEBUG)
    oauth = OAuth2Server(client_secret=PASSWORD)
    app = _protected_by(oauth, ScriptedApp.status(503))
    with LocalServer(app) as srv:
        api = connect(**_oauth(srv, oauth))
        with pytest.raises(ConnectorError) as info:
            api.get("/x")
        tokens = list(oauth.issued)
        basic = connect(
            base_url=srv.url,
            credentials={"username": "u", "password": PASSWORD},
            retry=RetryPolicy.no_retry(),
        )
        with pytest.raises(ConnectorError) as info2:
            basic.get("/x")
    texts = [repr(api), repr(api.config), repr(basic), basic.config.connection_string()]
    for err in (info.value, info2.value):
        texts += [str(err), repr(err), "".join(traceback.format_exception(err))]
    texts += [r.getMessage() for r in caplog.records] + [str(r.__dict__) for r in caplog.records]
    assert tokens and caplog.records
    for text in texts:
        assert PASSWORD not in text
        for token in tokens:
            assert token not in text


def test_capped_pool_waits_then_reports_exhaustion(server, app, connect):
    app.route("/slow", ScriptedApp.slow(1.0))
    api = connect(
        base_url=server.url,
        max_conns_per_host=1,
        pool_timeout=0.2,
        retry=RetryPolicy.no_retry(),
    )
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(api.get, "/slow")
        deadline = time.monotonic() + 5
        while not app.hits("/slow") and time.monotonic() < deadline:
            time.sleep(0.01)  # until the first request holds the only connection
        second = pool.submit(api.get, "/quick")
        with pytest.raises(ConnectorError) as info:
            second.result()
        assert first.result().status_code == 200
    assert info.value.code is ErrorCode.RESOURCE_EXHAUSTED and info.value.transient
    assert not info.value.maybe_applied and not app.hits("/quick")


def test_connect_by_url_through_the_registry(server, app):
    import dictamesh_connectors

    api = dictamesh_connectors.connect(server.url + "/api?timeout=5&max_retries=1")
    try:
        assert isinstance(api, HTTPConnector) and api.config.timeout == 5.0
        assert api.get("/x").json()["path"] == "/api/x"
    finally:
        api.disconnect()


def test_gzip_bodies_are_decoded_and_bombs_stopped(server, app, connect):
    import gzip

    small = gzip.compress(b'{"ok": true}')
    bomb = gzip.compress(b"\0" * 20_000_000)  # ~20 KB on the wire
    app.route("/small", ScriptedApp.status(200, small, [("Content-Encoding", "gzip")]))
    app.route("/bomb", ScriptedApp.status(200, bomb, [("Content-Encoding", "gzip")]))
    api = connect(base_url=server.url, max_response_bytes=1_000_000)
    assert api.get("/small").json() == {"ok": True}
    with pytest.raises(ConnectorError) as info:
        api.get("/bomb")
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE


def test_operations_race_disconnect_and_reconnect(server, app):
    from dictamesh_connectors.errors import NotConnectedError

    api = HTTPConnector(HTTPConfig(base_url=server.url, retry=RetryPolicy.no_retry()))
    api.connect()
    stop = threading.Event()
    unexpected: list[BaseException] = []
    done = [0]

    def work():
        while not stop.is_set():
            try:
                api.get("/race")
                done[0] += 1
            except NotConnectedError:
                time.sleep(0.001)  # disconnected for a moment: don't spin
            except BaseException as exc:  # anything else is a bug
                unexpected.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for _ in range(8):
        api.disconnect(timeout=5)
        api.connect()
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    api.disconnect()
    assert not unexpected, unexpected[:3]
    assert done[0] > 0


def test_api_key_in_the_query_never_in_tracebacks_or_logs(server, app, connect, caplog):
    import urllib.parse

    caplog.set_level(logging.DEBUG)
    app.route("/reset", ScriptedApp.reset_mid_body())
    creds = {"api_key": PASSWORD, "api_key_in": "query", "api_key_name": "key"}
    api = connect(base_url=server.url, credentials=creds, retry=RetryPolicy.no_retry())
    assert api.get("/echo").json()["query"] == {"key": PASSWORD}  # it is sent
    errors = []
    with pytest.raises(ConnectorError) as info:
        api.get("/reset")
    errors.append(info.value)
    with LocalServer(ScriptedApp()) as gone:
        url = gone.url
    refused = connect(base_url=url, credentials=creds, retry=RetryPolicy.no_retry())
    with pytest.raises(ConnectorError) as info:
        refused.get("/x")  # urllib3 puts the URL, query included, in its message
    errors.append(info.value)
    texts = [r.getMessage() for r in caplog.records]
    assert any("key=***" in text for text in texts)  # urllib3's DEBUG request line
    for err in errors:
        texts += [str(err), repr(err), "".join(traceback.format_exception(err))]
    for text in texts:
        assert PASSWORD not in text and urllib.parse.quote_plus(PASSWORD) not in text


def test_unloadable_tls_files_fail_connect_clearly(tls, tmp_path):
    from dictamesh_connectors.errors import InvalidConfigError

    missing = str(tmp_path / "missing.pem")
    cases = [
        {"ca_bundle": missing},
        {"ca_bundle": tls.ca_pem, "client_cert": missing},
        # a certificate where the key should be: not a key, so not loadable
        {"ca_bundle": tls.ca_pem, "client_cert": tls.client_cert_pem, "client_key": tls.ca_pem},
    ]
    with LocalServer(ScriptedApp(), tls=server_tls_context(tls)) as srv:
        for fields in cases:
            api = HTTPConnector(HTTPConfig(base_url=srv.url, **fields))
            with pytest.raises(InvalidConfigError) as info:
                api.connect()  # not a transient "connection lost" on every request
            assert "cannot load" in str(info.value) and not api.is_connected


def test_session_enforces_max_response_bytes(server, app, connect):
    app.route("/big", ScriptedApp.big(3_000_000, declare_length=False))
    api = connect(base_url=server.url, max_response_bytes=1_000_000)
    session = api.session()
    with pytest.raises(ConnectorError) as info:
        session.get(server.url + "/big")
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert session.get(server.url + "/small").json()["path"] == "/small"
    with session.get(server.url + "/big", stream=True) as response:  # the caller reads
        assert response.status_code == 200
