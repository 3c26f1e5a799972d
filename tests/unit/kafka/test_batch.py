"""Batch: one callback for every record of a produce_many(), failures named by their bytes."""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError

from dictamesh_connectors.errors import ErrorCode
from dictamesh_connectors.kafka.producer import Batch

from .fake import FakeMessage

_TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT)


def _batch(values: list[object], keys: list[object] | None = None) -> Batch:
    batch = Batch(len(values))
    batch.messages = [
        {"value": value, "key": None if keys is None else keys[i], "callback": batch.report}
        for i, value in enumerate(values)
    ]
    return batch


def _report(batch: Batch, index: int, err: KafkaError | None) -> None:
    message = batch.messages[index]
    batch.report(err, FakeMessage("t", 0, index, message["key"], message["value"]))


def test_failures_reported_out_of_order_are_named_by_their_bytes():
    batch = _batch([b"%d" % i for i in range(10)], keys=[b"k"] * 10)
    for index in (9, 0, 7, 3, 1, 2, 4, 5, 6, 8):
        _report(batch, index, _TIMED_OUT if index in (3, 7, 9) else None)
    result = batch.future.result(0)
    assert result.delivered == 7
    assert [i for i, _ in result.failed] == [3, 7, 9]
    assert {e.code for _, e in result.failed} == {ErrorCode.TIMEOUT}
    assert all(e.maybe_applied for _, e in result.failed)


def test_records_alike_are_named_lowest_first_and_never_twice():
    batch = _batch([b"x", b"y", b"x", b"x", b"y"])
    for index in (3, 4, 2):  # three failures: two of the b"x", one b"y"
        _report(batch, index, _TIMED_OUT)
    assert not batch.future.done()
    _report(batch, 0, None)
    _report(batch, 1, None)
    assert [i for i, _ in batch.future.result(0).failed] == [0, 1, 2]


def test_str_values_and_keys_match_the_bytes_librdkafka_gives_back():
    batch = _batch(["é", "b"], keys=["k1", None])
    batch.report(_TIMED_OUT, FakeMessage("t", 0, -1, None, b"b"))
    batch.report(_TIMED_OUT, FakeMessage("t", 0, -1, b"k1", "é".encode()))
    assert [i for i, _ in batch.future.result(0).failed] == [0, 1]


def test_a_record_refused_at_once_is_not_named_again_by_a_report():
    batch = _batch([b"x", b"x", b"x"])
    batch.refused(batch.messages[0], KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), "t")
    _report(batch, 1, _TIMED_OUT)
    batch.fail_unqueued([2], batch.failed[0][1])
    result = batch.future.result(0)
    assert [i for i, _ in result.failed] == [0, 1, 2] and result.delivered == 0
    assert result.failed[0][1].code is ErrorCode.PAYLOAD_TOO_LARGE


def test_reports_served_by_many_threads_at_once_name_every_index_once():
    size = 20_000
    batch = _batch([b"same"] * size)
    go = threading.Barrier(8)

    def serve(part: int) -> None:
        go.wait()
        for index in range(part, size, 8):
            _report(batch, index, _TIMED_OUT if index % 3 == 0 else None)

    threads = [threading.Thread(target=serve, args=(part,)) for part in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = batch.future.result(0)
    failed = [i for i, _ in result.failed]
    assert len(failed) == len(set(failed)) == len(range(0, size, 3))
    assert result.delivered == size - len(failed)
    assert failed == list(range(len(failed)))  # alike: named lowest first


def test_an_empty_batch_is_done_at_once():
    assert Batch(0).future.result(0).delivered == 0


def test_a_batch_refused_whole_names_each_record_once():
    batch = _batch([b"x"] * 500)
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    for index in [*range(1, 500, 2), *range(0, 500, 2)]:
        batch.refused(batch.messages[index], too_large, "t")
    result = batch.future.result(0)
    assert [i for i, _ in result.failed] == list(range(500)) and result.delivered == 0
    assert batch.messages == []  # the cycle through each message's callback is broken
