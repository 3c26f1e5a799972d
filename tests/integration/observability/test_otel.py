"""OpenTelemetry spans (observability_otel) against the real services, with the SDK's
in-memory exporter: semantic-convention attributes, no parameter or secret in any
attribute, errors with our code, W3C traceparent in HTTP and Kafka headers."""

from __future__ import annotations

import threading
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
    """db.operation.name is the statement's verb (never its text or a parameter), only
    when the text is one statement; the span is "{verb} {database}"."""
    from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector

    exporter, tracer = spans
    table = f"otel_{uuid.uuid4().hex[:8]}"
    config = PostgreSQLConfig.from_url(postgres_dsn, retry=RetryPolicy.no_retry())
    with PostgreSQLConnector(config) as db, tracer.start_as_current_span("job") as job:
        assert db.query("SELECT %s::text AS v", [MARKER]).scalar() == MARKER
        db.execute(f"CREATE TABLE {table} (v text)")
        db.executemany(f"insert into {table} VALUES (%s)", [[MARKER], [MARKER]])
        assert db.query(f"/* {MARKER} */ SELECT v FROM {table} WHERE v = '{MARKER}'").rows
        assert len(list(db.stream(f"SELECT v FROM {table}", batch_size=1))) == 2
        db.copy_out(f"SELECT v FROM {table}")
        db.query(f"SELECT 1; SELECT '{MARKER}'")  # two statements: no verb
        with db.transaction() as tx:
            tx.execute(f"UPDATE {table} SET v = %s", [MARKER])
        db.ping()
        db.execute(f"DROP TABLE {table}")
        with pytest.raises(ConnectorError) as info:
            db.execute("SELECT * FROM no_such_table_obs WHERE x = %s", [MARKER])
        with pytest.raises(ConnectorError):
            db.execute(f"{MARKER} FROM nowhere")  # not SQL: no verb comes of it
    finished = [s for s in exporter.get_finished_spans() if s.name != "job"]
    seen = [
        (s.attributes["dictamesh.operation"], s.attributes.get("db.operation.name"), s.name)
        for s in finished
    ]
    database = config.database
    assert seen == [
        ("query", "SELECT", f"SELECT {database}"),
        ("execute", "CREATE", f"CREATE {database}"),
        ("executemany", "BATCH INSERT", f"BATCH INSERT {database}"),
        ("query", "SELECT", f"SELECT {database}"),
        ("stream", "SELECT", f"SELECT {database}"),
        ("copy_out", "COPY", f"COPY {database}"),
        ("query", None, f"query {database}"),
        ("transaction", None, f"transaction {database}"),
        ("ping", "SELECT", f"SELECT {database}"),
        ("execute", "DROP", f"DROP {database}"),
        ("execute", "SELECT", f"SELECT {database}"),
        ("execute", None, f"execute {database}"),
    ]
    ok, failed = finished[0], finished[-2]
    assert ok.kind is SpanKind.CLIENT
    assert ok.attributes["db.system.name"] == ok.attributes["db.system"] == "postgresql"
    assert ok.attributes["db.namespace"] == database
    assert (ok.attributes["server.address"], ok.attributes["server.port"]) == (
        config.host,
        config.port,
    )
    assert ok.parent is not None and ok.parent.span_id == job.get_span_context().span_id
    assert ok.status.status_code is StatusCode.UNSET
    assert "db.query.text" not in ok.attributes
    code = info.value.code.value
    assert failed.status.status_code is StatusCode.ERROR and failed.status.description == code
    assert failed.attributes["error.type"] == failed.attributes["dictamesh.error.code"] == code
    assert failed.attributes["db.response.status_code"] == "42P01"  # the SQLSTATE
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
            api.request("PROPFIND", "/dav", params={"q": MARKER})
    http_spans = [s for s in exporter.get_finished_spans() if s.name != "job"]
    other = http_spans.pop()  # a method the conventions do not know
    assert other.name == "HTTP" and other.kind is SpanKind.CLIENT
    assert other.attributes["http.request.method"] == "_OTHER"
    assert other.attributes["http.request.method_original"] == "PROPFIND"
    assert other.attributes["dictamesh.operation"] == "PROPFIND"
    assert other.attributes["url.full"] == server.url + "/dav"
    assert other.attributes["http.response.status_code"] == 200
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


def test_graphql_spans_name_the_operation_never_the_document(spans):
    pytest.importorskip("graphql")
    from dictamesh_connectors.graphql import GraphQLConfig, GraphQLConnector
    from tests.integration.graphql.server import GraphQLTestServer

    exporter, tracer = spans
    with GraphQLTestServer() as server:
        config = GraphQLConfig.from_url("graphql+" + server.url)
        with GraphQLConnector(config) as gql, tracer.start_as_current_span("job"):
            gql.query(f'query Counter {{ counter }} # "{MARKER}"', operation_name="Counter")
            gql.mutation("mutation { increment(by: 2) }")
    finished = [s for s in exporter.get_finished_spans() if s.name != "job"]
    ops = [s for s in finished if s.attributes["dictamesh.connector"] == "graphql"]
    assert [s.name for s in ops] == ["query Counter", "mutation"]
    query, mutation = ops
    assert query.attributes["graphql.operation.type"] == "query"
    assert query.attributes["graphql.operation.name"] == "Counter"
    assert mutation.attributes["graphql.operation.type"] == "mutation"
    assert "graphql.operation.name" not in mutation.attributes
    for span in ops:
        assert span.kind is SpanKind.CLIENT
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == int(server.url.split(":")[2].split("/")[0])
    # Each request is the HTTP connector's span: POST to the endpoint.
    posts = [s for s in finished if s.attributes["dictamesh.connector"] == "http"]
    assert [s.name for s in posts] == ["POST", "POST"]
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
            batch = kafka.produce_many(topic, [b"one", b"two"], keys=[MARKER.encode()] * 2).result(
                30
            )
            assert not batch.failed
        with kafka.consumer(f"g-{uuid.uuid4().hex[:6]}", [topic]) as consumer:
            message = None
            for _ in range(60):
                message = consumer.poll(1.0)
                if message is not None:
                    break
    assert message is not None
    headers = dict(message.headers)
    send, many = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert many.name == f"send {topic}"  # the batch's topic too (no traceparent: one span)
    assert many.attributes["messaging.destination.name"] == topic
    assert many.attributes["messaging.operation.type"] == "send"
    assert many.attributes["dictamesh.operation"] == "produce_many"
    assert "messaging.kafka.message.key" not in many.attributes  # a key is data
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


@pytest.fixture
def mongodb_commands(monkeypatch):
    """Every command that MongoClients created from now on send: ``take()`` returns the
    ``(command, collection, database)`` of each one since the last call."""
    import pymongo.monitoring as monitoring

    class Commands(monitoring.CommandListener):
        def __init__(self) -> None:
            self.sent: list[tuple[str, object, str]] = []

        def started(self, event) -> None:
            name = event.command_name
            self.sent.append((name, event.command.get(name), event.database_name))

        def succeeded(self, event) -> None:
            pass

        def failed(self, event) -> None:
            pass

        def take(self) -> list[tuple[str, object, str]]:
            sent, self.sent = self.sent, []
            return sent

    old = monitoring._LISTENERS  # restored by monkeypatch: later clients don't get ours
    monkeypatch.setattr(monitoring, "_LISTENERS", type(old)(*(list(group) for group in old)))
    commands = Commands()
    monitoring.register(commands)
    return commands


def test_mongodb_spans_follow_the_database_conventions(spans, mongodb_uri, mongodb_commands):
    """Each verb's span: the command pymongo really sent (seen by a CommandListener) as
    db.operation.name, the collection, the database, the server; "{command} {collection}"."""
    from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector

    exporter, tracer = spans
    coll = f"otel_{uuid.uuid4().hex[:8]}"
    database = f"otel_db_{uuid.uuid4().hex[:6]}"
    config = MongoDBConfig.from_url(mongodb_uri, database=database, retry=RetryPolicy.no_retry())
    secret = {"secret": MARKER}
    calls = [
        ("insert_one", lambda db: db.insert_one(coll, {"_id": 1, "n": 1, **secret})),
        (
            "insert_many",
            lambda db: db.insert_many(coll, [{"_id": 2, "n": 2, **secret}, {"_id": 3}]),
        ),
        ("find_one", lambda db: db.find_one(coll, secret)),
        ("query", lambda db: db.query(coll, secret)),
        ("stream", lambda db: list(db.stream(coll, secret, batch_size=1))),
        ("count", lambda db: db.count(coll, secret)),
        ("distinct", lambda db: db.distinct(coll, "n", secret)),
        ("aggregate", lambda db: db.aggregate(coll, [{"$match": secret}])),
        ("update_one", lambda db: db.update_one(coll, {"_id": 1}, {"$set": secret})),
        ("update_many", lambda db: db.update_many(coll, secret, {"$set": {"m": MARKER}})),
        ("replace_one", lambda db: db.replace_one(coll, {"_id": 3}, {"n": 3, **secret})),
        (
            "find_one_and_update",
            lambda db: db.find_one_and_update(coll, secret, {"$inc": {"n": 1}}),
        ),
        (
            "bulk_write",
            lambda db: db.bulk_write(
                coll, [("insert_one", {"_id": 4, **secret}), ("delete_one", {"_id": 4, **secret})]
            ),
        ),
        ("create_index", lambda db: db.create_index(coll, [("n", 1)], name="n_1")),
        ("list_indexes", lambda db: db.list_indexes(coll)),
        ("drop_index", lambda db: db.drop_index(coll, "n_1")),
        ("delete_one", lambda db: db.delete_one(coll, {"_id": 1, **secret})),
        ("delete_many", lambda db: db.delete_many(coll, secret)),
        ("execute", lambda db: db.execute({"dbStats": 1})),
        ("ping", lambda db: db.ping()),
    ]
    sent: dict[str, list[tuple[str, object, str]]] = {}
    with MongoDBConnector(config) as db, tracer.start_as_current_span("job") as job:
        mongodb_commands.take()
        for verb, call in calls:
            call(db)
            sent[verb] = mongodb_commands.take()
        db.insert_one(coll, {"_id": 9})
        with pytest.raises(ConnectorError) as info:
            db.insert_one(coll, {"_id": 9, **secret})  # a duplicate key
        db.drop_collection(coll)
        sent["drop_collection"] = mongodb_commands.take()[-1:]
    finished = [s for s in exporter.get_finished_spans() if s.name != "job"]
    by_verb: dict[str, list] = {}
    for span in finished:
        by_verb.setdefault(span.attributes["dictamesh.operation"], []).append(span)
    host, port = config.hosts[0].rsplit(":", 1)
    for verb in [*(v for v, _ in calls), "drop_collection"]:
        span = by_verb[verb][0]
        commands = [name for name, _, _ in sent[verb]]
        assert commands, verb
        if verb == "bulk_write":  # one command per run of one kind: a batch
            assert commands == ["insert", "delete"]
            command = "bulkWrite"
        else:
            command = commands[0]
            assert set(commands) <= {command, "getMore"}, (verb, commands)
        assert span.attributes["db.operation.name"] == command, verb
        assert span.kind is SpanKind.CLIENT
        assert span.attributes["db.system.name"] == span.attributes["db.system"] == "mongodb"
        assert span.attributes["server.address"] == host
        assert span.attributes["server.port"] == int(port)
        assert span.parent is not None and span.parent.span_id == job.get_span_context().span_id
        assert span.status.status_code is StatusCode.UNSET, verb
        if verb in ("execute", "ping"):
            namespace = "admin" if verb == "ping" else database
            assert "db.collection.name" not in span.attributes
            assert span.attributes["db.namespace"] == sent[verb][0][2] == namespace
            assert span.name == f"{command} {namespace}"
        else:
            assert sent[verb][0][1:] == (coll, database), verb  # the command's collection
            assert span.attributes["db.collection.name"] == coll, verb
            assert span.attributes["db.namespace"] == database
            assert span.name == f"{command} {coll}", verb
    failed = by_verb["insert_one"][-1]
    code = info.value.code.value
    assert failed.name == f"insert {coll}"
    assert failed.status.status_code is StatusCode.ERROR and failed.status.description == code
    assert failed.attributes["error.type"] == failed.attributes["dictamesh.error.code"] == code
    assert failed.attributes["db.response.status_code"] == "11000"  # MongoDB's DuplicateKey
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


def test_kafka_consumer_receive_and_process_spans_continue_the_producers_trace(
    spans, kafka_bootstrap
):
    """poll()/consume(): a ``receive`` span when records came (none for an empty poll);
    run(): a CONSUMER ``process`` span per record, child of (and linked to) the span that
    produced it, current while the handler runs; errors with our code; no payload or key."""
    from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector

    exporter, tracer = spans
    topic = f"otel-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:6]}"
    config = KafkaConfig(bootstrap_servers=kafka_bootstrap, allow_auto_create_topics=True)
    with KafkaConnector(config) as kafka:
        with tracer.start_as_current_span("job"):
            for value in (MARKER, "poison", "last"):
                kafka.produce_sync(topic, value.encode(), key=MARKER.encode())
        sends = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
        assert len(sends) == 3
        with kafka.consumer(f"{group}-peek", [topic]) as peek:
            got = []
            for _ in range(60):
                got += peek.consume(10, 1.0)
                if len(got) == 3:
                    break
            assert len(got) == 3
        stop = threading.Event()
        inner: dict[bytes, object] = {}

        def handler(message) -> None:
            with tracer.start_as_current_span("handler") as span:
                inner[message.value] = span
            if message.value == b"last":
                stop.set()
            if message.value == b"poison":
                raise ValueError(MARKER)

        with pytest.raises(ConnectorError) as info:
            kafka.consumer(group, [topic]).run(handler, stop_event=stop, handle_sigterm=False)
        assert info.value.code.value == "EXEC_FAILED"
    finished = exporter.get_finished_spans()
    receives = [s for s in finished if s.name == f"receive {topic}"]
    assert receives and sum(s.attributes["messaging.batch.message_count"] for s in receives) >= 5
    for span in receives:
        assert span.kind is SpanKind.CLIENT
        assert span.attributes["messaging.system"] == "kafka"
        assert span.attributes["messaging.operation.type"] == "receive"
        assert span.attributes["messaging.destination.name"] == topic
        assert span.attributes["messaging.consumer.group.name"] in (group, f"{group}-peek")
        assert span.attributes["messaging.batch.message_count"] >= 1
    process = [s for s in finished if s.name == f"process {topic}"]
    assert len(process) == 2  # the run stopped at the poison record (no dead-letter topic)
    for span, send in zip(process, sends, strict=False):
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes["messaging.operation.type"] == "process"
        assert span.attributes["messaging.destination.name"] == topic
        assert span.attributes["messaging.consumer.group.name"] == group
        # The producer's trace goes on: parent and link are the span that sent the record.
        assert span.context.trace_id == send.context.trace_id
        assert span.parent is not None and span.parent.span_id == send.context.span_id
        assert [link.context.span_id for link in span.links] == [send.context.span_id]
    ok, failed = process
    assert inner[MARKER.encode()].parent.span_id == ok.context.span_id  # current in the handler
    assert inner[b"poison"].parent.span_id == failed.context.span_id
    assert ok.status.status_code is not StatusCode.ERROR
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "EXEC_FAILED"
    commits = [s for s in finished if s.attributes.get("dictamesh.operation") == "commit"]
    assert commits and all(s.attributes["messaging.operation.type"] == "settle" for s in commits)
    (run,) = [s for s in finished if s.attributes.get("dictamesh.operation") == "run"]
    assert run.attributes["error.type"] == "EXEC_FAILED"
    for span in finished:
        for key in span.attributes:
            assert "key" not in key and "payload" not in key and "body" not in key, key
    _no_marker(finished)
