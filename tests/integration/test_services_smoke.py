"""Smoke tests of the real test services, through the raw drivers only.

They prove that the servers started by ``scripts/services.sh up`` (or
docker-compose.test.yml) do real round trips before any connector code is
involved: a failure here is an environment problem, not a connector bug.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- PostgreSQL


@pytest.mark.integration
def test_postgres_select_and_parameter_round_trip(postgres_dsn: str) -> None:
    import psycopg

    with psycopg.connect(postgres_dsn, connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        row = conn.execute(
            "SELECT %s::int + 1, %s::text || '!', current_user, current_database()",
            (41, "héllo"),
        ).fetchone()
        assert row is not None
        assert row[:2] == (42, "héllo!")
        # The test role may terminate backends and create databases.
        is_super = conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert is_super == (True,)

        table = _unique("smoke")
        conn.execute(f"CREATE TEMP TABLE {table} (id int PRIMARY KEY, body text)")
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} (id, body) VALUES (%s, %s)",
                [(i, f"row-{i}") for i in range(5)],
            )
        assert conn.execute(f"SELECT count(*), max(body) FROM {table}").fetchone() == (
            5,
            "row-4",
        )


@pytest.mark.integration
def test_postgres_wrong_password_is_rejected(postgres_dsn: str) -> None:
    import psycopg
    from psycopg.conninfo import make_conninfo

    bad = make_conninfo(postgres_dsn, password="definitely-not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad, connect_timeout=10)


# --------------------------------------------------------------------- Kafka


@pytest.mark.integration
def test_kafka_produce_then_consume_in_a_group(kafka_bootstrap: str) -> None:
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = _unique("dictamesh-smoke")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    futures[topic].result(timeout=30)

    try:
        sent = [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(5)]
        errors: list[object] = []
        producer = confluent_kafka.Producer(
            {"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True}
        )
        for key, value in sent:
            producer.produce(
                topic, value=value, key=key, on_delivery=lambda err, _msg: errors.append(err)
            )
        assert producer.flush(30) == 0, "messages still queued after 30s"
        assert len(errors) == len(sent)
        assert all(err is None for err in errors), errors

        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": _unique("dictamesh-smoke-group"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        received: list[tuple[bytes, bytes]] = []
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + 60
            while len(received) < len(sent) and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                assert msg.error() is None, msg.error()
                received.append((msg.key(), msg.value()))
            assert received == sent
            # The group really exists on the broker: committing its offsets works.
            committed = consumer.commit(asynchronous=False)
            assert committed is not None
            assert committed[0].offset == len(sent)
        finally:
            consumer.close()
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)


# ------------------------------------------------------------------- MongoDB


@pytest.mark.integration
def test_mongodb_transactions_commit_and_abort(mongodb_uri: str) -> None:
    import pymongo

    client = pymongo.MongoClient(mongodb_uri, serverSelectionTimeoutMS=10_000)
    db_name = _unique("dictamesh_smoke")
    try:
        hello = client.admin.command("hello")
        assert hello["isWritablePrimary"] is True
        assert hello.get("setName"), "transactions need a replica set member"

        coll = client[db_name].create_collection("items")

        # Committed transaction: the insert is seen inside it and after it.
        def insert_and_read(session: Any) -> Any:
            coll.insert_one({"_id": "committed", "n": 1}, session=session)
            return coll.find_one({"_id": "committed"}, session=session)

        with client.start_session() as session:
            inside = session.with_transaction(insert_and_read)
        assert inside == {"_id": "committed", "n": 1}
        assert coll.find_one({"_id": "committed"}) == {"_id": "committed", "n": 1}

        # Aborted transaction: seen inside only, never outside, gone after abort.
        with client.start_session() as session:
            session.start_transaction()
            coll.insert_one({"_id": "aborted", "n": 2}, session=session)
            assert coll.find_one({"_id": "aborted"}, session=session) is not None
            assert coll.find_one({"_id": "aborted"}) is None  # isolation
            session.abort_transaction()
        assert coll.find_one({"_id": "aborted"}) is None
        assert [d["_id"] for d in coll.find({}).sort("_id")] == ["committed"]
    finally:
        client.drop_database(db_name)
        client.close()


# ---------------------------------------------------------------- make demo


@pytest.mark.integration
def test_make_demo_script_runs_and_never_shows_the_password(
    postgres_dsn: str, kafka_bootstrap: str, mongodb_uri: str
) -> None:
    """examples/demo.py, what `make demo` runs after starting the services."""
    import os
    import subprocess
    import sys
    import urllib.parse
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
    env = {
        **os.environ,
        "DICTAMESH_TEST_POSTGRES_DSN": postgres_dsn,
        "DICTAMESH_TEST_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "DICTAMESH_TEST_MONGODB_URI": mongodb_uri,
        "DEMO_ORDERS": "30",
    }
    out = subprocess.run(
        [sys.executable, str(demo)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for shown in (
        "code=CONSTRAINT_VIOLATION",
        "AuthenticationError code=AUTH_FAILED",
        "NotConnectedError",
        "6 of 6 in-flight reports completed",
        "UNAVAILABLE (transient)",
        "state after disconnect(): disconnected",
        "Done.",
    ):
        assert shown in out.stdout, shown
    password = urllib.parse.urlsplit(postgres_dsn).password
    assert password and password not in out.stdout + out.stderr
