"""The conformance suite on PostgreSQLConnector, against the real server (``postgres_dsn``).

The connector logs in as a role of its own whose password is the marker
secret, so the secret check scans a working connection, not only a refused one.
"""

from __future__ import annotations

import urllib.parse
import uuid

import psycopg
import pytest

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.conformance import ConnectorConformance

pytestmark = pytest.mark.integration

MARKER = "s3cret-MARKER-pg-conformance"
ROLE = "dictamesh_conformance"


def ensure_role(dsn: str) -> None:
    """A login role with the marker password (left in place: concurrent runs share it)."""
    with psycopg.connect(dsn, autocommit=True, application_name="dmtest-admin") as admin:
        admin.execute(
            "DO $$ BEGIN CREATE ROLE " + ROLE + " LOGIN; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        admin.execute(f"ALTER ROLE {ROLE} LOGIN PASSWORD '{MARKER}'")


class TestPostgreSQLConformance(ConnectorConformance):
    connector_class = PostgreSQLConnector
    secret_marker = MARKER

    @pytest.fixture(autouse=True)
    def _server(self, postgres_dsn: str) -> None:
        ensure_role(postgres_dsn)
        parts = urllib.parse.urlsplit(postgres_dsn)
        host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        self.url = f"postgresql://{ROLE}:{MARKER}@{host}{parts.path}"

    def make_config(self) -> BaseConfig:
        return PostgreSQLConfig.from_url(
            self.url,
            application_name=f"dmconf_{uuid.uuid4().hex[:10]}",
            retry=RetryPolicy(max_attempts=3, initial_backoff=0.01),
            connect_timeout=5,
        )

    def operation(self, connector: PostgreSQLConnector) -> object:
        return connector.query("SELECT 1").scalar()

    def slow_operation(self, connector: PostgreSQLConnector, seconds: float) -> object:
        return connector.query("SELECT pg_sleep(%s)", [seconds])

    def failing_operation(self, connector: PostgreSQLConnector) -> object:
        return connector.query("SELECT * FROM no_such_table_conformance")
