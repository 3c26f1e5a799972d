"""OpenTelemetry spans (observability_otel) against the real services, with the SDK's
in-memory exporter: semantic-convention attributes, no parameter or secret in any
attribute, errors with our code, W3C traceparent in HTTP and Kafka headers."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dictamesh_connectors import observability, observability_otel
from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.http.config import Credentials
from dictamesh_connectors.retry import RetryPolicy
from tests.integration.http.servers import LocalServer, ScriptedApp

pytestmark = pytest.mark.integration

MARKER = "s3cr3t-marker-7f1c"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    listener = observability_otel.instrument(provider)
    try:
        yield exporter, provider.get_tracer("test")
    finally:
        observability_otel.uninstrument()
    assert listener not in observability.global_listeners()
    assert observability.propagator is None and observability.responded is None


def _no_marker(finished):
    for span in finished:
        for key, value in span.attributes.items():
            assert MARKER not in str(value), (span.name, key)
        for event in span.events:
            assert MARKER not in str(dict(event.attributes or {}))
        assert MARKER not in str(span.status.description or "")


def _parent_of(traceparent) -> str:
    """``version-trace_id-span_id`` of a traceparent header (flags left out)."""
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode()
    return traceparent.rsplit("-", 1)[0]


def _traceparent(span) -> str:
    ctx = span.context
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}"


def test_postgresql_spans_follow_the_database_conventions(spans, postgres_dsn):
    from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector

    exporter, tracer = spans
    config = PostgreSQLConfig.from_url(postgres_dsn, retry=RetryPolicy.no_retry())
    with PostgreSQLConnector(config) as db, tracer.start_as_current_span("job") as job:
        assert db.query("SELECT %s::text AS v", [MARKER]).scalar() == MARKER
        with pytest.raises(ConnectorError) as info:
            db.execute("SELECT * FROM no_such_table_obs WHERE x = %s", [MARKER])
    finished = [s for s in exporter.get_finished_spans() if s.name != "job"]
    ok, failed = finished[-2], finished[-1]
    assert ok.kind is SpanKind.CLIENT
    assert ok.attributes["db.system.name"] == ok.attributes["db.system"] == "postgresql"
    assert ok.attributes["db.operation.name"] == "query"
    assert ok.attributes["db.namespace"] == config.database
    assert (ok.attributes["server.address"], ok.attributes["server.port"]) == (
        config.host,
        config.port,
    )
    assert ok.name == f"query {config.database}"
    assert ok.parent is not None and ok.parent.span_id == job.get_span_context().span_id
    assert ok.status.status_code is StatusCode.UNSET
    code = info.value.code.value
    assert failed.status.status_code is StatusCode.ERROR and failed.status.description == code
    assert failed.attributes["error.type"] == failed.attributes["dictamesh.error.code"] == code
    assert failed.attributes["dictamesh.error.transient"] is False
    _no_marker(exporter.get_finished_spans())
    pw = config.password.get_secret_value() if config.password else None
    for span in exporter.get_finished_spans():
        assert pw is None or all(pw not in str(v) for v in span.attributes.values())


def test_http_spans_and_traceparent_in_the_request_headers(spans):
    exporter, tracer = spans
    app = ScriptedApp(ScriptedApp.status(200, b"ok"))
    app.route("/flaky", ScriptedApp.sequence(ScriptedApp.status(503), ScriptedApp.status(200)))
    with LocalServer(app) as server:
        config = HTTPConfig(
            base_url=server.url,
            credentials=Credentials(token=MARKER),
            retry=RetryPolicy(max_attempts=2, initial_backoff=0.0, max_backoff=0.0),
        )
        with HTTPConnector(config) as api, tracer.start_as_current_span("job") as job:
            api.get("/items", params={"q": MARKER})
            api.get("/flaky")
    http_spans = [s for s in exporter.get_finished_spans() if s.name != "job"]
    first = http_spans[0]
    assert first.name == "GET" and first.kind is SpanKind.CLIENT
    assert first.attributes["http.request.method"] == "GET"
    assert first.attributes["url.full"] == server.url + "/items"  # no query
    assert first.attributes["server.address"] == "127.0.0.1"
    assert first.attributes["server.port"] == int(server.url.rsplit(":", 1)[1])
    assert first.attributes["http.response.status_code"] == 200
    assert first.parent.span_id == job.get_span_context().span_id
    # The server saw the request's own span as its parent.
    assert _parent_of(app.requests[0].header("traceparent")) == _traceparent(first)
    # A retried request: two attempts, two spans, two distinct traceparents.
    attempts = [s for s in http_spans if s.attributes.get("url.full", "").endswith("/flaky")]
    assert len(attempts) == 2
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attempts[0].attributes["error.type"] == "UNAVAILABLE"
    assert attempts[0].attributes["http.response.status_code"] == 503
    assert attempts[1].attributes["http.response.status_code"] == 200
    assert attempts[1].status.status_code is StatusCode.UNSET
    sent = [_parent_of(r.header("traceparent")) for r in app.hits("/flaky")]
    assert sent == [_traceparent(s) for s in attempts]
    finished_job = next(s for s in exporter.get_finished_spans() if s.name == "job")
    assert [e.name for e in finished_job.events] == ["dictamesh.retry"]
    assert finished_job.events[0].attributes["error.type"] == "UNAVAILABLE"
    _no_marker(exporter.get_finished_spans())


def test_no_header_is_added_once_uninstrumented():
    app = ScriptedApp(ScriptedApp.status(200, b"ok"))
    with LocalServer(app) as server, HTTPConnector(HTTPConfig(base_url=server.url)) as api:
        api.get("/x")
    assert observability.propagator is None
    assert app.requests[0].header("traceparent") is None


def test_kafka_produce_spans_and_traceparent_in_the_message_headers(spans, kafka_bootstrap):
    from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector

    exporter, tracer = spans
    topic = f"otel-{uuid.uuid4().hex[:8]}"
    config = KafkaConfig(bootstrap_servers=kafka_bootstrap, allow_auto_create_topics=True)
    with KafkaConnector(config) as kafka:
        with tracer.start_as_current_span("job"):
            kafka.produce_sync(topic, MARKER.encode(), headers={"kind": "test"})
        with kafka.consumer(f"g-{uuid.uuid4().hex[:6]}", [topic]) as consumer:
            message = None
            for _ in range(60):
                message = consumer.poll(1.0)
                if message is not None:
                    break
    assert message is not None
    headers = dict(message.headers)
    (send,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert send.name == f"send {topic}"  # "{operation} {destination}", as the conventions say
    assert send.attributes["messaging.system"] == "kafka"
    assert send.attributes["messaging.operation.name"] == "send"
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.destination.name"] == topic
    assert send.attributes["dictamesh.operation"] == "produce"
    assert send.attributes["server.port"] == int(kafka_bootstrap.rsplit(":", 1)[1])
    assert send.attributes["server.address"] == kafka_bootstrap.split(":")[0]
    assert headers["kind"] == b"test"
    assert _parent_of(headers["traceparent"]) == _traceparent(send)
    _no_marker(exporter.get_finished_spans())


def test_mongodb_spans_follow_the_database_conventions(spans, mongodb_uri):
    from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector

    exporter, tracer = spans
    collection = f"otel_{uuid.uuid4().hex[:8]}"
    database = f"otel_db_{uuid.uuid4().hex[:6]}"
    config = MongoDBConfig.from_url(mongodb_uri, database=database, retry=RetryPolicy.no_retry())
    with MongoDBConnector(config) as db, tracer.start_as_current_span("job") as job:
        db.insert_one(collection, {"_id": 1, "secret": MARKER})
        assert db.find_one(collection, {"secret": MARKER})["_id"] == 1
        with pytest.raises(ConnectorError) as info:
            db.insert_one(collection, {"_id": 1, "secret": MARKER})  # a duplicate key
        db.drop_collection(collection)
    finished = [s for s in exporter.get_finished_spans() if s.name != "job"]
    by_operation = {s.attributes["db.operation.name"]: s for s in finished}
    assert {"insert_one", "find_one", "drop_collection"} <= set(by_operation)
    found = by_operation["find_one"]
    assert found.name == f"find_one {database}" and found.kind is SpanKind.CLIENT
    assert found.attributes["db.system.name"] == found.attributes["db.system"] == "mongodb"
    assert found.attributes["db.namespace"] == database
    host, port = config.hosts[0].rsplit(":", 1)
    assert found.attributes["server.address"] == host
    assert found.attributes["server.port"] == int(port)
    assert found.parent is not None and found.parent.span_id == job.get_span_context().span_id
    assert found.status.status_code is StatusCode.UNSET
    inserts = [s for s in finished if s.attributes["db.operation.name"] == "insert_one"]
    assert len(inserts) == 2
    failed = inserts[-1]
    code = info.value.code.value
    assert failed.status.status_code is StatusCode.ERROR and failed.status.description == code
    assert failed.attributes["error.type"] == failed.attributes["dictamesh.error.code"] == code
    assert failed.attributes["dictamesh.error.transient"] is False
    _no_marker(exporter.get_finished_spans())


def test_file_spans_carry_the_operation_and_our_error_code(spans, tmp_path):
    from dictamesh_connectors.file import FileConfig, FileConnector

    exporter, tracer = spans
    secret_name = f"{MARKER}.txt"  # a path is data: it never goes into an attribute
    with (
        FileConnector(FileConfig(root=str(tmp_path))) as files,
        tracer.start_as_current_span("job") as job,
    ):
        files.write_text(secret_name, MARKER)
        assert files.read_text(secret_name) == MARKER
        with pytest.raises(ConnectorError) as info:
            files.read_text(f"missing-{MARKER}.txt")
    finished = [s for s in exporter.get_finished_spans() if s.name != "job"]
    assert [s.name for s in finished] == ["file write", "file read", "file read"]
    for span in finished:
        assert span.kind is SpanKind.CLIENT
        assert span.attributes["dictamesh.connector"] == "file"
        assert span.parent is not None and span.parent.span_id == job.get_span_context().span_id
    assert [s.attributes["dictamesh.operation"] for s in finished] == ["write", "read", "read"]
    assert finished[1].status.status_code is StatusCode.UNSET
    failed = finished[2]
    assert info.value.code.value == "NOT_FOUND"
    assert (
        failed.status.status_code is StatusCode.ERROR and failed.status.description == "NOT_FOUND"
    )
    assert failed.attributes["error.type"] == "NOT_FOUND"
    _no_marker(exporter.get_finished_spans())
