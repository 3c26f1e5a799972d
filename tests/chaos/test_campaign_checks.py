"""The campaign's checker, fed synthetic histories (no servers).

Each test here is the regression test of a defect of the campaign itself
(#14): excuses that cleared real duplicates (HTTP: any keyed write;
MongoDB: any write sent twice).
"""

from __future__ import annotations

import collections
from types import SimpleNamespace
from typing import Any

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from tests.chaos import checker
from tests.chaos.workload import Ledger


def _not_applied(connector: str) -> ConnectorError:
    return ConnectorError("connection lost", code=ErrorCode.CONNECTION_LOST, connector=connector)


# -------------------------------------------------------------------- HTTP


def test_http_own_key_excuses_a_contradiction_but_never_a_duplicate_apply():
    ledger = Ledger()
    keyed = ("http", "keyed")
    # Failed with maybe_applied=False, applied once: the key makes a resend safe.
    ledger.failed(keyed, ["h0-1k"], _not_applied("http"))
    # Failed with maybe_applied=False, applied twice under its one key.
    ledger.failed(keyed, ["h0-2k"], _not_applied("http"))
    # Acknowledged, applied twice: the server broke the key's promise.
    ledger.ack(keyed, ["h0-3k"])
    ledger.ack(keyed, ["h0-4k"])
    applied = collections.Counter({"h0-1k": 1, "h0-2k": 2, "h0-3k": 2, "h0-4k": 1})
    check, auto = checker.http_checks(ledger, applied)
    assert check.store == keyed and auto.store == ("http", "auto_key")
    assert check.duplicates == ["h0-2k", "h0-3k"]
    assert check.contradicted == ["h0-2k"]  # applied twice: not what the key explains
    assert list(check.excused) == ["h0-1k"] and "contradicted" in check.excused["h0-1k"]
    assert check.lost == []


def test_http_auto_key_excuses_nothing():
    ledger = Ledger()
    ledger.failed(("http", "auto_key"), ["h0-1a"], _not_applied("http"))
    _, auto = checker.http_checks(ledger, collections.Counter({"h0-1a": 1}))
    assert auto.contradicted == ["h0-1a"] and auto.excused == {}


# ----------------------------------------------------------------- MongoDB


def _sent(sends: checker.MongoSends, command_name: str, uid: str, lsid: bytes | None,
          txn: int | None) -> None:  # fmt: skip
    command: dict[str, Any] = (
        {"insert": "inserts", "documents": [{"_id": uid}]}
        if command_name == "insert"
        else {"update": "upserts", "updates": [{"q": {"uid": uid}, "upsert": True}]}
    )
    if lsid is not None:
        command["lsid"] = {"id": lsid}
    if txn is not None:
        command["txnNumber"] = txn
    sends.started(SimpleNamespace(database_name=checker.MONGO_DB, command_name=command_name,
                                  command=command))  # fmt: skip


def test_mongo_retry_excuse_needs_the_same_uid_lsid_and_txn_number():
    session, other = b"\x01" * 16, b"\x02" * 16
    sends = checker.MongoSends()
    # Upserts, each applied twice:
    _sent(sends, "update", "m0-1", session, 7)  # pymongo's retry: the same identity
    _sent(sends, "update", "m0-1", session, 7)
    _sent(sends, "update", "m0-2", session, 8)  # sent again as a new write
    _sent(sends, "update", "m0-2", session, 9)
    _sent(sends, "update", "m0-3", session, 10)  # the same txnNumber in another session
    _sent(sends, "update", "m0-3", other, 10)
    _sent(sends, "update", "m0-4", None, None)  # no retryable-write identity at all
    _sent(sends, "update", "m0-4", None, None)
    _sent(sends, "update", "m0-5", session, 11)  # retried by pymongo, then sent anew
    _sent(sends, "update", "m0-5", session, 11)
    _sent(sends, "update", "m0-5", session, 12)
    # Inserts that failed with "duplicate key" (maybe_applied=False) yet are there:
    _sent(sends, "insert", "m1-1", session, 20)  # pymongo's retry
    _sent(sends, "insert", "m1-1", session, 20)
    _sent(sends, "insert", "m1-2", session, 21)  # a different txnNumber: a real duplicate
    _sent(sends, "insert", "m1-2", session, 22)
    # Another database's commands do not count.
    sends.started(SimpleNamespace(database_name="other", command_name="insert",
                                  command={"documents": [{"_id": "m1-3"}], "lsid": {"id": session},
                                           "txnNumber": 30}))  # fmt: skip
    _sent(sends, "insert", "m1-3", session, 30)

    ledger = Ledger()
    upserts = [f"m0-{i}" for i in range(1, 6)]
    ledger.ack(("mongodb", "upserts"), upserts)
    duplicate_key = ConnectorError("E11000", code=ErrorCode.CONFLICT, connector="mongodb")
    ledger.failed(("mongodb", "inserts"), ["m1-1", "m1-2", "m1-3"], duplicate_key)
    inserts = collections.Counter({"m1-1": 1, "m1-2": 1, "m1-3": 1})
    inserts_check, upserts_check = checker.mongo_checks(
        ledger, inserts, collections.Counter(dict.fromkeys(upserts, 1)), upserts, sends
    )
    assert list(upserts_check.excused) == ["m0-1"]
    assert upserts_check.duplicates == ["m0-2", "m0-3", "m0-4", "m0-5"]
    assert list(inserts_check.excused) == ["m1-1"]
    assert inserts_check.contradicted == ["m1-2", "m1-3"]
