"""The installed ``dictamesh-connectors check`` command (and ``python -m``) on real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests.integration.http.servers import LocalServer, ScriptedApp

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMMAND = Path(sys.executable).with_name("dictamesh-connectors")


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        **env,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    return subprocess.run(
        argv, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def _config(tmp_path: Path, postgres_dsn: str, http_url: str, *, pg_password_var: str) -> Path:
    parts = urllib.parse.urlsplit(postgres_dsn)
    url = urllib.parse.urlunsplit(
        (parts.scheme, f"{parts.username}@{parts.hostname}:{parts.port}", parts.path, "", "")
    )
    path = tmp_path / "connectors.toml"
    path.write_text(
        f"""
[connectors.orders_db]
url = "{url}"
max_open_conns = 2
connect_timeout = 5
password = {{ env = "{pg_password_var}" }}

[connectors.crm]
url = "{http_url}/api"
health_path = "/health"
"""
    )
    return path


@pytest.fixture
def http_server():
    app = ScriptedApp()
    app.route("/api/health", ScriptedApp.status(200, b"ok"))
    with LocalServer(app) as server:
        yield server


@pytest.mark.parametrize(
    "argv0", [[str(COMMAND)], [sys.executable, "-m", "dictamesh_connectors"]], ids=["script", "m"]
)
def test_check_healthy_text_and_json(argv0, tmp_path, postgres_dsn, http_server):
    assert COMMAND.exists(), f"the console script is not installed at {COMMAND}"
    password = urllib.parse.unquote(urllib.parse.urlsplit(postgres_dsn).password or "")
    path = _config(tmp_path, postgres_dsn, http_server.url, pg_password_var="CHECK_PG_PW")
    env = {"CHECK_PG_PW": password}
    result = _run([*argv0, "check", "--config", str(path)], env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["ok", "orders_db", "postgresql"],
        ["ok", "crm", "http"],
    ]
    assert "2 of 2 connectors healthy" in result.stderr
    assert password not in result.stdout + result.stderr
    result = _run([*argv0, "check", "--config", str(path), "--json"], env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    assert [c["name"] for c in report["connectors"]] == ["orders_db", "crm"]
    assert all(c["state"] == "connected" and c["latency_ms"] > 0 for c in report["connectors"])
    assert password not in result.stdout


def test_check_unhealthy_exit_1_with_the_classified_error(tmp_path, postgres_dsn, http_server):
    path = _config(tmp_path, postgres_dsn, http_server.url, pg_password_var="CHECK_PG_PW")
    env = {"CHECK_PG_PW": "WRONG-CHECK-SECRET-7"}
    result = _run([str(COMMAND), "check", "--config", str(path), "--json"], env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    db, crm = report["connectors"]
    assert db["healthy"] is False and db["error_code"] == "AUTH_FAILED" and db["transient"] is False
    assert crm["healthy"] is True
    assert "WRONG-CHECK-SECRET-7" not in result.stdout + result.stderr
    result = _run([str(COMMAND), "check", "--config", str(path)], env)
    assert result.returncode == 1
    assert "FAILED  orders_db" in result.stdout and "AUTH_FAILED (permanent)" in result.stdout


def test_check_bad_config_exit_2_before_any_io(tmp_path, postgres_dsn, http_server):
    path = _config(tmp_path, postgres_dsn, http_server.url, pg_password_var="UNSET_CHECK_VAR_X")
    result = _run([str(COMMAND), "check", "--config", str(path)], {})
    assert result.returncode == 2
    assert "connector 'orders_db', field 'password'" in result.stderr
    assert "UNSET_CHECK_VAR_X is not set" in result.stderr
    assert not http_server.app.requests  # refused at load time: nothing was contacted


def test_check_from_environment_variables(postgres_dsn):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICTAMESH_CONNECTOR_")}
    env["DICTAMESH_CONNECTOR_MAIN_DB_URL"] = postgres_dsn
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "dictamesh_connectors", "check", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (db,) = json.loads(result.stdout)["connectors"]
    assert db["name"] == "main_db" and db["healthy"] is True and "***" in db["target"]


def _five_kinds(tmp_path: Path, postgres_dsn: str, http_url: str, kafka: str, mongo: str) -> Path:
    """One connector of each kind: PostgreSQL, HTTP, Kafka, MongoDB and files."""
    tmp_path.mkdir(exist_ok=True)
    path = _config(tmp_path, postgres_dsn, http_url, pg_password_var="CHECK_PG_PW")
    export = tmp_path / "export"
    with path.open("a") as toml:
        toml.write(
            f"""
[connectors.events]
url = "kafka://{kafka}"
client_id = "check-test"

[connectors.store]
url = "{mongo}"
server_selection_timeout = 10

[connectors.export]
url = "file://{export}"
create_root = true
"""
        )
    return path


def test_check_covers_every_connector_kind(
    tmp_path, postgres_dsn, http_server, kafka_bootstrap, ferretdb_uri
):
    pg_password = urllib.parse.unquote(urllib.parse.urlsplit(postgres_dsn).password or "")
    mongo_password = urllib.parse.unquote(urllib.parse.urlsplit(ferretdb_uri).password or "")
    assert mongo_password  # FerretDB has SCRAM auth: its password is in the file's URL
    path = _five_kinds(tmp_path, postgres_dsn, http_server.url, kafka_bootstrap, ferretdb_uri)
    env = {"CHECK_PG_PW": pg_password}
    result = _run([str(COMMAND), "check", "--config", str(path), "--json"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    kinds = {c["name"]: c["kind"] for c in report["connectors"]}
    assert kinds == {
        "orders_db": "postgresql",
        "crm": "http",
        "events": "kafka",
        "store": "mongodb",
        "export": "file",
    }
    assert all(c["state"] == "connected" and c["latency_ms"] > 0 for c in report["connectors"])
    assert (tmp_path / "export").is_dir()  # the file connector really connected
    store = next(c for c in report["connectors"] if c["name"] == "store")
    assert "***" in store["target"]
    text = _run([str(COMMAND), "check", "--config", str(path)], env)
    assert text.returncode == 0, text.stdout + text.stderr
    assert [line.split()[:3] for line in text.stdout.splitlines()] == [
        ["ok", name, kind] for name, kind in kinds.items()
    ]
    assert "5 of 5 connectors healthy" in text.stderr
    for output in (result, text):
        shown = output.stdout + output.stderr
        assert pg_password not in shown and mongo_password not in shown

    # A wrong MongoDB password: AUTH_FAILED (permanent), exit 1, the password never shown.
    wrong = ferretdb_uri.replace(f":{mongo_password}@", ":WRONG-MONGO-SECRET-3@")
    bad = _five_kinds(tmp_path / "bad", postgres_dsn, http_server.url, kafka_bootstrap, wrong)
    result = _run([str(COMMAND), "check", "--config", str(bad), "--json"], env)
    assert result.returncode == 1, result.stdout + result.stderr
    by_name = {c["name"]: c for c in json.loads(result.stdout)["connectors"]}
    store = by_name["store"]
    assert not store["healthy"] and store["error_code"] == "AUTH_FAILED" and not store["transient"]
    assert all(c["healthy"] for name, c in by_name.items() if name != "store")
    assert "WRONG-MONGO-SECRET-3" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "argv0", [[str(COMMAND)], [sys.executable, "-m", "dictamesh_connectors"]], ids=["script", "m"]
)
def test_ping_exit_codes_from_the_installed_command(argv0, postgres_dsn, ferretdb_uri):
    """ping, run as users run it: 0 healthy, 1 unhealthy (classified), 2 bad usage or config."""
    pg_password = urllib.parse.unquote(urllib.parse.urlsplit(postgres_dsn).password or "")
    shown: list[str] = []

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        result = _run([*argv0, *argv], {})
        shown.append(result.stdout + result.stderr)
        return result

    result = run("ping", postgres_dsn, "--timeout", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: postgresql://") and ":***@" in result.stdout
    result = run("ping", ferretdb_uri, "--timeout", "10", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["healthy"] is True
    wrong = postgres_dsn.replace(f":{pg_password}@", ":WRONG-PING-SECRET-9@")
    result = run("ping", wrong, "--timeout", "10", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "AUTH_FAILED" and error["transient"] is False
    for argv in (["ping"], ["ping", "gopher://nowhere"], ["ping", postgres_dsn, "--timeout", "x"]):
        result = run(*argv)
        assert result.returncode == 2, (argv, result.stdout + result.stderr)
    for output in shown:
        assert pg_password not in output and "WRONG-PING-SECRET-9" not in output
