"""Shared pytest configuration: where the real test services are.

Each of the session fixtures ``postgres_dsn``, ``kafka_bootstrap`` and
``mongodb_uri`` resolves its service, first match wins:

1. an explicit URL in the environment (``DICTAMESH_TEST_POSTGRES_DSN``,
   ``DICTAMESH_TEST_KAFKA_BOOTSTRAP``, ``DICTAMESH_TEST_MONGODB_URI``);
2. the native services of ``scripts/services.sh`` (``make services-up``) when
   their fixed port on 127.0.0.1 already answers;
3. pytest-docker with ``docker-compose.test.yml``, only when ``docker info``
   and ``docker compose version`` both succeed (the compose file publishes the
   same host ports, so it is not tried while the native services hold them);
4. otherwise the service is unavailable: ``pytest.fail`` when ``CI=true`` (in
   CI a missing service is a failure, never a skip), else ``pytest.skip``
   telling how to start the services.

No driver (psycopg, pymongo, confluent_kafka) is imported at module level, so
the unit tests run without them.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.test.yml"

POSTGRES_DSN = "postgresql://dictamesh:dictamesh-test-pw@127.0.0.1:55432/dictamesh_test"
KAFKA_BOOTSTRAP = "127.0.0.1:59092"
MONGODB_URI = "mongodb://127.0.0.1:57017/?directConnection=true"
FERRETDB_URI = (
    "mongodb://dictamesh:dictamesh-test-pw@127.0.0.1:57027/?authSource=admin&directConnection=true"
)
REDIS_URL = "redis://127.0.0.1:56379/0"

DOCKER_READY_TIMEOUT = 180.0


@dataclass(frozen=True)
class Service:
    name: str
    env_var: str
    url: str
    port: int


POSTGRES = Service("postgres", "DICTAMESH_TEST_POSTGRES_DSN", POSTGRES_DSN, 55432)
KAFKA = Service("kafka", "DICTAMESH_TEST_KAFKA_BOOTSTRAP", KAFKA_BOOTSTRAP, 59092)
MONGODB = Service("mongodb", "DICTAMESH_TEST_MONGODB_URI", MONGODB_URI, 57017)
FERRETDB = Service("ferretdb", "DICTAMESH_TEST_FERRETDB_URI", FERRETDB_URI, 57027)
REDIS = Service("redis", "DICTAMESH_TEST_REDIS_URL", REDIS_URL, 56379)


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeating it here is harmless.
    config.addinivalue_line(
        "markers", "integration: needs a real server (started by make services-up)"
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With CI=true, a skipped integration test is a failure, whatever skipped it.

    ``_unavailable`` already fails instead of skipping in CI; this also
    catches skips from anywhere else (``importorskip`` of a driver, a
    ``skipif`` on a service feature), so CI never goes green untested.
    """
    outcome = yield
    report = outcome.get_result()
    if (
        _in_ci()
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("integration") is not None
    ):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true, so a skipped integration test is a failure: {reason}"


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _succeeds(*argv: str) -> bool:
    try:
        result = subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


@functools.lru_cache(maxsize=1)
def docker_usable() -> bool:
    """A Docker engine answers and the compose v2 plugin is installed."""
    if os.environ.get("DICTAMESH_TEST_NO_DOCKER", "") not in ("", "0"):
        return False
    return _succeeds("docker", "info") and _succeeds("docker", "compose", "version")


def _unavailable(service: Service, detail: str) -> None:
    message = (
        f"{service.name} test service is not available: {detail}. "
        f"Start the local services with `make services-up` "
        f"(scripts/services.sh up), or point {service.env_var} at a running server."
    )
    if _in_ci():
        pytest.fail(f"CI=true, so a missing service is an error: {message}", pytrace=False)
    pytest.skip(message)


def _resolve(request: pytest.FixtureRequest, service: Service) -> str:
    explicit = os.environ.get(service.env_var, "").strip()
    if explicit:
        return explicit
    if port_answers(service.port):
        return service.url
    if docker_usable():
        try:
            docker_services: Any = request.getfixturevalue("docker_services")
            docker_services.wait_until_responsive(
                check=lambda: port_answers(service.port),
                timeout=DOCKER_READY_TIMEOUT,
                pause=1.0,
            )
        except Exception as exc:  # pytest-docker raises bare Exception
            _unavailable(service, f"starting it with docker compose failed: {exc}")
        return service.url
    _unavailable(
        service,
        f"nothing answers on 127.0.0.1:{service.port}, {service.env_var} is not set "
        "and no usable Docker engine was found",
    )
    raise AssertionError("unreachable")  # pragma: no cover - skip/fail raised


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    """The compose file pytest-docker starts (only when Docker is usable)."""
    return str(COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"dictamesh-test-{os.getpid()}"


@pytest.fixture(scope="session")
def postgres_dsn(request: pytest.FixtureRequest) -> str:
    """libpq/psycopg URL of a PostgreSQL server; the role is a superuser."""
    return _resolve(request, POSTGRES)


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """bootstrap.servers of a Kafka broker with auto topic creation."""
    return _resolve(request, KAFKA)


@pytest.fixture(scope="session")
def mongodb_uri(request: pytest.FixtureRequest) -> str:
    """MongoDB URI of a single-node replica set primary (transactions work)."""
    return _resolve(request, MONGODB)


@pytest.fixture(scope="session")
def ferretdb_uri(request: pytest.FixtureRequest) -> str:
    """MongoDB URI of FerretDB 1.24 (SCRAM user with the password; no transactions)."""
    return _resolve(request, FERRETDB)


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """redis:// URL of a Redis server (the Celery tests' broker and result backend)."""
    return _resolve(request, REDIS)
