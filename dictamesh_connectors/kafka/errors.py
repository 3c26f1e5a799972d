"""confluent-kafka / librdkafka errors -> ``ConnectorError``: the Kafka table.

Every driver error that leaves the Kafka connector goes through
``classify()`` (the pure core) or ``translate()`` (the one context manager
around driver calls). A delivery report's error reaches the user as the
failed ``Future`` of its ``produce()``, already translated.

confluent-kafka sets the flags ``retriable()``, ``fatal()`` and
``txn_requires_abort()`` only on errors that librdkafka returns as
``rd_kafka_error_t`` (the transactional and some admin calls); delivery
reports, ``error_cb`` and most exceptions carry the bare code. So the code
decides first, and the flags, when set, override it: ``fatal()`` makes the
error permanent with hint RECONNECT (the connector rebuilds its producer on
next use), ``txn_requires_abort()`` makes TRANSACTION_FAILED
(RETRY_TRANSACTION), ``retriable()`` makes it transient. A fenced or fatal
producer can never succeed again, so ``fatal()`` and the fencing codes win
over ``txn_requires_abort()``: aborting and retrying would fail the same way
forever. Their messages say so (fenced: another producer took over the
``transactional_id``; the producer must be rebuilt).

Exception mapping (``KafkaError.name()``; ``tests/unit/kafka/test_errors.py``
checks that this table, ``CODE_RULES`` and ``docs/kafka.md`` agree)::

    _TRANSPORT, _ALL_BROKERS_DOWN, NETWORK_EXCEPTION,
    |   BROKER_NOT_AVAILABLE, LEADER_NOT_AVAILABLE,
    |   NOT_LEADER_FOR_PARTITION, REPLICA_NOT_AVAILABLE,
    |   NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    |   KAFKA_STORAGE_ERROR, COORDINATOR_NOT_AVAILABLE,
    |   COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR,
    |   _WAIT_COORD ............................ UNAVAILABLE          transient  RETRY
    _RESOLVE, _SSL ............................. CONNECTION_FAILED    transient  RETRY
    _MSG_TIMED_OUT, _PURGE_INFLIGHT ............ TIMEOUT              transient  RETRY  (1)
    _TIMED_OUT, REQUEST_TIMED_OUT .............. TIMEOUT              transient  RETRY  (2)
    _TIMED_OUT_QUEUE, _PURGE_QUEUE ............. TIMEOUT              transient  RETRY  (3)
    _QUEUE_FULL ................................ RESOURCE_EXHAUSTED   transient  RETRY  (4)
    THROTTLING_QUOTA_EXCEEDED .................. RATE_LIMITED         transient  RETRY
    UNKNOWN_TOPIC_OR_PART, _UNKNOWN_TOPIC,
    |   _UNKNOWN_PARTITION ..................... NOT_FOUND            permanent  NONE
    TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED,
    |   CLUSTER_AUTHORIZATION_FAILED,
    |   TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    |   DELEGATION_TOKEN_AUTHORIZATION_FAILED ... PERMISSION_DENIED   permanent  NONE
    SASL_AUTHENTICATION_FAILED, _AUTHENTICATION,
    |   ILLEGAL_SASL_STATE ..................... AUTH_FAILED          permanent  NONE
    MSG_SIZE_TOO_LARGE, RECORD_LIST_TOO_LARGE,
    |   INVALID_MSG_SIZE ....................... PAYLOAD_TOO_LARGE    permanent  NONE
    _FENCED, PRODUCER_FENCED, INVALID_PRODUCER_EPOCH,
    |   FENCED_INSTANCE_ID ..................... CONFLICT             permanent  RECONNECT
    _FATAL ..................................... INTERNAL             permanent  RECONNECT
    CONCURRENT_TRANSACTIONS, REBALANCE_IN_PROGRESS,
    |   ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
    |   _ASSIGNMENT_LOST, _MAX_POLL_EXCEEDED ... CONFLICT             transient  RETRY
    TOPIC_ALREADY_EXISTS ....................... CONFLICT             permanent  NONE
    INVALID_CONFIG, _INVALID_ARG ............... INVALID_CONFIG       permanent  NONE
    INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR,
    |   INVALID_REQUEST, POLICY_VIOLATION, _STATE,
    |   INVALID_TXN_STATE ...................... INVALID_REQUEST      permanent  NONE
    INVALID_MSG, INVALID_RECORD, INVALID_TIMESTAMP,
    |   INVALID_REQUIRED_ACKS,
    |   UNSUPPORTED_FOR_MESSAGE_FORMAT ......... INVALID_INPUT        permanent  NONE
    _KEY_SERIALIZATION, _VALUE_SERIALIZATION,
    |   _KEY_DESERIALIZATION,
    |   _VALUE_DESERIALIZATION ................. SERIALIZATION_ERROR  permanent  NONE
    UNSUPPORTED_VERSION, _UNSUPPORTED_FEATURE,
    |   UNSUPPORTED_COMPRESSION_TYPE,
    |   UNSUPPORTED_SASL_MECHANISM ............. UNSUPPORTED          permanent  NONE
    _DESTROY ................................... NOT_CONNECTED        permanent  NONE

    then the flags, when confluent-kafka set them:
    fatal() .................................... (the code's)         permanent  RECONNECT
    txn_requires_abort() ....................... TRANSACTION_FAILED   transient  RETRY_TRANSACTION
        (unless fatal() or a fencing code above: a fenced producer never succeeds again)
    retriable() ................................ (the code's)         transient  RETRY
    RuntimeError("... has been closed") ........ NOT_CONNECTED        permanent  NONE
    SystemError (confluent-kafka's own) ........ INTERNAL             permanent  RECONNECT
    (any other code) ........................... EXEC_FAILED (writes) / QUERY_FAILED,
                                                 permanent, or transient with retriable()

    (1) always maybe_applied; (2) maybe_applied for writes; (3) never sent;
    (4) also ``BufferError`` from ``produce()``; back-pressure: produce()
        first waits for room, up to its timeout, then raises this.

A write whose request may have reached the broker before it failed
(``_TRANSPORT``, ``_TIMED_OUT``, ``REQUEST_TIMED_OUT``, ``_MSG_TIMED_OUT``,
``_PURGE_INFLIGHT``, ``NOT_ENOUGH_REPLICAS_AFTER_APPEND``) carries
``maybe_applied=True``: re-sending it may duplicate the record (the
idempotent producer deduplicates only its own retries). ``err.details``
holds ``kafka_code`` (the librdkafka name) and, where known, ``topic``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    ErrorRule,
    RetryHint,
    Translator,
    build_error,
)

if TYPE_CHECKING:
    import confluent_kafka
else:
    confluent_kafka = require("confluent_kafka", extra="kafka", connector="kafka")

__all__ = [
    "CODE_RULES",
    "FENCED_CODES",
    "MAYBE_APPLIED",
    "classify",
    "from_kafka_error",
    "translate",
]

CONNECTOR = "kafka"

_UNAVAILABLE = ErrorRule(ErrorCode.UNAVAILABLE, True, RetryHint.RETRY)
_TIMEOUT = ErrorRule(ErrorCode.TIMEOUT, True, RetryHint.RETRY)
_NOT_FOUND = ErrorRule(ErrorCode.NOT_FOUND, False, RetryHint.NONE)
_DENIED = ErrorRule(ErrorCode.PERMISSION_DENIED, False, RetryHint.NONE)
_AUTH = ErrorRule(ErrorCode.AUTH_FAILED, False, RetryHint.NONE)
_TOO_LARGE = ErrorRule(ErrorCode.PAYLOAD_TOO_LARGE, False, RetryHint.NONE)
_FENCED = ErrorRule(ErrorCode.CONFLICT, False, RetryHint.RECONNECT)
_BUSY = ErrorRule(ErrorCode.CONFLICT, True, RetryHint.RETRY)
_BAD_REQUEST = ErrorRule(ErrorCode.INVALID_REQUEST, False, RetryHint.NONE)
_BAD_INPUT = ErrorRule(ErrorCode.INVALID_INPUT, False, RetryHint.NONE)
_SERDE = ErrorRule(ErrorCode.SERIALIZATION_ERROR, False, RetryHint.NONE)
_UNSUPPORTED = ErrorRule(ErrorCode.UNSUPPORTED, False, RetryHint.NONE)

FATAL = ErrorRule(ErrorCode.INTERNAL, False, RetryHint.RECONNECT)
"""A fatal producer error: the producer must be rebuilt."""
ABORTABLE = ErrorRule(ErrorCode.TRANSACTION_FAILED, True, RetryHint.RETRY_TRANSACTION)
"""``txn_requires_abort()``: abort, then run the transaction again."""
QUEUE_FULL = ErrorRule(ErrorCode.RESOURCE_EXHAUSTED, True, RetryHint.RETRY)
"""The local queue stayed full for the whole of ``produce()``'s timeout."""

CODE_RULES: dict[str, ErrorRule] = {
    # The connection to the brokers; librdkafka reconnects by itself.
    "_TRANSPORT": _UNAVAILABLE,
    "_ALL_BROKERS_DOWN": _UNAVAILABLE,
    "NETWORK_EXCEPTION": _UNAVAILABLE,
    "BROKER_NOT_AVAILABLE": _UNAVAILABLE,
    # A leader election or a replica catching up: retried by librdkafka.
    "LEADER_NOT_AVAILABLE": _UNAVAILABLE,
    "NOT_LEADER_FOR_PARTITION": _UNAVAILABLE,
    "REPLICA_NOT_AVAILABLE": _UNAVAILABLE,
    "NOT_ENOUGH_REPLICAS": _UNAVAILABLE,
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND": _UNAVAILABLE,
    "KAFKA_STORAGE_ERROR": _UNAVAILABLE,
    "COORDINATOR_NOT_AVAILABLE": _UNAVAILABLE,
    "COORDINATOR_LOAD_IN_PROGRESS": _UNAVAILABLE,
    "NOT_COORDINATOR": _UNAVAILABLE,
    "_WAIT_COORD": _UNAVAILABLE,
    # No connection could be made at all (DNS, TLS handshake).
    "_RESOLVE": ErrorRule(ErrorCode.CONNECTION_FAILED, True, RetryHint.RETRY),
    "_SSL": ErrorRule(ErrorCode.CONNECTION_FAILED, True, RetryHint.RETRY),
    # Out of time; whether a write happened is in MAYBE_APPLIED below.
    "_MSG_TIMED_OUT": _TIMEOUT,
    "_TIMED_OUT": _TIMEOUT,
    "REQUEST_TIMED_OUT": _TIMEOUT,
    "_TIMED_OUT_QUEUE": _TIMEOUT,
    # disconnect() gave up on these at its deadline (purged).
    "_PURGE_QUEUE": _TIMEOUT,
    "_PURGE_INFLIGHT": _TIMEOUT,
    "_QUEUE_FULL": QUEUE_FULL,
    "THROTTLING_QUOTA_EXCEEDED": ErrorRule(ErrorCode.RATE_LIMITED, True, RetryHint.RETRY),
    # Permanent for librdkafka once auto-creation is off.
    "UNKNOWN_TOPIC_OR_PART": _NOT_FOUND,
    "_UNKNOWN_TOPIC": _NOT_FOUND,
    "_UNKNOWN_PARTITION": _NOT_FOUND,
    "TOPIC_AUTHORIZATION_FAILED": _DENIED,
    "GROUP_AUTHORIZATION_FAILED": _DENIED,
    "CLUSTER_AUTHORIZATION_FAILED": _DENIED,
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED": _DENIED,
    "DELEGATION_TOKEN_AUTHORIZATION_FAILED": _DENIED,
    "SASL_AUTHENTICATION_FAILED": _AUTH,
    "_AUTHENTICATION": _AUTH,
    "ILLEGAL_SASL_STATE": _AUTH,
    "MSG_SIZE_TOO_LARGE": _TOO_LARGE,
    "RECORD_LIST_TOO_LARGE": _TOO_LARGE,
    "INVALID_MSG_SIZE": _TOO_LARGE,
    # Another producer with our transactional.id took over: rebuild, or stop.
    "_FENCED": _FENCED,
    "PRODUCER_FENCED": _FENCED,
    "INVALID_PRODUCER_EPOCH": _FENCED,
    "FENCED_INSTANCE_ID": _FENCED,
    "_FATAL": FATAL,
    # The group or the transaction coordinator is busy: try again.
    "CONCURRENT_TRANSACTIONS": _BUSY,
    "REBALANCE_IN_PROGRESS": _BUSY,
    "ILLEGAL_GENERATION": _BUSY,
    "UNKNOWN_MEMBER_ID": _BUSY,
    "_ASSIGNMENT_LOST": _BUSY,
    "_MAX_POLL_EXCEEDED": _BUSY,
    "TOPIC_ALREADY_EXISTS": ErrorRule(ErrorCode.CONFLICT, False, RetryHint.NONE),
    "INVALID_CONFIG": ErrorRule(ErrorCode.INVALID_CONFIG, False, RetryHint.NONE),
    "_INVALID_ARG": ErrorRule(ErrorCode.INVALID_CONFIG, False, RetryHint.NONE),
    "INVALID_PARTITIONS": _BAD_REQUEST,
    "INVALID_REPLICATION_FACTOR": _BAD_REQUEST,
    "INVALID_REQUEST": _BAD_REQUEST,
    "POLICY_VIOLATION": _BAD_REQUEST,
    "_STATE": _BAD_REQUEST,
    "INVALID_TXN_STATE": _BAD_REQUEST,
    "INVALID_MSG": _BAD_INPUT,
    "INVALID_RECORD": _BAD_INPUT,
    "INVALID_TIMESTAMP": _BAD_INPUT,
    "INVALID_REQUIRED_ACKS": _BAD_INPUT,
    "UNSUPPORTED_FOR_MESSAGE_FORMAT": _BAD_INPUT,
    "_KEY_SERIALIZATION": _SERDE,
    "_VALUE_SERIALIZATION": _SERDE,
    "_KEY_DESERIALIZATION": _SERDE,
    "_VALUE_DESERIALIZATION": _SERDE,
    "UNSUPPORTED_VERSION": _UNSUPPORTED,
    "_UNSUPPORTED_FEATURE": _UNSUPPORTED,
    "UNSUPPORTED_COMPRESSION_TYPE": _UNSUPPORTED,
    "UNSUPPORTED_SASL_MECHANISM": _UNSUPPORTED,
    "_DESTROY": ErrorRule(ErrorCode.NOT_CONNECTED, False, RetryHint.NONE),
}
"""librdkafka error name (``KafkaError.name()``) -> rule."""

MAYBE_APPLIED = frozenset(
    {
        "_TRANSPORT",
        "_TIMED_OUT",
        "REQUEST_TIMED_OUT",
        "_MSG_TIMED_OUT",
        "_PURGE_INFLIGHT",
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    }
)
"""Codes after which a write may have reached the broker (for writes only)."""

FENCED_CODES = frozenset(
    {"_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH", "FENCED_INSTANCE_ID", "_FATAL"}
)
"""Codes after which the client can never succeed again, whatever flags they carry."""

_PRODUCER_FENCED = frozenset({"_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"})
_FENCED_TEXT = (
    "the producer was fenced: another producer took over its transactional_id, and this "
    "one can never succeed again (the connector rebuilds its producer on next use)"
)
_FATAL_TEXT = (
    "the producer failed fatally (fenced by another producer with the same "
    "transactional_id, or another fatal error) and can never succeed again (the connector "
    "rebuilds its producer on next use)"
)
_INSTANCE_TEXT = (
    "another consumer with the same group.instance.id took this member's place; "
    "create a new consumer"
)

# Always maybe_applied, whatever the operation: a timed-out or purged
# in-flight message may sit in the log.
_ALWAYS_MAYBE_APPLIED = frozenset({"_MSG_TIMED_OUT", "_PURGE_INFLIGHT"})


def rule_for(
    name: str,
    *,
    fatal: bool = False,
    retriable: bool = False,
    abortable: bool = False,
    write: bool = False,
) -> ErrorRule:
    """The rule for a librdkafka error name and the flags the error carries.

    A fenced or fatal producer never succeeds again, so ``fatal()`` and the
    fencing codes are decided first: they stay permanent (RECONNECT) even
    when ``txn_requires_abort()`` is set too; an abort-and-retry would fail
    the same way every time. Only then does ``txn_requires_abort()`` make
    TRANSACTION_FAILED (transient, RETRY_TRANSACTION).
    """
    rule = CODE_RULES.get(name)
    if fatal or name in FENCED_CODES:
        return ErrorRule(
            rule.code if rule is not None else ErrorCode.INTERNAL, False, RetryHint.RECONNECT
        )
    if abortable:
        return ABORTABLE
    if rule is None:
        fallback = ErrorCode.EXEC_FAILED if write else ErrorCode.QUERY_FAILED
        return ErrorRule(fallback, retriable, RetryHint.RETRY if retriable else RetryHint.NONE)
    if retriable and not rule.transient:
        return ErrorRule(rule.code, True, RetryHint.RETRY)
    return rule


def from_kafka_error(
    error: confluent_kafka.KafkaError,
    *,
    operation: str,
    target: str = "",
    write: bool = False,
    topic: str | None = None,
) -> ConnectorError:
    """The ``ConnectorError`` for one ``KafkaError`` (a delivery report's, an exception's)."""
    name = error.name()
    rule = rule_for(
        name,
        fatal=bool(error.fatal()),
        retriable=bool(error.retriable()),
        abortable=bool(error.txn_requires_abort()),
        write=write,
    )
    maybe_applied = name in _ALWAYS_MAYBE_APPLIED or (write and name in MAYBE_APPLIED)
    details: dict[str, Any] = {"kafka_code": name}
    if topic is not None:
        details["topic"] = topic
    text = " ".join((error.str() or name).split())
    if rule.hint is RetryHint.RECONNECT:
        # Say what it means: a fenced or fatal client must be rebuilt.
        if name == "FENCED_INSTANCE_ID":
            text += f" ({_INSTANCE_TEXT})"
        elif name in _PRODUCER_FENCED or "fenced" in text.lower():
            text += f" ({_FENCED_TEXT})"
        else:
            text += f" ({_FATAL_TEXT})"
    where = f"{CONNECTOR}: {operation} on {target}: " if target else f"{CONNECTOR}: {operation}: "
    return build_error(
        where + text,
        rule,
        connector=CONNECTOR,
        maybe_applied=maybe_applied,
        details=details,
    )


def classify(
    exc: BaseException,
    *,
    operation: str,
    target: str = "",
    write: bool = False,
    topic: str | None = None,
) -> ConnectorError | None:
    """Return the ``ConnectorError`` for driver exception ``exc``, or ``None``.

    ``None`` means ``exc`` is not a driver exception (a ``TypeError``, a
    ``KeyboardInterrupt``, ...) and must propagate unchanged.
    """
    if isinstance(exc, confluent_kafka.KafkaException):
        error = exc.args[0] if exc.args else None
        if isinstance(error, confluent_kafka.KafkaError):
            return from_kafka_error(
                error, operation=operation, target=target, write=write, topic=topic
            )
        where = (
            f"{CONNECTOR}: {operation} on {target}: " if target else f"{CONNECTOR}: {operation}: "
        )
        return build_error(
            where + " ".join(str(exc).split()),
            rule_for("", write=write),
            connector=CONNECTOR,
        )
    if isinstance(exc, RuntimeError) and "has been closed" in str(exc):
        # confluent-kafka's "Producer/Consumer has been closed": a call that
        # lost a race with disconnect()/close().
        return build_error(
            f"{CONNECTOR}: {operation}: the client was closed",
            ErrorRule(ErrorCode.NOT_CONNECTED, False, RetryHint.NONE),
            connector=CONNECTOR,
        )
    if isinstance(exc, SystemError):
        # confluent-kafka ran a callback with a Python exception pending (seen
        # in Producer.flush() of a fenced producer): the client's callbacks
        # can no longer be trusted to run.
        where = (
            f"{CONNECTOR}: {operation} on {target}: " if target else f"{CONNECTOR}: {operation}: "
        )
        return build_error(
            where + f"confluent-kafka failed internally ({' '.join(str(exc).split())[:200]}); "
            "the client must be rebuilt (the connector rebuilds its producer on next use)",
            FATAL,
            connector=CONNECTOR,
            details={"kafka_code": "SystemError"},
        )
    if isinstance(exc, BufferError):
        where = (
            f"{CONNECTOR}: {operation} on {target}: " if target else f"{CONNECTOR}: {operation}: "
        )
        return build_error(
            where + "the local producer queue is full",
            QUEUE_FULL,
            connector=CONNECTOR,
            details={"kafka_code": "_QUEUE_FULL"},
        )
    return None


class translate(Translator):
    """Translate driver exceptions raised in the block into ``ConnectorError``.

    ``ConnectorError`` and non-driver exceptions pass through unchanged; the
    driver exception is kept as ``__cause__``. ``translate(operation,
    target="", *, write=, topic=)`` hands ``classify`` its keywords.

    Example::

        with translate("create_topic", config.target):
            futures = admin.create_topics([new_topic])

    Raises:
        ConnectorError: Translated from the confluent-kafka exception.
    """

    __slots__ = ()

    driver_errors = (confluent_kafka.KafkaException, BufferError, RuntimeError, SystemError)

    def classify(self, exc: Exception) -> ConnectorError | None:
        return classify(exc, **self.context)
