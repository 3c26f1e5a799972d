"""Credentials on requests (ConnectorAuth) and the OAuth2 token cache, without a server."""

import base64

import requests

from dictamesh_connectors.http import ConnectorAuth, HTTPConfig, OAuth2TokenSource
from dictamesh_connectors.http.urls import origin_of

from .test_fork import holding

BASE = "https://api.test/v1"
SECRET = "Sup3r-Secret-T0ken"


def auth_for(**credentials):
    config = HTTPConfig(base_url=BASE, credentials=credentials)
    return ConnectorAuth(config, origin=origin_of(BASE))


def test_header_credentials_go_into_the_headers():
    headers = {"authorization": "old"}
    url, token = auth_for(username="alice", password=SECRET).add_to(headers, BASE + "/x")
    assert url == BASE + "/x" and token is None
    assert headers == {
        "Authorization": "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    }
    headers = {}
    auth_for(api_key=SECRET, api_key_name="X-Key").add_to(headers, BASE)
    assert headers == {"X-Key": SECRET}


def test_a_query_api_key_goes_into_the_url():
    auth = auth_for(api_key=SECRET, api_key_in="query", api_key_name="key")
    assert auth.add_to({}, BASE + "/x")[0] == f"{BASE}/x?key={SECRET}"
    assert auth.add_to({}, BASE + "/x?a=1")[0] == f"{BASE}/x?a=1&key={SECRET}"


def test_strip_removes_every_credential_from_a_prepared_request():
    auth = auth_for(api_key=SECRET, api_key_in="query", api_key_name="key")
    prepared = requests.PreparedRequest()
    prepared.prepare(
        "GET", f"{BASE}/x?a=1&key={SECRET}", headers={"Cookie": "c", "Authorization": "a"}
    )
    auth.strip(prepared)
    assert prepared.url == BASE + "/x?a=1"
    assert "Cookie" not in prepared.headers and "Authorization" not in prepared.headers


def test_session_auth_leaves_other_origins_alone():
    auth = auth_for(token=SECRET)
    prepared = requests.PreparedRequest()
    prepared.prepare("GET", "https://other.test/x")
    assert "Authorization" not in auth(prepared).headers
    prepared.prepare("GET", BASE + "/x")
    assert auth(prepared).headers["Authorization"] == "Bearer " + SECRET
    assert SECRET not in repr(auth)


def _token_source(fetch):
    config = HTTPConfig(
        base_url=BASE,
        credentials={"token_url": "https://auth.test/t", "client_id": "c", "client_secret": SECRET},
    )
    return OAuth2TokenSource(config.credentials, fetch)


def test_token_is_fetched_once_and_cached():
    calls = []

    def fetch(url, form, headers):
        calls.append(url)
        return 200, {}, b'{"access_token": "t1", "expires_in": 3600}'

    source = _token_source(fetch)
    assert source.token() == source.token() == "t1"
    assert calls == ["https://auth.test/t"] and SECRET not in repr(source)


def test_fork_while_another_thread_holds_the_token_lock():
    source = _token_source(lambda *_: (200, {}, b'{"access_token": "t", "expires_in": 60}'))
    # The holder does not exist in the child: the lock is free and a token can be had.
    assert holding(source._lock, lambda: source.token() == "t" and source._flight is None) == 0
