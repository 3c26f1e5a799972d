"""The end-of-campaign checks: the servers' contents against the workload's ledger.

Read straight from each server with the raw driver (never through the
connector under test), after every fault is cleared and every connector is
disconnected:

* lost: acknowledged, but not on the server;
* duplicates: applied more than once where the connector promised at most
  once (every id is written once by the workload, so a second copy can only
  come from a retry): PostgreSQL rows (no primary key, so a repeated insert
  would show), MongoDB inserts and upserts (a second document for one
  ``uid``, or ``applied`` > 1), Kafka records (idempotent producer), HTTP
  applications (a write applied twice: under two idempotency keys, or its
  one key applied twice, the loss of the idempotency guarantee);
* contradicted: a failure said ``maybe_applied=False`` (the connector
  claims it never happened, so a caller would re-send it), yet the write is
  on the server;
* unclassified: any failure that was not a ``ConnectorError`` with an
  ``ErrorCode``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.workload import MONGO_INSERTS, MONGO_UPSERTS, PG_TABLE, Ledger, Store

MONGO_DB = "chaos"

# SecantusDB 0.7.0b3 applies a retried write a second time when pymongo's
# retry (same lsid and txnNumber) arrives while the first attempt still runs
# (mongod serialises a session's commands and answers the retry from the
# first's record), or after a restart (its records live in memory only;
# mongod keeps them in config.transactions). Both were reproduced with raw
# commands, without the connector (docs/testing.md). The campaign watches
# what pymongo sends (a CommandListener): a write that came out twice (or,
# for an insert, as "duplicate key") is the server's doing, and reported
# apart, only when every send of it carried one retryable-write identity
# (uid, lsid, txnNumber) and pymongo sent that identity more than once. A
# write sent under two identities (another txnNumber, another session, or
# none) was sent anew as a second write: a real duplicate.
MONGO_RETRY = "pymongo retried it with the same lsid and txnNumber, SecantusDB applied it again"

HTTP_OWN_KEY = (
    "maybe_applied=False on a POST with the caller's own Idempotency-Key (the HTTP "
    "connector's documented meaning: the caller can resend it with that key safely)"
)

# A retryable write's identity as pymongo sends it: (lsid, txnNumber); None
# for either when the command carries none.
Identity = tuple[str | None, int | None]


def _lsid(command: Any) -> str | None:
    lsid = command.get("lsid")
    ident = lsid.get("id") if isinstance(lsid, dict) else None
    if ident is None:
        return None
    return bytes(ident).hex() if isinstance(ident, (bytes, bytearray)) else str(ident)


class MongoSends:
    """Fed by a pymongo ``CommandListener``: each workload write's sends, by retry identity."""

    def __init__(self, database: str = MONGO_DB) -> None:
        self.database = database
        self._lock = threading.Lock()
        # guarded by _lock: write id -> (lsid, txnNumber) -> sends
        self.sent: dict[str, collections.Counter[Identity]] = collections.defaultdict(
            collections.Counter
        )

    def started(self, event: Any) -> None:
        if event.database_name != self.database:
            return
        command = event.command
        if event.command_name == "insert":
            ids = [str(d.get("_id")) for d in command.get("documents", ())]
        elif event.command_name == "update":
            ids = [str(u.get("q", {}).get("uid")) for u in command.get("updates", ())]
        else:
            return
        txn = command.get("txnNumber")
        identity = (_lsid(command), int(txn) if txn is not None else None)
        with self._lock:
            for i in ids:
                self.sent[i][identity] += 1

    def server_retry(self, write_id: str) -> str | None:
        """Why ``write_id`` found twice is the server's doing (None: it is not).

        Only a pymongo retry explains it: one (lsid, txnNumber) for every
        send, that identity sent more than once. Sent under a second
        identity, the write was sent again as a new write.
        """
        with self._lock:
            sends = dict(self.sent.get(write_id, {}))
        if len(sends) != 1:
            return None
        (lsid, txn), times = next(iter(sends.items()))
        if lsid is None or txn is None or times < 2:
            return None
        return f"{MONGO_RETRY}; sent {times} times as lsid {lsid[:8]}.. txnNumber {txn}"


@dataclass
class StoreCheck:
    store: Store
    acked: int
    on_server: int
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    contradicted: list[str] = field(default_factory=list)
    # Found, but not the connector's doing (why, per id): reported, not failed.
    excused: dict[str, str] = field(default_factory=dict)


def compare(
    store: Store,
    ledger: Ledger,
    copies: collections.Counter[str],
    applied_twice: Sequence[str] = (),
    *,
    suffix: str = "",
) -> StoreCheck:
    """Hold ``ledger``'s claims for ``store`` against ``copies`` (id -> copies on the server).

    ``suffix``: only the ids ending with it belong to this store (two stores
    share one server collection).
    """
    copies = collections.Counter({i: n for i, n in copies.items() if i.endswith(suffix)})
    applied_twice = [i for i in applied_twice if i.endswith(suffix)]
    acked = ledger.acked.get(store, set())
    not_applied = ledger.not_applied.get(store, set())
    check = StoreCheck(store, len(acked), len(copies))
    check.lost = sorted(i for i in acked if copies[i] == 0)
    check.duplicates = sorted({i for i, n in copies.items() if n > 1} | set(applied_twice))
    check.contradicted = sorted(i for i in not_applied if copies[i] > 0)
    return check


def mongo_checks(
    ledger: Ledger,
    inserts: collections.Counter[str],
    upserts: collections.Counter[str],
    twice: Sequence[str],
    sends: MongoSends,
) -> list[StoreCheck]:
    """The MongoDB stores: inserts and upserts, the server's own retries set apart."""
    out = []
    for name, copies, applied_twice in (("inserts", inserts, ()),
                                        ("upserts", upserts, twice)):  # fmt: skip
        check = compare(("mongodb", name), ledger, copies, applied_twice)
        excuse(check, sends.server_retry)
        out.append(check)
    return out


def http_checks(ledger: Ledger, applied: collections.Counter[str]) -> list[StoreCheck]:
    """The HTTP stores (one server, told apart by the id's suffix): keyed and auto_key."""
    keyed = compare(("http", "keyed"), ledger, applied, suffix="k")

    def own_key(write_id: str) -> str | None:
        # The key explains a write the connector said was not applied but the
        # server applied, once. The server applying one key twice is not
        # explained by anything: it stays a duplicate (and a contradiction).
        return HTTP_OWN_KEY if applied[write_id] == 1 else None

    excuse(keyed, own_key, only=("contradicted",))
    return [keyed, compare(("http", "auto_key"), ledger, applied, suffix="a")]


def postgres_copies(dsn: str) -> collections.Counter[str]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(f"SELECT id, count(*) FROM {PG_TABLE} GROUP BY id").fetchall()
    return collections.Counter({r[0]: r[1] for r in rows})


def mongo_copies(uri: str, database: str) -> tuple[
    collections.Counter[str], collections.Counter[str], list[str]
]:  # fmt: skip
    import pymongo

    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=30_000)
    try:
        db = client[database]
        inserts = collections.Counter(str(d["_id"]) for d in db[MONGO_INSERTS].find({}, {"_id": 1}))
        upserts: collections.Counter[str] = collections.Counter()
        twice = []
        for d in db[MONGO_UPSERTS].find({}, {"uid": 1, "applied": 1}):
            upserts[d["uid"]] += 1
            if d.get("applied", 0) > 1:  # one document, the update applied twice
                twice.append(d["uid"])
    finally:
        client.close()
    return inserts, upserts, twice


def kafka_copies(bootstrap: str, topic: str, timeout: float = 120.0) -> collections.Counter[str]:
    """Every record of ``topic``, read from the start to each partition's high watermark."""
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"chaos-checker-{time.time_ns()}",
        "enable.auto.commit": False,
        "isolation.level": "read_uncommitted",
        "log_level": 0,
    })  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=30)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), 30)[1]
                for p in partitions}  # fmt: skip
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        copies: collections.Counter[str] = collections.Counter()
        positions = {p: 0 for p in partitions}
        deadline = time.monotonic() + timeout
        while any(positions[p] < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise RuntimeError(f"chaos: reading {topic} back did not reach {ends}: {positions}")
            for msg in consumer.consume(10_000, 1.0):
                if msg.error() is not None:
                    continue
                copies[msg.value().decode()] += 1
                positions[msg.partition()] = msg.offset() + 1
    finally:
        consumer.close()
    return copies


def excuse(
    check: StoreCheck,
    why: Callable[[str], str | None],
    *,
    only: Sequence[str] = ("duplicates", "contradicted"),
) -> None:
    """Move the findings of the lists ``only`` names that ``why(id)`` explains to ``excused``."""
    for name in only:
        kept = []
        for i in getattr(check, name):
            reason = why(i)
            if reason is None:
                kept.append(i)
            else:
                check.excused[i] = f"{name}: {reason}"
        setattr(check, name, kept)
