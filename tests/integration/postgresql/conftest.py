"""Fixtures for the PostgreSQL integration tests (real server from ``postgres_dsn``).

Each connector gets a unique ``application_name`` so a test can find (and
kill) exactly its own backends in ``pg_stat_activity``; each table name is
unique and dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector
from dictamesh_connectors.retry import RetryPolicy

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVICES = REPO_ROOT / "scripts" / "services.sh"
PG_STATE_DIR = (
    Path(os.environ.get("DICTAMESH_SERVICES_DIR", "/tmp/dictamesh-services")) / "postgres"
)

pytestmark = pytest.mark.integration


def unique(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def backend_pids(admin: psycopg.Connection, application_name: str) -> list[int]:
    """The server processes serving connections with ``application_name``."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY pid",
        [application_name],
    ).fetchall()
    return [r[0] for r in rows]


def terminate(admin: psycopg.Connection, application_name: str) -> int:
    """pg_terminate_backend every connection of ``application_name``; return how many."""
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        [application_name],
    ).fetchall()
    return len(rows)


def _local_server(dsn: str) -> bool:
    config = PostgreSQLConfig.from_url(dsn)
    return config.host in ("127.0.0.1", "localhost") and config.port == 55432


def restart_postgres(dsn: str) -> None:
    """Restart the local test server (pg_ctl restart -m fast) and wait until it answers.

    Uses ``scripts/services.sh restart postgres``; falls back to running
    pg_ctl the way that script does (as the ``postgres`` OS user when root).
    """
    if SERVICES.exists():
        result = subprocess.run(
            ["bash", str(SERVICES), "restart", "postgres"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"services.sh restart failed: {result.stderr[-2000:]}")
    else:
        pg_ctl = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
        data = PG_STATE_DIR / "data"
        command = [str(pg_ctl), "-D", str(data), "-m", "fast", "-w", "-t", "120", "restart"]
        command += ["-l", str(PG_STATE_DIR / "postgres.log")]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=180, cwd="/")

    def answers() -> bool:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return True
        except psycopg.Error:
            return False

    if not wait_for(answers, timeout=120, interval=0.2):
        raise RuntimeError("PostgreSQL did not come back after the restart")


@pytest.fixture
def can_restart(postgres_dsn: str) -> None:
    """Skip unless the test server is the local one this repo's scripts manage."""
    if not _local_server(postgres_dsn):
        pytest.skip("restarting needs the local scripts/services.sh PostgreSQL")
    if not SERVICES.exists() and not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        pytest.skip("neither scripts/services.sh nor pg_ctl is available to restart PostgreSQL")


@pytest.fixture
def make_db(postgres_dsn: str) -> Iterator[Callable[..., PostgreSQLConnector]]:
    """Build (and connect) connectors with a unique application_name; disconnect them after."""
    made: list[PostgreSQLConnector] = []

    def make(connect: bool = True, **overrides: object) -> PostgreSQLConnector:
        overrides.setdefault("application_name", unique("dmtest"))
        overrides.setdefault("retry", RetryPolicy(max_attempts=3, initial_backoff=0.01))
        db = PostgreSQLConnector(PostgreSQLConfig.from_url(postgres_dsn, **overrides))
        made.append(db)
        if connect:
            db.connect()
        return db

    yield make
    for db in made:
        db.disconnect(timeout=10)


@pytest.fixture
def db(make_db: Callable[..., PostgreSQLConnector]) -> PostgreSQLConnector:
    return make_db()


@pytest.fixture
def admin(postgres_dsn: str) -> Iterator[psycopg.Connection]:
    """A plain psycopg connection (superuser) for setup, inspection and fault injection."""
    conn = psycopg.connect(postgres_dsn, autocommit=True, application_name="dmtest-admin")
    yield conn
    conn.close()


@pytest.fixture
def table(postgres_dsn: str) -> Iterator[str]:
    """A unique table name, dropped after the test (created by the test)."""
    name = unique("t")
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(psycopg.sql.Identifier(name))
        )
