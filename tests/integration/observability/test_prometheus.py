"""Prometheus metrics (observability_prometheus), scraped from a real prometheus_client
HTTP endpoint while real connectors work against the real services."""

from __future__ import annotations

import urllib.request

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.observability_prometheus import ConnectorCollector
from dictamesh_connectors.retry import RetryPolicy
from tests.integration.http.servers import LocalServer, ScriptedApp

pytestmark = pytest.mark.integration


@pytest.fixture
def scrape():
    registry = CollectorRegistry()
    collector = ConnectorCollector(registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = server.server_port

    def read() -> dict[str, list]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        samples: dict[str, list] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return samples

    try:
        yield collector, read
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def value(samples, name, **labels):
    found = [
        v for lab, v in samples.get(name, []) if all(lab.get(k) == w for k, w in labels.items())
    ]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def test_counters_and_pool_gauges_of_postgresql_and_http(scrape, postgres_dsn):
    from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector

    collector, read = scrape
    app = ScriptedApp(ScriptedApp.status(200, b"ok"))
    app.route("/flaky", ScriptedApp.sequence(ScriptedApp.status(503), ScriptedApp.status(200)))
    config = PostgreSQLConfig.from_url(postgres_dsn, min_open_conns=1, max_open_conns=3)
    with LocalServer(app) as server, PostgreSQLConnector(config) as db:
        api = HTTPConnector(
            HTTPConfig(
                base_url=server.url,
                retry=RetryPolicy(max_attempts=2, initial_backoff=0.0, max_backoff=0.0),
            )
        )
        collector.watch(db, "orders-db")
        collector.watch(api, "crm-api")
        api.connect()
        for n in range(5):
            db.query("SELECT %s::int", [n])
        with pytest.raises(ConnectorError) as info:
            db.execute("SELECT * FROM no_such_table_prom")
        for n in range(3):
            api.get(f"/items/{n}", params={"page": n})  # many URLs, one label
        api.get("/flaky")
        samples = read()
        assert (
            value(
                samples,
                "dictamesh_connector_operations_total",
                connector="orders-db",
                operation="query",
            )
            == 5
        )
        assert (
            value(
                samples,
                "dictamesh_connector_errors_total",
                connector="orders-db",
                code=info.value.code.value,
            )
            == 1
        )
        assert (
            value(
                samples,
                "dictamesh_connector_operations_total",
                connector="crm-api",
                operation="GET",
            )
            == 5
        )
        assert (
            value(
                samples, "dictamesh_connector_retries_total", connector="crm-api", operation="GET"
            )
            == 1
        )
        assert (
            value(
                samples, "dictamesh_connector_errors_total", connector="crm-api", code="UNAVAILABLE"
            )
            == 1
        )
        assert (
            value(
                samples,
                "dictamesh_connector_operation_duration_seconds_count",
                connector="orders-db",
                operation="query",
            )
            == 5
        )
        assert (
            value(
                samples,
                "dictamesh_connector_operation_duration_seconds_bucket",
                connector="orders-db",
                operation="query",
                le="+Inf",
            )
            == 5
        )
        assert value(samples, "dictamesh_connector_up", connector="orders-db") == 1
        assert value(samples, "dictamesh_connector_pool_max", connector="orders-db") == 3
        size = value(samples, "dictamesh_connector_pool_size", connector="orders-db")
        idle = value(samples, "dictamesh_connector_pool_idle", connector="orders-db")
        assert (
            1 <= size <= 3
            and value(samples, "dictamesh_connector_pool_in_use", connector="orders-db")
            == size - idle
        )
        assert value(samples, "dictamesh_connector_pool_idle", connector="crm-api") == 1
        assert value(samples, "dictamesh_connector_in_flight", connector="crm-api") == 0
        # Bounded label sets: no URL, no query, no statement anywhere in a label.
        for entries in samples.values():
            for labels, _ in entries:
                assert set(labels) <= {"connector", "operation", "code", "le"}
                assert all("/" not in v and "SELECT" not in v for v in labels.values())
        api.disconnect()
    after = read()
    assert value(after, "dictamesh_connector_up", connector="crm-api") == 0
    assert (
        value(after, "dictamesh_connector_operations_total", connector="crm-api", operation="GET")
        == 5
    )


def test_operation_labels_are_capped(scrape, tmp_path):
    from dictamesh_connectors.file import FileConfig, FileConnector

    registry = CollectorRegistry()
    collector = ConnectorCollector(registry, max_operations=2)
    with FileConnector(FileConfig(root=str(tmp_path))) as files:
        collector.watch(files, "files")
        files.write_text("a.txt", "x")
        files.read_text("a.txt")
        files.stat("a.txt")
        files.list("")
    names = {
        sample.labels["operation"]
        for family in collector.collect()
        for sample in family.samples
        if sample.name == "dictamesh_connector_operations_total"
    }
    assert len(names) == 3 and "other" in names
