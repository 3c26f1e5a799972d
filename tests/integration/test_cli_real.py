"""``dictamesh-connectors ping`` against real servers: no secret is ever printed."""

from __future__ import annotations

import urllib.parse

import pytest

from dictamesh_connectors import cli
from tests.integration.http.servers import LocalServer, ScriptedApp
from tests.secretscan import SecretScan

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "query",
    [
        "token=TOKEN-SECRET-1",
        "api_key=APIKEY-SECRET-2",
        "auth_type=oauth2&client_id=c&client_secret=CLIENT-SECRET-3&token_url=http://127.0.0.1:1/t",
        "auth_type=bearer&token=TOKEN-SECRET-4",
    ],
)
def test_http_ping_masks_query_secrets_on_success_and_failure(query, capsys):
    secret = next(v for k, v in urllib.parse.parse_qsl(query) if "SECRET" in v)
    with SecretScan() as scan, LocalServer(ScriptedApp()) as server:
        status = cli.main(["ping", f"{server.url}/api?{query}", "--timeout", "5"])
    out = capsys.readouterr()
    scan.assert_clean(secret, texts=[out.out, out.err])  # output and DEBUG logs
    if "oauth2" in query:  # the token endpoint is closed: a classified failure
        assert status == 1 and out.err.startswith("failed: ")
    else:
        assert status == 0 and out.out.startswith(f"ok: {server.url}/api?")
        assert "=***" in out.out


def test_postgresql_ping_masks_the_password_in_the_query(postgres_dsn, capsys):
    parts = urllib.parse.urlsplit(postgres_dsn)
    password = urllib.parse.unquote(parts.password or "")
    assert password, "the test server's DSN carries a password"
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    url = urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, f"password={urllib.parse.quote(password)}", "")
    )
    assert cli.main(["ping", url, "--timeout", "10"]) == 0
    out = capsys.readouterr()
    assert password not in out.out + out.err
    assert "password=***" in out.out
    wrong = url.replace(urllib.parse.quote(password), "WRONG-PG-SECRET-5")
    assert cli.main(["ping", wrong, "--timeout", "10"]) == 1
    out = capsys.readouterr()
    assert "WRONG-PG-SECRET-5" not in out.out + out.err
    assert "AUTH_FAILED" in out.err
