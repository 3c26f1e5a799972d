"""OpenTelemetry spans for every connector's operations (extra ``otel``).

``instrument()`` subscribes one listener to every connector of the process
and turns each operation into a CLIENT (PRODUCER for Kafka sends) span that
follows OpenTelemetry's semantic conventions:

==============  ===========================================================
database        ``db.system.name`` (and the older ``db.system``),
                ``db.operation.name`` (PostgreSQL: the statement's verb;
                MongoDB: the command pymongo sends), ``db.collection.name``
                (MongoDB), ``db.namespace``, ``server.address``,
                ``server.port``; ``db.response.status_code`` on a failure
HTTP            ``http.request.method`` (``_OTHER`` and
                ``http.request.method_original`` for a method the
                conventions do not know), ``url.full`` (without its query),
                ``url.scheme``, ``server.address``, ``server.port``,
                ``http.response.status_code`` (when a response came)
messaging       ``messaging.system``, ``messaging.operation.name``,
                ``messaging.operation.type``, ``messaging.destination.name``
                (the topic: ``produce``, ``produce_sync``, ``produce_many``),
                ``server.address``
consuming       ``receive TOPIC`` (CLIENT) per ``poll()``/``consume()`` that
                returned records (or failed), ``process TOPIC`` (CONSUMER)
                per record ``run()`` handles: ``messaging.operation.type``,
                ``messaging.destination.name``,
                ``messaging.consumer.group.name``,
                ``messaging.batch.message_count`` (receive); ``commit`` is
                a ``settle``
GraphQL         ``graphql.operation.type``, ``graphql.operation.name``,
                ``server.address``, ``server.port``, ``url.scheme`` (the
                request itself is the HTTP connector's span)
every span      ``dictamesh.connector``, ``dictamesh.operation``
failed          status ERROR with our code as its description,
                ``error.type`` = the code (``"TIMEOUT"``...), and
                ``dictamesh.error.transient``/``retry_hint``/``maybe_applied``
==============  ===========================================================

No attribute carries a statement, a parameter, a query string, a message
text or a credential: only the names above, taken from the connector's
config (hosts, ports, database names), the operation's name and what the
connector hands listeners as its target (``observability.Operation``: a
MongoDB collection or command name, a SQL keyword of a closed set).

Context propagation: while instrumented, the HTTP connector adds the W3C
``traceparent`` (and ``tracestate``) of the request's own span to every
request it sends, and the Kafka connector to every message it produces
(``produce``/``produce_sync``), so the server's or consumer's spans join the
caller's trace. On the consuming side ``run()`` hands each record's headers
to the same hook: the record's ``process`` span is a child of (and linked
to) the producer's span, and current while the handler runs. The hook is
one call, ``observability.propagator``, which is ``None`` (one attribute
check on the send path) unless this module set it.

Each retry is an attempt of its own (its own span); the retry itself is an
event (``dictamesh.retry``) on the span current in the caller.

Example::

    from opentelemetry.sdk.trace import TracerProvider
    from dictamesh_connectors import observability_otel

    observability_otel.instrument(TracerProvider())   # or the global provider
    ...
    observability_otel.uninstrument()

Spans are built when an operation ends (from its measured duration), except
that a request that carries a ``traceparent`` starts its span when it is
sent, so the header names that very span.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dictamesh_connectors import _fork, observability
from dictamesh_connectors._compat import require
from dictamesh_connectors._version import __version__
from dictamesh_connectors.observability import Listener

if TYPE_CHECKING:
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, TracerProvider

    from dictamesh_connectors.errors import ConnectorError
else:
    trace = require("opentelemetry.trace", extra="otel", connector="otel")
    context = require("opentelemetry.context", extra="otel", connector="otel")
    propagate = require("opentelemetry.propagate", extra="otel", connector="otel")
    Span, SpanKind, StatusCode = trace.Span, trace.SpanKind, trace.StatusCode

__all__ = ["OpenTelemetryListener", "instrument", "instrumented", "uninstrument"]

# The methods the conventions know; any other is "_OTHER" (its own name in
# http.request.method_original) and the span is named "HTTP".
_HTTP_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
_GRAPHQL_TYPES = frozenset({"query", "mutation", "subscription"})
_DB = {"postgresql": "postgresql", "mongodb": "mongodb"}
_HTTP = frozenset({"http", "graphql", "soap"})
# Where each database connector's errors keep the server's code (db.response.status_code).
_STATUS_DETAIL = {"mongodb": "code", "postgresql": "sqlstate"}
_KAFKA_SEND = frozenset({"produce", "produce_many", "send", "operation"})
_KAFKA_RECEIVE = frozenset({"poll", "consume"})
_PROCESS = "process"

# PostgreSQL operations whose statement the connector writes itself.
_POSTGRESQL_OPERATIONS = {"ping": "SELECT", "copy_in": "COPY", "copy_out": "COPY"}

# The command pymongo sends for each MongoDB verb (the tests check each one
# against a pymongo CommandListener). bulk_write sends one insert, update or
# delete command per run of requests of one kind: a batch, named with
# MongoDB's own term for one, as the conventions allow.
_MONGODB_COMMANDS = {
    "query": "find",
    "stream": "find",
    "find_one": "find",
    "count": "aggregate",  # count_documents: a $match/$group pipeline
    "distinct": "distinct",
    "aggregate": "aggregate",
    "insert_one": "insert",
    "insert_many": "insert",
    "update_one": "update",
    "update_many": "update",
    "replace_one": "update",
    "delete_one": "delete",
    "delete_many": "delete",
    "bulk_write": "bulkWrite",
    "find_one_and_update": "findAndModify",
    "find_one_and_replace": "findAndModify",
    "find_one_and_delete": "findAndModify",
    "create_index": "createIndexes",
    "drop_index": "dropIndexes",
    "list_indexes": "listIndexes",
    "drop_collection": "drop",
    "ping": "ping",
}


def _host_port(hostport: str) -> tuple[str, int | None]:
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or host.endswith(":"):
        return hostport.strip("[]"), None
    return host.strip("[]"), int(port)


def _static_attributes(connector: Any) -> dict[str, Any]:
    """What a connector's spans always carry, from its config (no credentials)."""
    name = connector.name
    config = connector.config
    attrs: dict[str, Any] = {"dictamesh.connector": name}
    if name in _DB:
        attrs["db.system.name"] = attrs["db.system"] = _DB[name]
        database = getattr(config, "database", None)
        if database:
            attrs["db.namespace"] = database
        if name == "postgresql":
            attrs["server.address"], attrs["server.port"] = config.host, config.port
        else:
            hosts = getattr(config, "hosts", ())
            if hosts:
                host, port = _host_port(hosts[0])
                attrs["server.address"] = host
                if port is not None:
                    attrs["server.port"] = port
    elif name in _HTTP:
        base = urllib.parse.urlsplit(
            getattr(connector, "base_url", "") or getattr(config, "base_url", "") or ""
        )
        if base.hostname:
            attrs["server.address"] = base.hostname
            attrs["server.port"] = base.port or (443 if base.scheme == "https" else 80)
            attrs["url.scheme"] = base.scheme
    elif name == "kafka":
        attrs["messaging.system"] = "kafka"
        first = str(getattr(config, "bootstrap_servers", "")).split(",")[0]
        if first:
            host, port = _host_port(first)
            attrs["server.address"] = host
            if port is not None:
                attrs["server.port"] = port
    return attrs


class OpenTelemetryListener(Listener):
    """Turns connector events into spans on ``tracer_provider`` (a ``Listener``).

    Thread safety: one instance serves every connector and thread; what it
    keeps per thread (a request's span started by the propagation hook) is
    thread-local.

    Args:
        tracer_provider: Where spans go; ``None``: OpenTelemetry's global one.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer: Tracer = trace.get_tracer(
            "dictamesh_connectors", __version__, tracer_provider=tracer_provider
        )
        self._static: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
        self._static_lock = _fork.create_lock()
        self._sending = threading.local()  # .spans: {id(connector): Span} started by inject()

    # ------------------------------------------------------------ attributes

    def _attributes_of(self, connector: Any) -> dict[str, Any]:
        attrs = self._static.get(connector)
        if attrs is None:
            attrs = _static_attributes(connector)
            with self._static_lock:  # the cache (a lost race computes it twice)
                self._static[connector] = attrs
        return attrs

    def _describe(self, connector: Any, operation: str) -> tuple[str, SpanKind, dict[str, Any]]:
        """The span's name, kind and attributes for ``operation`` of ``connector``."""
        attrs = dict(self._attributes_of(connector))
        name = connector.name
        verb, _, rest = operation.partition(" ")
        request = name in _HTTP and (
            verb in _HTTP_METHODS or rest.startswith(("http://", "https://"))
        )
        if request:  # "METHOD url": one HTTP request
            known = verb in _HTTP_METHODS
            attrs["http.request.method"] = verb if known else "_OTHER"
            if not known:
                attrs["http.request.method_original"] = verb
            attrs["dictamesh.operation"] = verb
            if rest:
                parts = urllib.parse.urlsplit(rest)
                # No query, no fragment, never userinfo: nothing a caller put in them.
                host = parts.hostname or ""
                netloc = host if parts.port is None else f"{host}:{parts.port}"
                attrs["url.full"] = urllib.parse.urlunsplit(
                    (parts.scheme, netloc, parts.path, "", "")
                )
            return (verb if known else "HTTP"), SpanKind.CLIENT, attrs
        if name == "graphql" and verb in _GRAPHQL_TYPES:
            # "query Name": the operation's type and name (never its document).
            attrs["dictamesh.operation"] = verb
            attrs["graphql.operation.type"] = verb
            if rest:
                attrs["graphql.operation.name"] = rest
            return str(operation), SpanKind.CLIENT, attrs
        if name == "kafka" and verb in _KAFKA_SEND and not rest:
            rest = getattr(operation, "target", "")  # produce_many's topic
        if name == "kafka" and verb in _KAFKA_SEND and rest:
            # "produce TOPIC" (the send path's hook names the topic): the
            # destination, and the span name "send TOPIC" of the conventions.
            attrs["dictamesh.operation"] = verb
            attrs["messaging.operation.name"] = "send"
            attrs["messaging.operation.type"] = "send"
            attrs["messaging.destination.name"] = rest
            return f"send {rest}", SpanKind.PRODUCER, attrs
        attrs["dictamesh.operation"] = str(operation)
        if name == "mongodb":
            return self._describe_mongodb(operation, attrs)
        if name == "postgresql":
            # The statement's verb, which the connector worked out (only the
            # keyword: see postgresql.statements.operation_name).
            sql_verb: str | None = getattr(operation, "target", None)
            sql_verb = sql_verb or _POSTGRESQL_OPERATIONS.get(operation)
            if sql_verb and operation == "executemany":
                sql_verb = f"BATCH {sql_verb}"  # one statement, many parameter sets
            if sql_verb:
                attrs["db.operation.name"] = sql_verb
            namespace = attrs.get("db.namespace")
            what = sql_verb or str(operation)
            return (f"{what} {namespace}" if namespace else what), SpanKind.CLIENT, attrs
        if name == "kafka" and (operation in _KAFKA_RECEIVE or operation == _PROCESS):
            return self._describe_consumer(operation, attrs)
        if name == "kafka":
            group = getattr(operation, "group", None)
            if group is not None:
                attrs["messaging.consumer.group.name"] = group
            if operation == "commit":
                attrs["messaging.operation.type"] = "settle"
            sending = operation in _KAFKA_SEND
            attrs["messaging.operation.name"] = "send" if sending else operation
            if sending:
                attrs["messaging.operation.type"] = "send"
            return (
                "send" if sending else operation,
                SpanKind.PRODUCER if sending else SpanKind.CLIENT,
                attrs,
            )
        return f"{name} {operation}", SpanKind.CLIENT, attrs

    @staticmethod
    def _describe_consumer(
        operation: str, attrs: dict[str, Any]
    ) -> tuple[str, SpanKind, dict[str, Any]]:
        """A Kafka consumer's span: ``receive`` (poll/consume) or ``process`` (one record).

        The messaging conventions for consumers: ``"{operation} {topic}"``
        (the topic left out when a batch spans several), a CLIENT span for a
        receive, a CONSUMER span for processing one record.
        """
        topic = getattr(operation, "target", "")
        group = getattr(operation, "group", None)
        kind = "process" if operation == _PROCESS else "receive"
        attrs["messaging.operation.name"] = kind
        attrs["messaging.operation.type"] = kind
        if topic:
            attrs["messaging.destination.name"] = topic
        if group is not None:
            attrs["messaging.consumer.group.name"] = group
        count = getattr(operation, "records", None)
        if kind == "receive" and count is not None:
            attrs["messaging.batch.message_count"] = count
        span_kind = SpanKind.CONSUMER if kind == "process" else SpanKind.CLIENT
        return (f"{kind} {topic}" if topic else kind), span_kind, attrs

    @staticmethod
    def _describe_mongodb(
        operation: str, attrs: dict[str, Any]
    ) -> tuple[str, SpanKind, dict[str, Any]]:
        """A MongoDB span: the command pymongo sends, on the verb's collection.

        The span is named ``"{db.operation.name} {db.collection.name}"`` (the
        database's name where there is no collection), as the conventions
        say. ``execute`` is named by its command; a transaction block is a
        span of its own, without ``db.operation.name`` (it is many commands).
        """
        target = getattr(operation, "target", None)
        if operation == "execute":
            command, collection = target, None
        else:
            command, collection = _MONGODB_COMMANDS.get(operation), target
        if operation == "ping":
            attrs["db.namespace"] = "admin"  # pymongo pings the admin database
        if collection:
            attrs["db.collection.name"] = collection
        if command:
            attrs["db.operation.name"] = command
        where = collection or attrs.get("db.namespace")
        what = command or str(operation)
        return (f"{what} {where}" if where else what), SpanKind.CLIENT, attrs

    # ---------------------------------------------------------------- events

    def on_operation(
        self, connector: Any, operation: str, duration: float, error: ConnectorError | None
    ) -> None:
        """End the operation's span (started by ``inject`` or back-dated by ``duration``).

        A Kafka ``poll``/``consume`` that returned no record (and did not
        fail) makes no span: an idle consumer would otherwise flood traces.
        """
        span: Span | None = None
        if operation == _PROCESS and connector.name == "kafka":
            span = self._end_processing(connector)
        elif error is None and getattr(operation, "records", None) == 0:
            return  # an empty receive
        else:
            spans = getattr(self._sending, "spans", None)
            span = spans.pop(id(connector), None) if spans else None
        if span is None:
            name, kind, attrs = self._describe(connector, operation)
            start = time.time_ns() - int(duration * 1e9)
            span = self._tracer.start_span(name, kind=kind, attributes=attrs, start_time=start)
        if error is not None:
            code = error.code.value
            span.set_attribute("error.type", code)
            span.set_attribute("dictamesh.error.code", code)
            span.set_attribute("dictamesh.error.transient", bool(error.transient))
            span.set_attribute("dictamesh.error.retry_hint", error.retry_hint.value)
            span.set_attribute("dictamesh.error.maybe_applied", bool(error.maybe_applied))
            status = _STATUS_DETAIL.get(connector.name)
            if status is not None and error.details.get(status) is not None:
                # The server's own code (a MongoDB error code, a SQLSTATE).
                span.set_attribute("db.response.status_code", str(error.details[status]))
            span.set_status(StatusCode.ERROR, code)
        span.end()

    def on_retry(
        self, connector: Any, operation: str, attempt: int, wait: float, error: ConnectorError
    ) -> None:
        """Record the retry on the caller's current span (each attempt has its own)."""
        current = trace.get_current_span()
        if current.is_recording():
            current.add_event(
                "dictamesh.retry",
                {
                    "dictamesh.connector": connector.name,
                    "dictamesh.retry.attempt": attempt,
                    "dictamesh.retry.wait": wait,
                    "error.type": error.code.value,
                },
            )

    # ----------------------------------------------------------- propagation

    def responded(self, connector: Any, status: int) -> None:
        """Set ``http.response.status_code`` on the span of the request under way."""
        spans = getattr(self._sending, "spans", None)
        span = spans.get(id(connector)) if spans else None
        if span is not None:
            span.set_attribute("http.response.status_code", status)

    def _start_processing(self, connector: Any, operation: str, headers: Any) -> None:
        """Start (and make current) the ``process`` span of one consumed record.

        Its parent is the trace context the record's headers carry (the
        producer's ``traceparent``), which is also its link, as the
        conventions say; without one it is a new trace's root.
        """
        carrier: dict[str, str] = {}
        for key, value in headers or ():
            if isinstance(key, str) and isinstance(value, bytes):
                carrier[key] = value.decode("latin-1")
        parent = propagate.extract(carrier)
        remote = trace.get_current_span(parent).get_span_context()
        links = [trace.Link(remote)] if remote.is_valid else None
        name, kind, attrs = self._describe(connector, operation)
        span = self._tracer.start_span(
            name,
            context=parent if remote.is_valid else None,
            kind=kind,
            attributes=attrs,
            links=links,
        )
        token = context.attach(trace.set_span_in_context(span))
        stacks = getattr(self._sending, "processing", None)
        if stacks is None:
            stacks = self._sending.processing = {}
        stacks.setdefault(id(connector), []).append((span, token))

    def _end_processing(self, connector: Any) -> Span | None:
        """The ``process`` span under way on this thread for ``connector`` (made not current)."""
        stacks: dict[int, list[tuple[Span, Any]]] | None = getattr(
            self._sending, "processing", None
        )
        stack = stacks.get(id(connector)) if stacks else None
        if stacks is None or not stack:
            return None
        span, token = stack.pop()
        if not stack:
            del stacks[id(connector)]
        context.detach(token)
        return span

    def inject(self, connector: Any, operation: str, headers: Any) -> Any:
        """Headers with the W3C trace context of this send's span added (a new object).

        Starts the span of the operation under way in this thread (ended by
        ``on_operation``); a second send within the same operation (an HTTP
        redirect) reuses it. ``headers`` is a ``dict`` (HTTP, returned as a
        new dict) or ``None``/a list of ``(str, bytes)`` pairs (Kafka,
        returned as a new list).

        For a Kafka consumer's ``process`` operation (one record handed to
        ``run()``'s handler) it goes the other way: it takes the trace
        context *out of* the record's headers and starts the record's
        ``process`` span under it, current while the handler runs (ended by
        ``on_operation``); ``headers`` are returned as they are.
        """
        if operation == _PROCESS and connector.name == "kafka":
            self._start_processing(connector, operation, headers)
            return headers
        spans = getattr(self._sending, "spans", None)
        if spans is None:
            spans = self._sending.spans = {}
        span = spans.get(id(connector))
        if span is None:
            name, kind, attrs = self._describe(connector, operation)
            span = spans[id(connector)] = self._tracer.start_span(name, kind=kind, attributes=attrs)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        if isinstance(headers, Mapping):
            return {**headers, **carrier}
        return [*(headers or ()), *((key, value.encode()) for key, value in carrier.items())]


_installed: OpenTelemetryListener | None = None
_install_lock = _fork.create_lock()


def instrument(tracer_provider: TracerProvider | None = None) -> OpenTelemetryListener:
    """Trace every connector of the process (and propagate context); idempotent.

    Calling it again replaces the previous listener (e.g. with another
    provider).

    Returns:
        The listener now subscribed.
    """
    global _installed
    listener = OpenTelemetryListener(tracer_provider)
    with _install_lock:  # _installed and the hook, set together
        previous, _installed = _installed, listener
        if previous is not None:
            observability.remove_listener(previous)
        observability.add_listener(listener)
        observability.propagator = listener.inject
        observability.responded = listener.responded
    return listener


def uninstrument() -> None:
    """Stop tracing and propagating (no error if not instrumented)."""
    global _installed
    with _install_lock:  # _installed and the hook
        previous, _installed = _installed, None
        observability.propagator = None
        observability.responded = None
        if previous is not None:
            observability.remove_listener(previous)


def instrumented() -> bool:
    """Whether ``instrument()`` is in force."""
    return _installed is not None
