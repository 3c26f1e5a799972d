"""The fault schedule is a pure function of its seed; the checker's arithmetic (no servers)."""

from __future__ import annotations

import collections

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from tests.chaos.checker import compare
from tests.chaos.faults import plan
from tests.chaos.workload import Ledger


def test_the_same_seed_gives_the_same_schedule():
    a, b = plan(1234, 300, proxies=["postgresql"]), plan(1234, 300, proxies=["postgresql"])
    assert a == b and a.digest == b.digest


def test_another_seed_gives_another_schedule():
    assert plan(1, 300).digest != plan(2, 300).digest


def test_the_schedule_has_the_requested_faults_and_every_heavy_kind():
    for total in (20, 100, 1000):
        for proxies in ((), ("postgresql", "mongodb", "kafka", "http")):
            schedule = plan(7, total, proxies=proxies)
            assert schedule.total == total
            kinds = {kind for _, kind in schedule.by_kind()}
            heavy = {"pg_sigkill", "mongo_sigkill", "kafka_broker_restart", "http_server_restart"}
            assert heavy <= kinds
            assert any(k.startswith("proxy_") for k in kinds) == bool(proxies)


def test_without_a_proxy_kafka_gets_only_a_few_broker_restarts():
    schedule = plan(3, 1000)
    kafka = collections.Counter(f.kind for f in schedule.faults["kafka"])
    assert set(kafka) == {"kafka_broker_restart"} and kafka["kafka_broker_restart"] <= 10


def test_compare_finds_lost_duplicated_and_contradicted_writes():
    ledger = Ledger()
    store = ("postgresql", "rows")
    ledger.ack(store, ["a", "b", "c"])
    not_sent = ConnectorError("x", code=ErrorCode.CONNECTION_FAILED, connector="postgresql")
    ledger.failed(store, ["d"], not_sent)
    check = compare(store, ledger, collections.Counter({"a": 1, "b": 2, "d": 1}))
    assert check.lost == ["c"]
    assert check.duplicates == ["b"]
    assert check.contradicted == ["d"]


def test_a_failure_that_is_not_a_connector_error_is_unclassified():
    ledger = Ledger()
    ledger.failed(("http", "writes"), ["a"], KeyError("boom"))
    assert len(ledger.unclassified) == 1 and "KeyError" in ledger.unclassified[0]
    assert ledger.maybe_applied[("http", "writes")] == {"a"}
