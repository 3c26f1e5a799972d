"""Our fakes pass the conformance suite every real connector passes.

No server: an "unreachable" config is one the fake is programmed to refuse
(``fail_next("connect", code=CONNECTION_FAILED)``), the slow operation is
the fake's own operation with a programmed latency. The configs are the
real connectors' (already fuzzed by their own suites), so few examples.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.errors import ErrorCode
from dictamesh_connectors.file import FileConfig
from dictamesh_connectors.http import Credentials, HTTPConfig
from dictamesh_connectors.postgresql import PostgreSQLConfig
from dictamesh_connectors.testing.conformance import ConnectorConformance
from dictamesh_connectors.testing.fakes import FakeFile, FakeHTTP, FakePostgreSQL

MARKER = "s3cret-FAKE-MARKER"


class _FakeConformance(ConnectorConformance):
    slow_seconds: ClassVar[float] = 2.5
    config_examples: ClassVar[int] = 5
    url_examples: ClassVar[int] = 25
    slow_verb: ClassVar[str] = ""

    def is_unreachable(self, config: Any) -> bool:
        raise NotImplementedError

    def make_connector(self, config: BaseConfig | None = None) -> Any:
        connector = super().make_connector(config)
        if self.is_unreachable(connector.config):
            connector.fail_next("connect", code=ErrorCode.CONNECTION_FAILED, times=10**6)
        self.prepare(connector)
        return connector

    def prepare(self, connector: Any) -> None:
        """Program what ``operation()`` and ``slow()`` need (default: nothing)."""

    def slow(self, connector: Any) -> object:
        """An operation of ``slow_verb`` (never the one ``operation()`` uses)."""
        raise NotImplementedError

    def slow_operation(self, connector: Any, seconds: float) -> object:
        connector.set_latency(self.slow_verb, seconds)  # only this verb: operation() stays fast
        return self.slow(connector)


class TestFakeHTTPConformance(_FakeConformance):
    connector_class = FakeHTTP
    config = HTTPConfig(
        base_url="http://fake.test", credentials=Credentials(username="u", password=MARKER)
    )
    secret_marker = MARKER
    slow_verb = "post"

    def prepare(self, connector: Any) -> None:
        if not connector.routes:  # also for the suite's own probe subclass
            connector.add("GET", "/ok", json="ok")
            connector.add("POST", "/slow", status=204)

    def slow(self, connector: Any) -> object:
        return connector.post("/slow").status_code

    def is_unreachable(self, config: Any) -> bool:
        return bool(config.base_url == "http://unreachable.test")

    def unreachable_config(self, config: BaseConfig) -> BaseConfig | None:
        return config.evolve(base_url="http://unreachable.test")

    def operation(self, connector: Any) -> object:
        self.prepare(connector)
        return connector.get("/ok").json()

    def failing_operation(self, connector: Any) -> object:
        return connector.get("/no-route")


class TestFakePostgreSQLConformance(_FakeConformance):
    connector_class = FakePostgreSQL
    config = PostgreSQLConfig(host="db.test", database="app", username="u", password=MARKER)
    secret_marker = MARKER
    slow_verb = "execute"

    def slow(self, connector: Any) -> object:
        return connector.execute("SELECT pg_sleep(3)").rows_affected

    def is_unreachable(self, config: Any) -> bool:
        return bool(config.host == "127.0.0.1")

    def operation(self, connector: Any) -> object:
        return connector.query("SELECT 1").rows

    def failing_operation(self, connector: Any) -> object:
        connector.add_error("SELECT * FROM missing", "42P01", 'relation "missing" does not exist')
        return connector.query("SELECT * FROM missing")


class TestFakeFileConformance(_FakeConformance):
    connector_class = FakeFile
    config = FileConfig(root="/fake")
    slow_verb = "list"

    def slow(self, connector: Any) -> object:
        return connector.list()

    def is_unreachable(self, config: Any) -> bool:
        return bool(config.root == "/unreachable")

    def unreachable_config(self, config: BaseConfig) -> BaseConfig | None:
        return config.evolve(root="/unreachable")

    def operation(self, connector: Any) -> object:
        return connector.stat("").is_dir

    def failing_operation(self, connector: Any) -> object:
        return connector.read_bytes("missing.txt")

    def test_secrets_redacted(self) -> None:
        """FileConfig holds no secret: checked by the FileConnector suite's reasoning."""
        assert not any(
            field.name in ("password", "token", "api_key") for field in FileConfig.__attrs_attrs__
        )
