"""The Kafka error table: every row classified, flags override, docs agree, errors pickle."""

import pickle
import re
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, KafkaException

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
    RetryHint,
)
from dictamesh_connectors.kafka import errors as kerrors
from dictamesh_connectors.kafka.errors import CODE_RULES, classify, from_kafka_error, translate

ROOT = Path(__file__).resolve().parents[3]


def _error(name, **flags):
    return KafkaError(getattr(KafkaError, name), f"reason for {name}", **flags)


@pytest.mark.parametrize("name", sorted(CODE_RULES))
def test_every_row_is_a_real_librdkafka_code_and_classifies_as_drawn(name):
    assert hasattr(KafkaError, name), name
    rule = CODE_RULES[name]
    err = classify(KafkaException(_error(name)), operation="produce", target="h:9092")
    assert (err.code, err.transient, err.retry_hint) == tuple(rule)
    assert err.connector == "kafka" and err.details["kafka_code"] == name
    assert err.message.startswith("kafka: produce on h:9092: ")


def test_the_issue_table_holds():
    expect = {
        "_TRANSPORT": (ErrorCode.UNAVAILABLE, True),
        "_ALL_BROKERS_DOWN": (ErrorCode.UNAVAILABLE, True),
        "_MSG_TIMED_OUT": (ErrorCode.TIMEOUT, True),
        "UNKNOWN_TOPIC_OR_PART": (ErrorCode.NOT_FOUND, False),
        "TOPIC_AUTHORIZATION_FAILED": (ErrorCode.PERMISSION_DENIED, False),
        "GROUP_AUTHORIZATION_FAILED": (ErrorCode.PERMISSION_DENIED, False),
        "SASL_AUTHENTICATION_FAILED": (ErrorCode.AUTH_FAILED, False),
        "_AUTHENTICATION": (ErrorCode.AUTH_FAILED, False),
        "MSG_SIZE_TOO_LARGE": (ErrorCode.PAYLOAD_TOO_LARGE, False),
        "INVALID_CONFIG": (ErrorCode.INVALID_CONFIG, False),
        "_INVALID_ARG": (ErrorCode.INVALID_CONFIG, False),
    }
    for name, (code, transient) in expect.items():
        err = from_kafka_error(_error(name), operation="x")
        assert (err.code, err.transient) == (code, transient), name
    for name in ("_FENCED", "PRODUCER_FENCED", "_FATAL"):
        err = from_kafka_error(_error(name), operation="x")
        assert not err.transient and err.retry_hint is RetryHint.RECONNECT, name
    timed_out = from_kafka_error(_error("_MSG_TIMED_OUT"), operation="produce", write=False)
    assert timed_out.maybe_applied and isinstance(timed_out, ConnectorTimeoutError)
    full = classify(BufferError("Local: Queue full"), operation="produce")
    assert full.code is ErrorCode.RESOURCE_EXHAUSTED and full.transient


def test_most_specific_classes():
    assert isinstance(
        from_kafka_error(_error("_AUTHENTICATION"), operation="x"), AuthenticationError
    )
    assert isinstance(from_kafka_error(_error("_INVALID_ARG"), operation="x"), InvalidConfigError)
    assert isinstance(from_kafka_error(_error("_DESTROY"), operation="x"), NotConnectedError)
    assert isinstance(from_kafka_error(_error("_TIMED_OUT"), operation="x"), ConnectorTimeoutError)


def test_maybe_applied_only_where_the_request_may_have_left():
    for name in (
        "_TRANSPORT",
        "_TIMED_OUT",
        "REQUEST_TIMED_OUT",
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    ):
        assert from_kafka_error(_error(name), operation="produce", write=True).maybe_applied
        assert not from_kafka_error(_error(name), operation="list", write=False).maybe_applied
    for name in ("_PURGE_INFLIGHT", "_MSG_TIMED_OUT"):
        assert from_kafka_error(_error(name), operation="produce", write=False).maybe_applied
    for name in ("_PURGE_QUEUE", "_TIMED_OUT_QUEUE", "UNKNOWN_TOPIC_OR_PART", "_QUEUE_FULL"):
        assert not from_kafka_error(_error(name), operation="produce", write=True).maybe_applied


def test_flags_override_the_code():
    abortable = from_kafka_error(_error("_TIMED_OUT", txn_requires_abort=True), operation="commit")
    assert abortable.code is ErrorCode.TRANSACTION_FAILED
    assert abortable.transient and abortable.retry_hint is RetryHint.RETRY_TRANSACTION
    fatal = from_kafka_error(_error("OUT_OF_ORDER_SEQUENCE_NUMBER", fatal=True), operation="x")
    assert not fatal.transient and fatal.retry_hint is RetryHint.RECONNECT
    fenced = from_kafka_error(_error("PRODUCER_FENCED", fatal=True), operation="x")
    assert fenced.code is ErrorCode.CONFLICT and fenced.retry_hint is RetryHint.RECONNECT
    retriable = from_kafka_error(_error("UNKNOWN", retriable=True), operation="x", write=True)
    assert retriable.code is ErrorCode.EXEC_FAILED and retriable.transient
    unknown = from_kafka_error(_error("UNKNOWN"), operation="x")
    assert unknown.code is ErrorCode.QUERY_FAILED and not unknown.transient
    retriable_permanent = from_kafka_error(
        _error("MSG_SIZE_TOO_LARGE", retriable=True), operation="x"
    )
    assert retriable_permanent.transient


@pytest.mark.parametrize(
    "name", ["_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH", "_FATAL", "_TIMED_OUT"]
)
def test_a_fenced_or_fatal_producer_is_permanent_even_when_the_error_says_abort(name):
    # A fenced/fatal producer can never commit again: retrying the
    # transaction (what TRANSACTION_FAILED asks for) would fail forever.
    fatal = name == "_TIMED_OUT"  # a code of its own, made fatal by the flag
    err = from_kafka_error(
        _error(name, fatal=fatal, txn_requires_abort=True), operation="commit_transaction"
    )
    assert err.code is not ErrorCode.TRANSACTION_FAILED, name
    assert not err.transient and err.retry_hint is RetryHint.RECONNECT, name
    assert "can never succeed again" in err.message and "rebuilds its producer" in err.message
    if name != "_FATAL" and name != "_TIMED_OUT":
        assert "the producer was fenced" in err.message and "transactional_id" in err.message


def test_only_an_abortable_error_of_a_live_producer_is_transaction_failed():
    err = from_kafka_error(
        _error("_TIMED_OUT", txn_requires_abort=True), operation="commit_transaction"
    )
    assert err.code is ErrorCode.TRANSACTION_FAILED and err.transient
    assert err.retry_hint is RetryHint.RETRY_TRANSACTION and "never" not in err.message
    fatal = from_kafka_error(_error("_FATAL"), operation="produce")
    assert "failed fatally" in fatal.message
    fenced_text = from_kafka_error(
        KafkaError(KafkaError._FATAL, "Fatal error: This instance has been fenced"),
        operation="client",
    )
    assert "the producer was fenced" in fenced_text.message
    member = from_kafka_error(_error("FENCED_INSTANCE_ID"), operation="poll")
    assert "group.instance.id" in member.message and "producer" not in member.message


def test_translate_keeps_the_cause_and_lets_other_errors_through():
    exc = KafkaException(_error("UNKNOWN_TOPIC_OR_PART"))
    with pytest.raises(ConnectorError) as info, translate("produce", "h:1", topic="t"):
        raise exc
    assert info.value.__cause__ is exc and info.value.details["topic"] == "t"
    with pytest.raises(TypeError), translate("produce"):
        raise TypeError("mine")
    with pytest.raises(KeyboardInterrupt), translate("produce"):
        raise KeyboardInterrupt
    original = ConnectorError("already", code=ErrorCode.TIMEOUT)
    with pytest.raises(ConnectorError) as info, translate("produce"):
        raise original
    assert info.value is original
    assert classify(ValueError("x"), operation="x") is None
    internal = classify(SystemError("returned a result with an exception set"), operation="flush")
    assert internal is not None and internal.code is ErrorCode.INTERNAL
    assert not internal.transient and internal.retry_hint is RetryHint.RECONNECT
    with pytest.raises(ConnectorError), translate("flush"):
        raise SystemError("returned NULL without setting an exception")
    bare = classify(KafkaException("no error object"), operation="x")
    assert bare is not None and bare.code is ErrorCode.QUERY_FAILED


def test_errors_pickle_with_every_attribute():
    err = from_kafka_error(_error("_MSG_TIMED_OUT"), operation="produce", write=True, topic="t")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    for attr in ("code", "transient", "retry_hint", "maybe_applied", "details", "message"):
        assert getattr(back, attr) == getattr(err, attr)


# ------------------------------------------------------------ the drawn table

_ROW = re.compile(r"^(?P<names>.*?)\s*\.{3,}\s*(?P<rest>\S.*)$")
_TRANSIENCE = {"transient": True, "permanent": False}


def _docstring_rows():
    text = kerrors.__doc__
    block = text.split("::\n", 1)[1].split("then the flags", 1)[0]
    rows: dict[str, tuple[str, bool, str]] = {}
    pending: list[str] = []
    for line in block.splitlines():
        line = line.strip()
        if not line:
            continue
        line = line.lstrip("|").strip()
        match = _ROW.match(line)
        if match is None:
            pending += [n.strip() for n in line.split(",") if n.strip()]
            continue
        pending += [n.strip() for n in match.group("names").split(",") if n.strip()]
        code, transience, hint = match.group("rest").split()[:3]
        for name in pending:
            assert name not in rows, f"{name} drawn twice"
            rows[name] = (code, _TRANSIENCE[transience], hint)
        pending = []
    assert not pending, pending
    return rows


def _rule_tuple(rule):
    return (rule.code.value, rule.transient, rule.hint.value)


def test_docstring_table_matches_the_rules():
    rows = _docstring_rows()
    assert set(rows) == set(CODE_RULES), set(rows) ^ set(CODE_RULES)
    for name, rule in CODE_RULES.items():
        assert rows[name] == _rule_tuple(rule), name


def test_docs_table_matches_the_rules():
    text = (ROOT / "docs" / "kafka.md").read_text()
    section = text.split("## Errors", 1)[1].split("\n## ", 1)[0]  # up to the next section
    rows: dict[str, tuple[str, bool, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        code = cells[1].strip("`")
        transient = _TRANSIENCE[cells[2]]
        hint = cells[3].strip("`")
        for name in names:
            rows[name] = (code, transient, hint)
    assert set(rows) == set(CODE_RULES), set(rows) ^ set(CODE_RULES)
    for name, rule in CODE_RULES.items():
        assert rows[name] == _rule_tuple(rule), name


def test_confluent_kafka_is_the_driver():
    assert confluent_kafka.libversion()[1] >= 0x02000000
