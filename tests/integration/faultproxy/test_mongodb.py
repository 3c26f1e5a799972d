"""MongoDB connector through FaultProxy against the real SecantusDB server.

pymongo talks to the proxy with ``directConnection=true``, so every socket
it opens (operations and the topology monitor) goes through the proxy.
pymongo's own retryable reads/writes are switched off where a test wants to
see the classified error itself, and on where it proves they work.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pymongo
import pytest

from dictamesh_connectors.errors import ConnectorError, ConnectorTimeoutError, ErrorCode
from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.faultproxy import FaultProxy
from tests.integration.faultproxy.conftest import bounded, wait_for

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def raw(mongodb_uri: str) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    """A plain client straight to the server, around the proxy: the control."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_uri)
    yield client
    client.close()


@pytest.fixture
def proxy(mongodb_uri: str) -> Iterator[FaultProxy]:
    parsed = urllib.parse.urlsplit(mongodb_uri)
    with FaultProxy(upstream=(parsed.hostname or "127.0.0.1", parsed.port or 27017)) as proxy:
        yield proxy


@pytest.fixture
def connect(
    proxy: FaultProxy, raw: pymongo.MongoClient[dict[str, Any]]
) -> Iterator[Callable[..., MongoDBConnector]]:
    made: list[MongoDBConnector] = []

    def build(*, start: bool = True, **overrides: Any) -> MongoDBConnector:
        fields: dict[str, Any] = {
            "database": unique("fp"),
            "app_name": unique("fp"),
            # short enough for a quick test, long enough for a busy machine
            "socket_timeout": 2.0,
            "connect_timeout": 4.0,
            "server_selection_timeout": 8.0,
            "heartbeat_frequency": 0.5,
            "retry_reads": False,
            "retry_writes": False,
            "retry": RetryPolicy(max_attempts=1),
        }
        fields.update(overrides)
        url = f"mongodb://{proxy.host}:{proxy.port}/?directConnection=true"
        connector = MongoDBConnector(MongoDBConfig.from_url(url, **fields))
        made.append(connector)
        if start:
            connector.connect()
        return connector

    yield build
    proxy.clear()
    for connector in made:
        connector.disconnect(10)
        raw.drop_database(connector.config.database)


def count(raw: pymongo.MongoClient[dict[str, Any]], connector: MongoDBConnector) -> int:
    return raw[connector.config.database]["c"].count_documents({})


def test_plain_round_trip(connect: Callable[..., MongoDBConnector], proxy: FaultProxy) -> None:
    db = connect()
    db.insert_one("c", {"_id": 1, "v": "x"})
    assert db.find_one("c", {"_id": 1}) == {"_id": 1, "v": "x"}
    assert proxy.stats.accepted >= 1 and proxy.stats.bytes_downstream > 0


def test_blackhole_read_and_write_time_out_then_recover(
    connect: Callable[..., MongoDBConnector], proxy: FaultProxy
) -> None:
    db = connect()
    db.insert_one("c", {"_id": 0})
    proxy.blackhole(True)
    read = bounded(lambda: db.find_one("c", {"_id": 0})).error
    assert isinstance(read, ConnectorTimeoutError), read
    assert read.code is ErrorCode.TIMEOUT and read.transient and not read.maybe_applied
    write = bounded(lambda: db.insert_one("c", {"_id": 1})).error
    assert isinstance(write, ConnectorTimeoutError), write
    assert write.transient and write.maybe_applied  # it had left: it may have happened
    proxy.clear()
    assert wait_for(lambda: bounded(lambda: db.find_one("c", {"_id": 0})).result == {"_id": 0})


def test_a_per_call_timeout_bounds_a_blackholed_call(
    connect: Callable[..., MongoDBConnector], proxy: FaultProxy
) -> None:
    db = connect(socket_timeout=None)  # no socket timeout: only the call's own limit
    db.insert_one("c", {"_id": 0})
    proxy.blackhole(True)
    err = bounded(lambda: db.find_one("c", {"_id": 0}, timeout=1.0)).error
    assert isinstance(err, ConnectorTimeoutError), err
    assert err.code is ErrorCode.TIMEOUT


def test_downstream_blackhole_write_was_applied(
    connect: Callable[..., MongoDBConnector],
    proxy: FaultProxy,
    raw: pymongo.MongoClient[dict[str, Any]],
) -> None:
    db = connect()
    db.insert_one("c", {"_id": 0})
    proxy.blackhole(True, direction="downstream")
    err = bounded(lambda: db.insert_one("c", {"_id": 1})).error
    assert isinstance(err, ConnectorTimeoutError), err
    assert err.maybe_applied
    assert wait_for(lambda: count(raw, db) == 2)  # it did happen: maybe_applied was right


def test_connect_through_a_blackhole_fails_in_time(
    connect: Callable[..., MongoDBConnector], proxy: FaultProxy
) -> None:
    proxy.blackhole(True)
    db = connect(start=False)
    err = bounded(db.connect).error
    assert isinstance(err, ConnectorError), err
    # pymongo's server selection gives up (its monitor's hello timed out):
    # no server is usable, which the connector reports as UNAVAILABLE.
    assert err.code in (ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE), err
    assert err.transient and not err.maybe_applied
    proxy.clear()
    assert bounded(db.connect).error is None
    # The bytes the blackhole held flow now; on a busy machine the first insert
    # may still time out behind them: the reconnect path is that one works.
    assert wait_for(lambda: bounded(lambda: db.insert_one("c", {"n": 1})).error is None)


def test_reset_when_the_answer_comes_back_is_lost_and_maybe_applied(
    connect: Callable[..., MongoDBConnector],
    proxy: FaultProxy,
    raw: pymongo.MongoClient[dict[str, Any]],
) -> None:
    db = connect()
    db.insert_one("c", {"_id": 0})
    # The monitor also reads from the server: when its heartbeat's answer takes
    # the reset instead of the insert's, pymongo drops the pool and the insert
    # runs on a new connection, unharmed. Arm it again for the next insert.
    err: BaseException | None = None
    for n in range(1, 9):
        proxy.reset_next(direction="downstream")
        err = bounded(lambda n=n: db.insert_one("c", {"_id": n})).error
        if err is not None:
            break
    assert isinstance(err, ConnectorError), err
    assert err.code is ErrorCode.CONNECTION_LOST and err.transient and err.maybe_applied, err
    # the reconnect path: the next operation works
    assert wait_for(lambda: bounded(lambda: db.insert_one("c", {"n": 100})).error is None)
    assert count(raw, db) >= 2


def test_reset_is_retried_by_pymongo_when_allowed(
    connect: Callable[..., MongoDBConnector],
    proxy: FaultProxy,
    raw: pymongo.MongoClient[dict[str, Any]],
) -> None:
    db = connect(retry_writes=True, retry_reads=True)
    db.insert_one("c", {"_id": 0})
    proxy.reset_connections()
    assert bounded(lambda: db.find_one("c", {"_id": 0})).result == {"_id": 0}
    proxy.reset_connections()
    assert bounded(lambda: db.insert_one("c", {"_id": 1})).error is None
    assert count(raw, db) == 2  # exactly once


def test_refused_is_unavailable_and_not_sent(
    connect: Callable[..., MongoDBConnector],
    proxy: FaultProxy,
    raw: pymongo.MongoClient[dict[str, Any]],
) -> None:
    db = connect()
    db.insert_one("c", {"_id": 0})
    proxy.refuse(True)
    proxy.reset_connections()
    # The pooled socket was reset: the first call may still find it (and
    # lose it: CONNECTION_LOST); after that every call must open a new one.
    first = bounded(lambda: db.find_one("c", {"_id": 0})).error
    assert isinstance(first, ConnectorError) and first.transient, first
    err = bounded(lambda: db.insert_one("c", {"_id": 1})).error
    assert isinstance(err, ConnectorError), err
    assert err.code in (ErrorCode.UNAVAILABLE, ErrorCode.CONNECTION_FAILED), err
    assert err.transient and not err.maybe_applied
    assert count(raw, db) == 1
    proxy.refuse(False)
    assert wait_for(lambda: bounded(lambda: db.insert_one("c", {"n": 1})).error is None)


def test_half_open_times_out(connect: Callable[..., MongoDBConnector], proxy: FaultProxy) -> None:
    db = connect()
    db.insert_one("c", {"_id": 0})
    proxy.half_open(True)
    err = bounded(lambda: db.find_one("c", {"_id": 0})).error
    assert isinstance(err, ConnectorError) and err.transient, err
    assert err.code in (ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE), err
    proxy.half_open(False)
    assert wait_for(lambda: bounded(lambda: db.find_one("c", {"_id": 0})).result == {"_id": 0})


def test_latency_and_bandwidth_still_succeed(
    connect: Callable[..., MongoDBConnector], proxy: FaultProxy
) -> None:
    db = connect(socket_timeout=10.0)
    proxy.set_latency(0.05, jitter=0.02)
    proxy.set_bandwidth(500_000)
    for number in range(5):
        db.insert_one("c", {"_id": number, "blob": "x" * 20_000})
    assert db.count("c") == 5
    assert db.find_one("c", {"_id": 4})["blob"] == "x" * 20_000
    assert proxy.stats.faults["latency"] > 0 and proxy.stats.faults["bandwidth"] > 0


def test_disconnect_through_a_blackhole_returns(
    connect: Callable[..., MongoDBConnector], proxy: FaultProxy
) -> None:
    db = connect(socket_timeout=None, connect_timeout=10.0)
    db.insert_one("c", {"_id": 0})
    proxy.blackhole(True)
    # pymongo's close() sends endSessions on a pooled socket: through a
    # blackhole it ends only when the monitor, after connect_timeout (10 s
    # here), gives the server up. disconnect's timeout bounds it.
    started = time.monotonic()
    assert bounded(lambda: db.disconnect(2)).error is None
    assert time.monotonic() - started < 8.0, "close() waited for server selection"
    assert not db.is_connected
