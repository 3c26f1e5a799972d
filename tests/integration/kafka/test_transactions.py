"""Transactions on the real broker: fencing (two producers with one transactional_id) is
permanent and says so; every public method of a fenced producer, from several threads at
once, raises only classified errors and every future resolves; an abortable error is
TRANSACTION_FAILED and a retry commits."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, RetryHint
from dictamesh_connectors.kafka import KafkaConnector

from .conftest import read_all, unique

pytestmark = pytest.mark.integration


def _assert_fenced(err: BaseException) -> None:
    assert isinstance(err, ConnectorError), repr(err)
    assert err.code is not ErrorCode.TRANSACTION_FAILED, err.message
    assert not err.transient and err.retry_hint is RetryHint.RECONNECT, err.message
    assert "fenced" in err.message and "can never succeed again" in err.message, err.message


def test_a_fenced_producer_is_permanent_says_so_and_is_rebuilt_on_next_use(
    kafka_config, kafka, new_topic
):
    topic = new_topic()
    config = kafka_config.evolve(transactional_id=unique("fenced"), delivery_timeout=60)
    first, second, third = KafkaConnector(config), KafkaConnector(config), KafkaConnector(config)
    first.connect()
    try:
        with first.transaction():
            first.produce_sync(topic, b"first")
        # Fenced between transactions: the next one fails at its commit.
        second.connect()  # init_transactions() with the same id fences `first`
        with pytest.raises(ConnectorError) as info, first.transaction():
            zombie = first.produce(topic, b"zombie-1")
        _assert_fenced(info.value)
        assert isinstance(zombie.exception(30), ConnectorError)
        # The connector rebuilt its producer: it takes the id back (fencing `second`
        # mid-transaction, after a delivered record) and commits.
        with pytest.raises(ConnectorError) as info, second.transaction():
            second.produce_sync(topic, b"zombie-2")
            with first.transaction():
                first.produce_sync(topic, b"rebuilt")
        _assert_fenced(info.value)
        # Fenced with an open transaction, at send_offsets_to_transaction().
        with first.consumer(unique("eos"), topic) as source:
            batch: list = []
            while not batch:
                batch = source.consume(10, 1.0)
            with pytest.raises(ConnectorError) as info, first.transaction():
                third.connect()  # a third instance takes over
                first.send_offsets_to_transaction(source, batch)
            _assert_fenced(info.value)
        with first.transaction():  # rebuilt once more
            first.produce_sync(topic, b"last")
    finally:
        for connector in (first, second, third):
            connector.disconnect(30)
    committed = sorted(m.value for m in read_all(kafka, topic, 3))
    assert committed == [b"first", b"last", b"rebuilt"]


def test_an_abortable_error_is_transaction_failed_and_a_retry_commits(
    kafka_config, kafka, new_topic
):
    topic = new_topic(config={"max.message.bytes": "2000"})
    txn = KafkaConnector(
        kafka_config.evolve(transactional_id=unique("abortable"), delivery_timeout=60)
    )
    txn.connect()
    failures: list[ConnectorError] = []
    try:
        # A record the broker refuses (over the topic's max.message.bytes)
        # makes the transaction abortable: commit fails, the block is aborted.
        with pytest.raises(ConnectorError) as info, txn.transaction():
            txn.produce(topic, b"x" * 10_000)
            txn.produce(topic, b"aborted")
        failures.append(info.value)
        # Retried as a run_in_transaction loop would (librdkafka may refuse the
        # first commit after the abort once more, abortably: skipped sequence numbers).
        for _attempt in range(5):
            try:
                with txn.transaction():
                    txn.produce(topic, b"retried")
                break
            except ConnectorError as err:
                failures.append(err)
        else:
            raise AssertionError(f"the retried transaction never committed: {failures}")
    finally:
        txn.disconnect(30)
    for err in failures:
        assert err.code is ErrorCode.TRANSACTION_FAILED and err.transient, err.message
        assert err.retry_hint is RetryHint.RETRY_TRANSACTION
    assert failures[0].details["kafka_code"] == "MSG_SIZE_TOO_LARGE"
    assert [m.value for m in read_all(kafka, topic, 1)] == [b"retried"]


def test_a_fenced_producer_raises_only_classified_errors_and_resolves_every_future(
    kafka_config, kafka, new_topic
):
    topic = new_topic()
    config = kafka_config.evolve(transactional_id=unique("zombie"), delivery_timeout=60)
    first, second = KafkaConnector(config), KafkaConnector(config)
    first.connect()
    futures: list[concurrent.futures.Future[Any]] = []
    raw: list[BaseException] = []
    calls: list[Callable[[], object]] = [
        lambda: first.flush(10),  # confluent-kafka's own flush(10) raised SystemError here
        lambda: futures.append(first.produce(topic, b"produced")),
        lambda: first.flush(),
        lambda: first.produce_sync(topic, b"sync", timeout=30),
        lambda: futures.append(first.produce_many(topic, [b"many-1", b"many-2"])),
        lambda: first.flush(0.5),
        lambda: first.ping(5),
        lambda: first.list_topics(),
    ]

    def hammer() -> None:
        for _ in range(3):
            for call in calls:
                try:
                    call()
                except ConnectorError:
                    pass
                except BaseException as exc:  # a raw exception: what this test is about
                    raw.append(exc)

    try:
        with pytest.raises(ConnectorError) as info, first.transaction():
            first.produce_sync(topic, b"delivered")  # the partition joined the transaction
            futures.append(first.produce(topic, b"queued"))
            second.connect()  # fenced, mid-transaction, with records in hand
            futures += [first.produce(topic, b"after-%d" % i) for i in range(500)]
            hammer()  # its flush(10) meets the fatal error with reports pending
            threads = [threading.Thread(target=hammer) for _ in range(4)]
            for thread in threads:
                thread.start()
            hammer()
            for thread in threads:
                thread.join(120)
        assert raw == [], raw
        _assert_fenced(info.value)
        for future in futures:  # every one resolved: none lost with its report
            with contextlib.suppress(ConnectorError):
                future.result(60)
        with first.transaction():  # rebuilt: it works again
            first.produce_sync(topic, b"recovered")
    finally:
        first.disconnect(30)
        second.disconnect(30)
    assert [m.value for m in read_all(kafka, topic, 1)] == [b"recovered"]


def test_producing_outside_a_transaction_with_a_transactional_id_says_why(kafka_config, new_topic):
    topic = new_topic()
    txn = KafkaConnector(
        kafka_config.evolve(transactional_id=unique("outside"), delivery_timeout=60)
    )
    txn.connect()
    try:
        with pytest.raises(ConnectorError) as info:
            txn.produce(topic, b"no transaction")
        assert info.value.code is ErrorCode.INVALID_REQUEST and not info.value.transient
        assert info.value.details["kafka_code"] == "_STATE"
        assert "only inside transaction()" in info.value.message
    finally:
        txn.disconnect(30)
