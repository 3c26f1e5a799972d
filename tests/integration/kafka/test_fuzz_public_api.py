"""Hostile arguments to every public method of KafkaConnector and KafkaConsumer (real broker).

The property (tests/fuzzing.py): a result or a ConnectorError, never another
exception type (TypeError for a wrong argument type excepted). Run against
the private broker, so that whatever the examples manage to create never
lands on the shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import strategies as st

from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector, KafkaConsumer
from dictamesh_connectors.retry import RetryPolicy
from tests.fuzzing import (
    BASE_CALLS,
    Call,
    check_call,
    check_covers,
    hostile_text,
    nested,
    numbers,
)

from .conftest import unique

pytestmark = pytest.mark.integration

NO_WAIT = RetryPolicy(max_attempts=1)
TOPIC = unique("fuzz")

# Illegal names, or the real topic: both paths get exercised, and no example
# waits for librdkafka to give up on a legal name that does not exist.
topics = st.one_of(hostile_text(30).map(lambda s: s + "/"), st.just(TOPIC))
# Never a legal new topic name: examples must not create topics by the thousand.
new_names = hostile_text(30).map(lambda s: s + "/")
values = st.one_of(numbers(), hostile_text(20), nested(), st.binary(max_size=16))
headers = st.one_of(
    st.none(),
    st.dictionaries(hostile_text(8), st.one_of(hostile_text(8), st.binary(max_size=4))),
    st.lists(st.tuples(hostile_text(8), st.one_of(st.none(), st.binary(max_size=4)))),
    values,
)
produce_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "key": values,
        "headers": headers,
        "partition": numbers(),
        "timestamp": numbers(),
        "timeout": numbers(),
    },
)
timeout_kwargs = st.fixed_dictionaries({}, optional={"timeout": numbers()})


def _reconnect(connector: Any) -> None:
    connector.connect()


def _produce_and_wait(kafka: KafkaConnector, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    future = kafka.produce(*args, **kwargs)
    exc = future.exception(30)
    assert exc is None or type(exc).__module__.startswith("dictamesh_connectors"), exc
    return None


def _transaction(kafka: KafkaConnector, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    with kafka.transaction(**kwargs):
        pass


def _send_offsets(kafka: KafkaConnector, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    consumer = kafka.consumer(unique("fuzz"), [TOPIC])
    try:
        kafka.send_offsets_to_transaction(consumer, *args, **kwargs)
    finally:
        consumer.close()


def _consumer(kafka: KafkaConnector, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    consumer = kafka.consumer(*args, **kwargs)
    consumer.close()


CALLS = [
    Call("produce", st.tuples(topics, values), produce_kwargs, invoke=_produce_and_wait),
    Call("produce_sync", st.tuples(topics, values), produce_kwargs),
    Call(
        "produce_many",
        st.tuples(topics, st.lists(values, max_size=3)),
        st.fixed_dictionaries(
            {},
            optional={
                "keys": st.lists(values, max_size=3),
                "partition": numbers(),
                "timeout": numbers(),
            },
        ),
        use=lambda future: future.result(30),
    ),
    Call("flush", kwargs=timeout_kwargs),
    Call("transaction", kwargs=timeout_kwargs, invoke=_transaction),
    Call(
        "send_offsets_to_transaction",
        st.tuples(st.one_of(st.none(), st.dictionaries(st.tuples(topics, numbers()), numbers()))),
        timeout_kwargs,
        invoke=_send_offsets,
    ),
    Call(
        "consumer",
        st.tuples(hostile_text(20), st.one_of(topics, st.lists(topics, max_size=2), values)),
        st.dictionaries(
            st.sampled_from(
                [
                    "session_timeout_ms",
                    "isolation_level",
                    "fetch.wait.max.ms",
                    "no_such_option",
                    "group.id",
                ]
            ),
            st.one_of(numbers(), hostile_text(10)),
            max_size=2,
        ),
        invoke=_consumer,
    ),
    Call(
        "create_topic",
        st.tuples(new_names),
        st.fixed_dictionaries(
            {},
            optional={
                "partitions": numbers(),
                "replication_factor": numbers(),
                "config": st.dictionaries(hostile_text(8), st.one_of(numbers(), hostile_text(8))),
                "timeout": numbers(),
            },
        ),
    ),
    Call("delete_topic", st.tuples(new_names), timeout_kwargs),
    Call("describe_topic", st.tuples(topics), timeout_kwargs),
    Call("list_topics", kwargs=timeout_kwargs),
    Call("ping", kwargs=timeout_kwargs),
    Call("disconnect", kwargs=timeout_kwargs, setup=_reconnect),
    Call("connect", setup=lambda c: c.disconnect()),
    *BASE_CALLS,
]


def test_every_public_method_has_a_call() -> None:
    check_covers(KafkaConnector, CALLS)


@pytest.fixture(scope="module")
def kafka(private_broker: Any) -> Iterator[KafkaConnector]:
    config = KafkaConfig(
        bootstrap_servers=private_broker.bootstrap,
        value_serializer="json",
        retry=NO_WAIT,
        connect_timeout=5,
        produce_timeout=1,
        delivery_timeout=10,
        transaction_timeout=10,
        transactional_id=unique("fuzz-txn"),
    )
    connector = KafkaConnector(config)
    connector.connect()
    connector.create_topic(TOPIC)
    yield connector
    connector.disconnect(timeout=10)


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_hostile_arguments(call: Call, kafka: KafkaConnector) -> None:
    kafka.connect()
    check_call(kafka, call, max_examples=25)


def _consumer_calls() -> list[Call]:
    return [
        Call("poll", kwargs=st.fixed_dictionaries({}, optional={"timeout": _short_numbers()})),
        Call(
            "consume",
            kwargs=st.fixed_dictionaries(
                {}, optional={"max_messages": numbers(), "timeout": _short_numbers()}
            ),
        ),
        Call(
            "consume_batch",
            kwargs=st.fixed_dictionaries(
                {}, optional={"max_messages": numbers(), "timeout": _short_numbers()}
            ),
        ),
        Call(
            "commit",
            st.tuples(st.one_of(st.none(), values)),
            st.fixed_dictionaries({}, optional={"asynchronous": st.booleans()}),
        ),
        Call("seek", st.tuples(topics, numbers(), numbers())),
        Call("assignment"),
        Call("lag", kwargs=st.fixed_dictionaries({}, optional={"timeout": _short_numbers()})),
        Call(
            "run",
            st.tuples(st.one_of(st.none(), values)),
            st.fixed_dictionaries(
                {},
                optional={
                    "dead_letter_topic": topics,
                    "max_messages": numbers(),
                    "poll_timeout": _short_numbers(),
                },
            ),
            invoke=_run_stopped,
        ),
        Call("close"),
    ]


def _short_numbers() -> st.SearchStrategy[Any]:
    # Hostile, but never a wait long enough to stall the run (inf/None block).
    return numbers().filter(
        lambda v: v is not None and not (isinstance(v, (int, float)) and v > 0.05)
    ) | st.just(0.01)


def _run_stopped(consumer: KafkaConsumer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    import threading

    stop = threading.Event()
    stop.set()  # stops at once: checks arguments, commits nothing, closes
    return consumer.run(*args, stop_event=stop, handle_sigterm=False, **kwargs)


def test_every_consumer_method_has_a_call() -> None:
    check_covers(KafkaConsumer, _consumer_calls())


@pytest.mark.parametrize("call", _consumer_calls(), ids=str)
def test_hostile_consumer_arguments(call: Call, kafka: KafkaConnector) -> None:
    holder: dict[str, KafkaConsumer] = {}

    def fresh(_: Any) -> None:
        current = holder.get("c")
        if current is None or current.closed:
            holder["c"] = kafka.consumer(unique("fuzz"), [TOPIC])

    fresh(None)
    invoke = call.invoke

    def on_current(_: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        consumer = holder["c"]
        if invoke is not None:
            return invoke(consumer, args, kwargs)
        return getattr(consumer, call.method)(*args, **kwargs)

    import attrs

    check_call(kafka, attrs.evolve(call, setup=fresh, invoke=on_current), max_examples=25)
    holder["c"].close()
