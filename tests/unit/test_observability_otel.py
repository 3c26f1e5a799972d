"""observability_otel and observability_prometheus on the fake connector (no server)."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("prometheus_client")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dictamesh_connectors import observability, observability_otel
from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.observability_prometheus import ConnectorCollector
from dictamesh_connectors.retry import RetryPolicy

from .fakes import FakeConfig, FakeConnector, FakeDriverError


def test_instrument_is_idempotent_and_uninstrument_restores_everything():
    first = observability_otel.instrument(TracerProvider())
    second = observability_otel.instrument(TracerProvider())
    try:
        assert observability.global_listeners().count(second) == 1
        assert first not in observability.global_listeners()
        assert observability.propagator == second.inject
        assert observability.responded == second.responded
        assert observability_otel.instrumented()
    finally:
        observability_otel.uninstrument()
    assert observability.propagator is None and not observability_otel.instrumented()
    assert observability.responded is None
    assert second not in observability.global_listeners()
    observability_otel.uninstrument()  # again: no error


def test_a_failed_operation_is_an_error_span_named_by_our_code():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    c = FakeConnector(FakeConfig(retry=RetryPolicy.no_retry()))
    c.add_listener(observability_otel.OpenTelemetryListener(provider))
    c.connect()
    c.work()
    with pytest.raises(ConnectorError) as info:
        c.work(lambda h: (_ for _ in ()).throw(FakeDriverError("boom")))
    c.disconnect()
    ok, failed = exporter.get_finished_spans()
    assert ok.name == "fake work" and ok.attributes["dictamesh.connector"] == "fake"
    assert ok.end_time >= ok.start_time
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == info.value.code.value == failed.attributes["error.type"]


def test_kafka_style_headers_get_a_traceparent_pair():
    listener = observability_otel.OpenTelemetryListener(TracerProvider())
    c = FakeConnector(FakeConfig())
    pairs = listener.inject(c, "produce", [("kind", b"x")])
    assert pairs[0] == ("kind", b"x") and pairs[1][0] == "traceparent"
    assert isinstance(pairs[1][1], bytes)
    assert listener.inject(c, "produce", None)[0][1] == pairs[1][1]  # same operation, same span
    headers = listener.inject(c, "GET http://h/x", {"a": "b"})
    assert headers["a"] == "b" and "traceparent" in headers


def test_prometheus_collector_counts_watched_connectors_only_and_rejects_bad_buckets():
    with pytest.raises(ValueError):
        ConnectorCollector(buckets=(1.0, 0.5))
    collector = ConnectorCollector()
    watched, other = FakeConnector(FakeConfig()), FakeConnector(FakeConfig())
    collector.watch(watched, "mine")
    for c in (watched, other):
        c.connect()
        c.work()
    # An event from a connector it does not watch (a global subscription) is ignored.
    collector.on_operation(other, "work", 0.1, None)
    families = {f.name: f for f in collector.collect()}
    ops = families["dictamesh_connector_operations"].samples
    assert [(s.labels, s.value) for s in ops if s.name.endswith("_total")] == [
        ({"connector": "mine", "operation": "work"}, 1.0)
    ]
    assert [s.value for s in families["dictamesh_connector_up"].samples] == [1.0]
    collector.unwatch(watched)
    watched.work()
    families = {f.name: f for f in collector.collect()}
    assert families["dictamesh_connector_up"].samples == []
    assert families["dictamesh_connector_operations"].samples[0].value == 1.0
    for c in (watched, other):
        c.disconnect()


def test_without_the_extras_the_error_names_them():
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"opentelemetry", "prometheus_client"}:
                    raise ImportError(name)
        sys.meta_path.insert(0, Block())
        import dictamesh_connectors
        from dictamesh_connectors import observability  # the core needs neither
        pairs = (("observability_otel", "otel"), ("observability_prometheus", "prometheus"))
        for module, extra in pairs:
            try:
                __import__("dictamesh_connectors." + module)
            except dictamesh_connectors.MissingDependencyError as err:
                assert f"dictamesh-connectors[{extra}]" in str(err), err
            else:
                raise AssertionError(module)
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


class _KafkaNamed(FakeConnector):
    name = "kafka"


def test_consumer_spans_receive_only_with_records_and_process_without_a_traceparent():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    listener = observability_otel.OpenTelemetryListener(provider)
    c = _KafkaNamed(FakeConfig())
    c.add_listener(listener)
    op = observability.Operation
    c._record_operation(op("poll", "", group="g", records=0), c._operation_clock())
    assert exporter.get_finished_spans() == ()  # an empty receive: no span
    c._record_operation(op("consume", "t", group="g", records=2), c._operation_clock())
    failure = ConnectorError("gone", code=ErrorCode.NOT_FOUND)
    c._record_operation(op("poll", "", group="g", records=0), c._operation_clock(), failure)
    started = c._operation_clock()
    process = op("process", "t", group="g")
    headers = [("traceparent", b"not a trace context"), ("k", None)]
    assert listener.inject(c, process, headers) is headers  # nothing added
    during = trace.get_current_span()  # what the handler would see
    c._record_operation(process, started)
    assert trace.get_current_span() is not during  # made not current again
    received, failed, processed = exporter.get_finished_spans()
    assert received.name == "receive t" and received.kind is SpanKind.CLIENT
    assert received.attributes["messaging.batch.message_count"] == 2
    assert received.attributes["messaging.consumer.group.name"] == "g"
    assert failed.name == "receive" and failed.attributes["error.type"] == "NOT_FOUND"
    assert processed.name == "process t" and processed.kind is SpanKind.CONSUMER
    assert processed.parent is None and not processed.links  # no producer context: a root
    assert during.get_span_context() == processed.context
