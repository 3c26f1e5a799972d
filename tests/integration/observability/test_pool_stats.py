"""stats().pool of every connector, read from its driver's own pool, against the real servers.

Each test holds some of the pool's connections on purpose (a transaction, a
streamed response, a cursor, a queued message) and checks the numbers the
driver reports: in_use, idle, waiting and size.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from dictamesh_connectors.file import FileConfig, FileConnector
from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from tests.integration.http.servers import LocalServer, ScriptedApp

pytestmark = pytest.mark.integration


def _eventually(check, timeout: float = 20.0):
    """Poll ``check()`` until it returns a truthy value (pool numbers settle asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def test_postgresql_pool_stats_from_psycopg_pool(postgres_dsn):
    from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector

    config = PostgreSQLConfig.from_url(postgres_dsn, min_open_conns=2, max_open_conns=2)
    with PostgreSQLConnector(config) as db:
        pool = _eventually(lambda: (p := db.stats().pool)["size"] == 2 and p)
        assert pool["idle"] == 2 and pool["in_use"] == 0 and pool["waiting"] == 0
        assert (pool["min"], pool["max"]) == (2, 2)
        inside, release = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def hold() -> None:
            try:
                with db.transaction() as tx:
                    tx.query("SELECT 1")
                    inside.set()
                    release.wait(30)
            except BaseException as exc:  # reported below
                errors.append(exc)

        holders = [threading.Thread(target=hold) for _ in range(2)]
        for t in holders:
            t.start()
        assert _eventually(lambda: db.stats().pool["in_use"] == 2)
        waiter = threading.Thread(target=lambda: db.query("SELECT 1"))
        waiter.start()
        busy = _eventually(lambda: (p := db.stats().pool)["waiting"] == 1 and p)
        assert busy["in_use"] == 2 and busy["idle"] == 0 and busy["size"] == 2
        release.set()
        for t in (*holders, waiter):
            t.join(30)
        assert not errors
        after = _eventually(lambda: (p := db.stats().pool)["idle"] == 2 and p)
        assert after["in_use"] == 0 and after["waiting"] == 0
    assert db.stats().pool == {}  # disconnected: no handle, no numbers


def test_http_pool_stats_from_the_urllib3_pools():
    app = ScriptedApp(ScriptedApp.status(200, b"ok"))
    app.route("/big", ScriptedApp.big(256 * 1024))
    with LocalServer(app) as server:
        config = HTTPConfig(base_url=server.url, max_idle_conns_per_host=4)
        with HTTPConnector(config) as api:
            assert api.stats().pool["size"] == 0  # nothing connected yet
            api.get("/a")
            pool = api.stats().pool
            assert pool == {**pool, "in_use": 0, "idle": 1, "size": 1, "origins": 1, "max": 4}
            with api.stream("GET", "/big") as one, api.stream("GET", "/big") as two:
                held = api.stats().pool
                assert held["in_use"] == 2 and held["idle"] == 0 and held["size"] == 2
                b"".join(one)
                b"".join(two)
            back = api.stats().pool
            assert back["in_use"] == 0 and back["idle"] == 2
            assert back["connections_made"] == 2


def test_graphql_reports_its_http_pool():
    from dictamesh_connectors.graphql import GraphQLConfig, GraphQLConnector

    app = ScriptedApp(ScriptedApp.status(200, b'{"data": {"ok": true}}'))
    with (
        LocalServer(app) as server,
        GraphQLConnector(GraphQLConfig(base_url=server.url, path="/graphql")) as gql,
    ):
        gql.query("{ ok }")
        pool = gql.stats().pool
        assert pool["idle"] == 1 and pool["in_use"] == 0 and pool["size"] == 1


def test_mongodb_pool_stats_from_pymongos_pool_counters(mongodb_uri):
    from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector

    collection = f"pool_stats_{uuid.uuid4().hex[:8]}"
    with MongoDBConnector(MongoDBConfig.from_url(mongodb_uri, max_pool_size=1)) as db:
        db.insert_many(collection, [{"n": n} for n in range(10)])
        base = db.stats().pool
        assert base["in_use"] == 0 and base["waiting"] == 0 and base["max"] == 1
        assert base["size"] == base["idle"] == 1 and base["connections_made"] == 1
        # Four threads on a one-connection pool: one holds it, the others wait.
        seen = {"busy": False, "queued": False}
        stop = threading.Event()
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(20_000):
                    if stop.is_set():
                        return
                    db.find_one(collection, {"n": 1})
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()

        def sample() -> bool:
            pool = db.stats().pool
            assert pool["size"] <= 1 and 0 <= pool["in_use"] <= 1
            seen["busy"] |= pool["in_use"] == 1
            seen["queued"] |= pool["waiting"] >= 1
            return seen["busy"] and seen["queued"]

        observed = _eventually(sample, timeout=60)
        stop.set()
        for t in threads:
            t.join(60)
        assert not errors
        assert observed, seen
        after = db.stats().pool
        assert after["in_use"] == 0 and after["waiting"] == 0 and after["size"] == 1
        assert after["connections_made"] == 1  # one connection served all four threads
        db.drop_collection(collection)


def test_kafka_pool_stats_from_the_librdkafka_statistics(kafka_bootstrap):
    from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector

    config = KafkaConfig(
        bootstrap_servers=kafka_bootstrap,
        allow_auto_create_topics=True,
        linger_ms=200,
        producer_options={"statistics.interval.ms": 100},
    )
    topic = f"pool-stats-{uuid.uuid4().hex[:8]}"
    with KafkaConnector(config) as kafka:
        kafka.produce_sync(topic, b"first")
        pool = _eventually(lambda: (p := kafka.stats().pool).get("size") and p)
        assert pool["size"] >= 1 and pool["in_use"] + pool["idle"] == pool["size"]
        assert pool["queue_max"] > 0 and pool["requests_in_flight"] >= 0
        # linger_ms holds queued messages in the producer: they are waiting.
        futures = [kafka.produce(topic, b"x") for _ in range(50)]
        assert kafka.stats().pool["waiting"] >= 1
        for future in futures:
            future.result(30)
        assert _eventually(lambda: kafka.stats().pool["waiting"] == 0)


def test_file_stats_count_what_is_open_on_the_root(tmp_path):
    with FileConnector(FileConfig(root=str(tmp_path))) as files:
        files.write_text("a.txt", "hello")
        assert files.stats().pool == {"in_use": 0, "size": 1}
        with files.lock("a.txt"), files.open("a.txt") as reader:
            assert files.stats().pool["in_use"] == 2
            reader.read()
        assert _eventually(lambda: files.stats().pool["in_use"] == 0)
