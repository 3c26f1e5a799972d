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


MARKER = "CLI-SECRET-MARKER-7"
CLOSED = "127.0.0.1:1"  # nothing listens: every connector fails, classified

# Every secret position of every scheme's URL: the userinfo password and each
# secret query parameter the config reads (issue #8, item 2: "no secret from
# any config is printed", for every URL scheme).
SECRET_URLS = [
    f"postgresql://app:{MARKER}@{CLOSED}/db",
    f"postgres://app@{CLOSED}/db?password={MARKER}",
    f"postgresql://app@{CLOSED}/db?sslpassword={MARKER}",
    f"mongodb://app:{MARKER}@{CLOSED}/db?serverSelectionTimeoutMS=500&connectTimeoutMS=500",
    f"mongodb+srv://app:{MARKER}@nowhere.invalid/db?serverSelectionTimeoutMS=500&connectTimeoutMS=500",
    f"kafka://app:{MARKER}@{CLOSED}?connect_timeout=1",
    f"kafka+ssl://app:{MARKER}@{CLOSED}?connect_timeout=1&ssl_key_password={MARKER}",
    f"http://app:{MARKER}@{CLOSED}/api",
    f"https://{CLOSED}/api?token={MARKER}",
    f"http://{CLOSED}/api?api_key={MARKER}&api_key_name=sig&api_key_in=query",
    f"http://{CLOSED}/api?api_key={MARKER}&api_key_name=X-Weird-Key",
    f"http://{CLOSED}/api?client_secret={MARKER}&client_id=c&token_url=http://{CLOSED}/t",
    f"graphql+http://{CLOSED}/graphql?token={MARKER}",
    f"graphql+https://app:{MARKER}@{CLOSED}/graphql",
]


def test_secret_urls_cover_every_builtin_scheme():
    from dictamesh_connectors.registry import _BUILTIN

    covered = {url.split(":", 1)[0] for url in SECRET_URLS}
    assert set(_BUILTIN) - covered == {"file"}  # the file connector has no secret


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("url", SECRET_URLS, ids=lambda u: u.split("/", 1)[0].rstrip(":"))
def test_ping_failure_never_prints_a_secret_for_any_scheme(url, as_json, capsys):
    argv = ["ping", url, "--timeout", "2", *(["--json"] if as_json else [])]
    with SecretScan() as scan:
        status = cli.main(argv)
    out = capsys.readouterr()
    assert status in (1, 2), out  # unreachable (1) or refused as config (2), never ok
    scan.assert_clean(MARKER, texts=[out.out, out.err])


def test_check_never_prints_a_secret_for_any_scheme(tmp_path, capsys):
    tables = "".join(f'[connectors.c{i}]\nurl = "{url}"\n\n' for i, url in enumerate(SECRET_URLS))
    path = tmp_path / "connectors.toml"
    path.write_text(tables)
    for extra in ([], ["--json"]):
        with SecretScan() as scan:
            status = cli.main(["check", "--config", str(path), "--timeout", "2", *extra])
        out = capsys.readouterr()
        assert status in (1, 2), out
        scan.assert_clean(MARKER, texts=[out.out, out.err])


def test_mongodb_ping_masks_the_password_on_success_and_on_refusal(ferretdb_uri, capsys):
    parts = urllib.parse.urlsplit(ferretdb_uri)
    password = urllib.parse.unquote(parts.password or "")
    assert password, "the FerretDB test URI carries a password"
    with SecretScan() as scan:
        assert cli.main(["ping", ferretdb_uri, "--timeout", "10"]) == 0
    out = capsys.readouterr()
    scan.assert_clean(password, texts=[out.out, out.err])
    assert out.out.startswith("ok: mongodb://dictamesh:***@")
    wrong = ferretdb_uri.replace(urllib.parse.quote(password), MARKER)
    with SecretScan() as scan:
        assert cli.main(["ping", wrong, "--timeout", "10"]) == 1
    out = capsys.readouterr()
    scan.assert_clean(MARKER, texts=[out.out, out.err])
    assert "AUTH_FAILED" in out.err


# A password with an unescaped "/", "?" or "#": the URL grammar ends the host
# part there, so pieces of the password became a host, a port, a database or
# an option name, and every message showed them ("invalid port in host
# 'app:LEAKHEAD'", "connect on LEAKTAIL@127.0.0.1:1/db@app:4711", "unknown
# option(s) LEAKTAIL@..."): refused before anything is parsed, quoting nothing.
SPLIT_PASSWORD_URLS = [
    "postgresql://app:4711/LEAKTAIL@127.0.0.1:1/db",
    "postgres://app:4711#LEAKTAIL@127.0.0.1:1/db",
    "mongodb://app:LEAKHEAD/LEAKTAIL@127.0.0.1:1/db",
    "mongodb://app:LEAKHEAD#LEAKTAIL@127.0.0.1:1/db",
    "kafka://app:LEAKHEAD?LEAKTAIL@127.0.0.1:1",
    "kafka+ssl://app:LEAKHEAD/LEAKTAIL@127.0.0.1:1",
]


@pytest.mark.parametrize("url", SPLIT_PASSWORD_URLS)
def test_a_password_split_by_an_unescaped_character_is_never_printed(url, capsys, monkeypatch):
    from dictamesh_connectors.errors import InvalidConfigError
    from dictamesh_connectors.registry import connector_class

    with SecretScan() as scan:
        status = cli.main(["ping", url, "--timeout", "2"])
    out = capsys.readouterr()
    assert status == 2, out
    for piece in ("LEAKHEAD", "LEAKTAIL", "4711"):
        scan.assert_clean(piece, texts=[out.out, out.err])
    config_class = connector_class(url.split(":", 1)[0]).config_class
    with pytest.raises(InvalidConfigError):
        config_class.from_url(url)
    monkeypatch.setenv("SPLIT_URL", url)
    with pytest.raises(InvalidConfigError):
        config_class.from_env("SPLIT_")


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://127.0.0.1:1/db?appName=svc@prod&serverSelectionTimeoutMS=300",
        "kafka://127.0.0.1:1?client_id=svc@prod",
        "postgresql://app:pw@127.0.0.1:1/db?application_name=svc@prod",
    ],
)
def test_an_at_sign_in_a_query_value_or_after_real_userinfo_is_still_accepted(url):
    from dictamesh_connectors.registry import connector_class

    connector_class(url.split(":", 1)[0]).config_class.from_url(url)


def test_http_paths_may_hold_an_at_sign():
    from dictamesh_connectors.http import HTTPConfig

    assert HTTPConfig.from_url("http://127.0.0.1:8080/users/a@b").base_url.endswith("/a@b")
