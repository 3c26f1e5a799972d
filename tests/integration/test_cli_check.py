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
