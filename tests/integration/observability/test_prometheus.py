"""Prometheus metrics (observability_prometheus), scraped from a real prometheus_client
HTTP endpoint while real connectors work against the real services."""

from __future__ import annotations

import time
import urllib.request
import uuid

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


def _scrape_until(read, check, limit: float = 30.0):
    """Scrape until ``check(samples)`` holds (librdkafka's statistics come every 100 ms here)."""
    deadline = time.monotonic() + limit
    samples = read()
    while not check(samples) and time.monotonic() < deadline:
        time.sleep(0.05)
        samples = read()
    return samples


def test_counters_and_pool_gauges_of_mongodb_kafka_and_file(
    scrape, mongodb_uri, kafka_bootstrap, tmp_path
):
    from dictamesh_connectors.file import FileConfig, FileConnector
    from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector
    from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector

    collector, read = scrape
    collection = f"prom_{uuid.uuid4().hex[:8]}"
    topic = f"prom-{uuid.uuid4().hex[:8]}"
    kafka_config = KafkaConfig(
        bootstrap_servers=kafka_bootstrap,
        allow_auto_create_topics=True,
        producer_options={"statistics.interval.ms": 100},
    )
    with (
        MongoDBConnector(MongoDBConfig.from_url(mongodb_uri, max_pool_size=3)) as store,
        KafkaConnector(kafka_config) as events,
        FileConnector(FileConfig(root=str(tmp_path))) as export,
    ):
        collector.watch(store, "store")
        collector.watch(events, "events")
        collector.watch(export, "export")
        store.insert_one(collection, {"n": 1})
        store.insert_one(collection, {"n": 2})
        assert store.find_one(collection, {"n": 2})["n"] == 2
        for n in range(3):
            events.produce(topic, f"event {n}".encode()).result(60)
        # The connector's consumers count under its label: one operation per call.
        consume_calls = 0
        with events.consumer(f"prom-{uuid.uuid4().hex[:6]}", [topic]) as consumer:
            received: list = []
            while len(received) < 3 and consume_calls < 60:
                received += consumer.consume(10, 1.0)
                consume_calls += 1
            consumer.commit()
        assert len(received) == 3
        export.write_text("a.txt", "x")
        with pytest.raises(ConnectorError) as info:
            export.read_text("missing.txt")
        assert info.value.code.value == "NOT_FOUND"

        def kafka_stats_arrived(samples) -> bool:
            sizes = samples.get("dictamesh_connector_pool_size", [])
            return any(labels.get("connector") == "events" for labels, _ in sizes)

        samples = _scrape_until(read, kafka_stats_arrived)
        ops = "dictamesh_connector_operations_total"
        assert value(samples, ops, connector="store", operation="insert_one") == 2
        assert value(samples, ops, connector="store", operation="find_one") == 1
        assert value(samples, ops, connector="events", operation="produce") == 3
        assert value(samples, ops, connector="events", operation="consume") == consume_calls
        assert value(samples, ops, connector="events", operation="commit") == 1
        durations = "dictamesh_connector_operation_duration_seconds_count"
        assert value(samples, durations, connector="events", operation="consume") == consume_calls
        assert value(samples, ops, connector="export", operation="write") == 1
        errors = "dictamesh_connector_errors_total"
        assert value(samples, errors, connector="export", operation="read", code="NOT_FOUND") == 1
        for name in ("store", "events", "export"):
            assert value(samples, "dictamesh_connector_up", connector=name) == 1
            assert value(samples, "dictamesh_connector_in_flight", connector=name) == 0

        def pool(samples, name, key):
            return value(samples, f"dictamesh_connector_pool_{key}", connector=name)

        # MongoDB: pymongo's pool, counted from its CMAP events.
        assert pool(samples, "store", "max") == 3
        assert pool(samples, "store", "size") >= 1
        assert pool(samples, "store", "in_use") == 0 and pool(samples, "store", "waiting") == 0
        assert pool(samples, "store", "idle") == pool(samples, "store", "size")
        # Kafka: broker connections from librdkafka's statistics, messages queued exactly.
        assert pool(samples, "events", "size") >= 1 and pool(samples, "events", "waiting") == 0
        assert pool(samples, "events", "in_use") + pool(samples, "events", "idle") == pool(
            samples, "events", "size"
        )
        # Files: no pool, one root descriptor; what is open on it is in use.
        assert pool(samples, "export", "size") == 1 and pool(samples, "export", "in_use") == 0
        with export.lock("a.txt"):
            assert pool(read(), "export", "in_use") == 1
        store.drop_collection(collection)
    after = read()
    for name in ("store", "events", "export"):
        assert value(after, "dictamesh_connector_up", connector=name) == 0
    assert value(after, ops, connector="events", operation="produce") == 3
