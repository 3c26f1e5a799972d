"""The pymongo -> ConnectorError table, on real pymongo/bson exception instances (no server)."""

import builtins
import pickle
import re
from pathlib import Path

import bson.errors
import pymongo.errors
import pytest

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    RetryHint,
)
from dictamesh_connectors.mongodb import errors as mongo_errors
from dictamesh_connectors.mongodb.errors import SERVER_CODES, classify, mask, translate

DOCS = Path(__file__).resolve().parents[3] / "docs" / "mongodb.md"
_ROW = re.compile(
    r"^\s*(?:\|\s*)?(?P<source>\S.*?) \.+ (?P<code>[A-Z][A-Z_]+)\s+(?P<transient>yes|no)"
    r"\s+(?P<hint>[A-Z_]+)\s*$"
)
_LABEL_ROW = re.compile(
    r"^\s*\|\s*(?P<label>\w+) \.+ \(its code\)\s+(?P<transient>yes|no)\s+(?P<hint>[A-Z_]+)\s*$"
)


def failure(code, message="boom", labels=None, cls=pymongo.errors.OperationFailure, **extra):
    details = {"ok": 0, "code": code, "errmsg": message, **extra}
    if labels:
        details["errorLabels"] = labels
    return cls(message, code, details)


def rule_of(err):
    return (err.code, err.transient, err.retry_hint)


def drawn_table(text):
    """The table block of a text: the lines from the header row to the last label row."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "pymongo exception or server code" in line)
    end = next(i for i, line in enumerate(lines) if "RetryableWriteError ...." in line)
    return [line.strip() for line in lines[start : end + 1]]


def instance(name):
    if name == "NotPrimaryError":
        return pymongo.errors.NotPrimaryError("not primary", {"code": 10107, "errmsg": "x"})
    if name in ("OverflowError", "ValueError", "RecursionError"):
        return getattr(builtins, name)("cannot encode")
    if name == "InvalidOperation":
        return pymongo.errors.InvalidOperation("Cannot use MongoClient after close")
    cls = getattr(pymongo.errors, name, None) or getattr(bson.errors, name)
    return cls("x")


def test_the_drawn_table_is_the_one_in_the_docs():
    assert drawn_table(mongo_errors.__doc__) == drawn_table(DOCS.read_text())


def test_every_row_of_the_drawn_table_is_what_classify_does():
    rows = [_ROW.match(line) for line in drawn_table(mongo_errors.__doc__)]
    rows = [m for m in rows if m]
    assert len(rows) > 25
    seen_codes = set()
    for row in rows:
        rule = (ErrorCode[row["code"]], row["transient"] == "yes", RetryHint[row["hint"]])
        source = row["source"]
        codes = [int(n) for n in re.findall(r"\b\d+\b", source)]
        if source.startswith("BulkWriteError"):
            code = 11000 if "duplicate" in source else 121
            exc = pymongo.errors.BulkWriteError(
                {"writeErrors": [{"index": 0, "code": code, "errmsg": "x"}], "nInserted": 0}
            )
            assert rule_of(classify(exc, write=True)) == rule, source
        elif codes:
            for code in codes:
                seen_codes.add(code)
                assert rule_of(classify(failure(code))) == rule, (source, code)
        else:
            for name in re.findall(r"\b([A-Z]\w+)\b", source.split("(")[0]):
                assert rule_of(classify(instance(name))) == rule, (source, name)
    assert set(SERVER_CODES) <= seen_codes, set(SERVER_CODES) - seen_codes
    labels = [_LABEL_ROW.match(line) for line in drawn_table(mongo_errors.__doc__)]
    labels = [m for m in labels if m]
    assert {m["label"] for m in labels} == {
        "TransientTransactionError",
        "UnknownTransactionCommitResult",
        "RetryableWriteError",
    }
    for m in labels:
        err = classify(failure(2, labels=[m["label"]]))  # BadValue: permanent on its own
        assert err.code is ErrorCode.INVALID_REQUEST
        assert (err.transient, err.retry_hint) == (m["transient"] == "yes", RetryHint[m["hint"]])
        assert err.details["labels"] == [m["label"]]


def test_unknown_codes_fall_back_by_read_or_write():
    assert classify(failure(424242)).code is ErrorCode.QUERY_FAILED
    assert classify(failure(424242), write=True).code is ErrorCode.EXEC_FAILED
    assert classify(pymongo.errors.PyMongoError("x")).code is ErrorCode.QUERY_FAILED
    assert not classify(failure(424242)).transient


def test_the_most_specific_class_is_raised():
    assert isinstance(classify(failure(18)), AuthenticationError)
    assert isinstance(
        classify(failure(50, cls=pymongo.errors.ExecutionTimeout)), ConnectorTimeoutError
    )
    assert isinstance(classify(pymongo.errors.NetworkTimeout("t")), ConnectorTimeoutError)


def test_non_driver_exceptions_pass_through_untouched():
    assert classify(TypeError("x")) is None
    assert classify(KeyError("x")) is None
    assert classify(ValueError("bad hint")).code is ErrorCode.INVALID_REQUEST
    with pytest.raises(TypeError), translate("insert_one"):
        raise TypeError("mine")
    with pytest.raises(KeyboardInterrupt), translate("insert_one"):
        raise KeyboardInterrupt
    err = ConnectorError("already ours")
    with pytest.raises(ConnectorError) as info, translate("insert_one"):
        raise err
    assert info.value is err


def test_translate_keeps_the_cause_and_names_operation_and_target():
    exc = failure(
        11000,
        "E11000 duplicate key error collection: db.c index: email_1 "
        'dup key: { email: "ada@example.org" }',
        cls=pymongo.errors.DuplicateKeyError,
        keyPattern={"email": 1},
        keyValue={"email": "ada@example.org"},
    )
    with pytest.raises(ConnectorError) as info, translate("insert_one", "db@h:27017", write=True):
        raise exc
    err = info.value
    assert err.__cause__ is exc
    assert err.message.startswith("mongodb: insert_one on db@h:27017: DuplicateKey (11000): ")
    assert "ada@example.org" not in err.message and "ada@example.org" not in repr(err.details)
    assert err.details == {
        "code": 11000,
        "code_name": "DuplicateKey",
        "key_pattern": {"email": 1},
        "index": "email_1",
    }
    assert err.code is ErrorCode.CONSTRAINT_VIOLATION and not err.maybe_applied


@pytest.mark.parametrize(
    "exc, write, in_tx, expected",
    [
        (pymongo.errors.NetworkTimeout("timed out"), True, False, True),
        (pymongo.errors.NetworkTimeout("timed out"), False, False, False),
        (pymongo.errors.NetworkTimeout("timed out"), True, True, False),
        (pymongo.errors.AutoReconnect("connection closed"), True, False, True),
        (pymongo.errors.AutoReconnect("connection closed"), True, True, False),
        (pymongo.errors.ServerSelectionTimeoutError("no server"), True, False, False),
        (pymongo.errors.WaitQueueTimeoutError("pool"), True, False, False),
        (failure(50, cls=pymongo.errors.ExecutionTimeout), True, False, True),
        (failure(11000, cls=pymongo.errors.DuplicateKeyError), True, False, False),
        (failure(64, cls=pymongo.errors.WTimeoutError), True, False, True),
        (failure(91, cls=pymongo.errors.WriteConcernError), True, False, True),
        (failure(2), True, False, False),
    ],
)
def test_maybe_applied_only_when_the_driver_cannot_know(exc, write, in_tx, expected):
    assert classify(exc, write=write, in_transaction=in_tx).maybe_applied is expected


def test_a_retried_write_that_failed_again_may_have_applied_its_first_try():
    exc = pymongo.errors.NotPrimaryError(
        "x", {"code": 91, "errmsg": "x", "errorLabels": ["RetryableWriteError"]}
    )
    assert classify(exc, write=True, retried=True).maybe_applied
    assert not classify(exc, write=True, retried=False).maybe_applied
    proven = pymongo.errors.NotPrimaryError(
        "x",
        {"code": 91, "errmsg": "x", "errorLabels": ["RetryableWriteError", "NoWritesPerformed"]},
    )
    assert not classify(proven, write=True, retried=True).maybe_applied


def test_a_commit_with_an_unknown_result_may_have_applied():
    exc = failure(
        50, labels=["UnknownTransactionCommitResult"], cls=pymongo.errors.ExecutionTimeout
    )
    err = classify(exc, operation="commit", write=True, in_transaction=True, commit=True)
    assert err.maybe_applied and err.transient
    lost = pymongo.errors.AutoReconnect("gone")
    lost._add_error_label("UnknownTransactionCommitResult")
    assert classify(lost, write=True, commit=True).maybe_applied


def test_transient_transaction_label_makes_a_write_conflict_a_rerun():
    err = classify(failure(112, labels=["TransientTransactionError"]), in_transaction=True)
    assert rule_of(err) == (ErrorCode.SERIALIZATION_FAILURE, True, RetryHint.RETRY_TRANSACTION)
    err = classify(failure(251, labels=["TransientTransactionError"]), in_transaction=True)
    assert rule_of(err) == (ErrorCode.TRANSACTION_FAILED, True, RetryHint.RETRY_TRANSACTION)
    assert rule_of(classify(failure(251))) == (ErrorCode.TRANSACTION_FAILED, False, RetryHint.NONE)


def test_bulk_write_error_keeps_each_failure_and_the_counts_without_values():
    exc = pymongo.errors.BulkWriteError(
        {
            "writeErrors": [
                {"index": 1, "code": 11000, "errmsg": 'E11000 dup key: { k: "SECRET-VALUE" }'},
                {
                    "index": 3,
                    "code": 121,
                    "errmsg": "Document failed validation {'k': 'SECRET-VALUE'}",
                },
            ],
            "writeConcernErrors": [],
            "nInserted": 2,
            "nUpserted": 0,
            "nMatched": 0,
            "nModified": 0,
            "nRemoved": 0,
            "upserted": [],
        }
    )
    err = classify(exc, operation="insert_many", write=True)
    assert err.code is ErrorCode.CONSTRAINT_VIOLATION
    assert err.details["inserted"] == 2
    assert [(e["index"], e["code"]) for e in err.details["write_errors"]] == [(1, 11000), (3, 121)]
    assert "SECRET-VALUE" not in repr(err.details) and "SECRET-VALUE" not in err.message
    assert "2 of the documents failed" in err.message
    concern = pymongo.errors.BulkWriteError(
        {
            "writeErrors": [],
            "writeConcernErrors": [{"code": 64, "errmsg": "waiting"}],
            "nInserted": 5,
        }
    )
    err = classify(concern, write=True)
    assert err.code is ErrorCode.TIMEOUT and err.maybe_applied and err.details["inserted"] == 5


def test_bson_errors_never_quote_the_value():
    exc = bson.errors.InvalidDocument("cannot encode object: <SECRET-VALUE>, of type: <class 'X'>")
    err = classify(exc, operation="insert_one", write=True)
    assert err.code is ErrorCode.SERIALIZATION_ERROR and "SECRET" not in err.message


def test_server_selection_message_drops_the_topology_description():
    exc = pymongo.errors.ServerSelectionTimeoutError(
        "h:1: [Errno 111] Connection refused, Timeout: 0.5s, Topology Description: <...>"
    )
    err = classify(exc, operation="connect", target="db@h:1")
    assert (
        err.message
        == "mongodb: connect on db@h:1: no suitable server: h:1: [Errno 111] Connection refused"
    )
    assert (err.code, err.transient) == (ErrorCode.UNAVAILABLE, True)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "E11000 duplicate key error collection: d.c index: a_1 dup key: { a: 1 }",
            "E11000 duplicate key error collection: d.c index: a_1",
        ),
        (
            "Cannot apply $inc to a value of non-numeric type. "
            "{_id: ObjectId('x')} has the field 'a'",
            "Cannot apply $inc to a value of non-numeric type. {***} has the field '***'",
        ),
        ('unknown operator: "$secret"', "unknown operator: '***'"),
        ("x" * 1000, "x" * 300 + "..."),
    ],
)
def test_mask(text, expected):
    assert mask(text) == expected


def test_translated_errors_pickle_with_every_attribute():
    err = classify(
        failure(112, labels=["TransientTransactionError"]),
        operation="update_one",
        target="db@h",
        write=True,
    )
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is type(err)
    assert (clone.message, clone.code, clone.transient, clone.retry_hint, clone.details) == (
        err.message,
        err.code,
        err.transient,
        err.retry_hint,
        err.details,
    )
