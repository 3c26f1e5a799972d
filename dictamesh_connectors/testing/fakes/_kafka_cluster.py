"""The in-memory cluster behind ``FakeKafka``: topics, partition logs, transactions, groups.

One broker (id 1). A partition is a list of records whose index is the
offset. Transactions leave a control record in every partition they wrote
(as a broker's commit/abort marker does), so offsets move exactly as on a
real cluster; ``read_committed`` readers stop at the first record of an
open transaction and skip aborted ones. Consumer groups keep committed
offsets and hand partitions to their members round-robin, in join order,
with an eager rebalance whenever a member joins or leaves or the topics
change: a member gives up all it holds first, and takes a partition only
once its previous owner gave it up.

``FakeCluster.lock`` guards everything here (memory only: never held
across a sleep or a user callback); ``FakeCluster.changed`` is notified on
every change a waiting consumer may care about.
"""

from __future__ import annotations

import random
import re
import time
import zlib
from collections.abc import Iterable
from typing import Any

from dictamesh_connectors import _fork

__all__ = ["FakeCluster", "Group", "Member", "Record", "Txn", "murmur2"]

BROKER_ID = 1


class Txn:
    """One producer transaction: open, then committed or aborted."""

    __slots__ = ("offsets", "partitions", "state")

    def __init__(self) -> None:
        self.state = "open"
        self.partitions: set[tuple[str, int]] = set()
        # group id -> (topic, partition) -> offset, applied on commit
        self.offsets: dict[str, dict[tuple[str, int], int]] = {}


class Record:
    """One record of a partition log (a control record has ``control`` set)."""

    __slots__ = ("control", "headers", "key", "timestamp", "txn", "value")

    def __init__(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes | None]] | None,
        timestamp: int,
        txn: Txn | None = None,
        control: bool = False,
    ) -> None:
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
        self.txn = txn
        self.control = control


class Topic:
    """A topic: its partitions' logs and its settings."""

    __slots__ = ("config", "logs", "name")

    def __init__(self, name: str, partitions: int, config: dict[str, str]) -> None:
        self.name = name
        self.logs: list[list[Record]] = [[] for _ in range(partitions)]
        self.config = config


class Member:
    """A consumer's membership in a group."""

    __slots__ = ("generation", "group", "owned", "patterns", "topics")

    def __init__(self, group: Group, topics: list[str]) -> None:
        self.group = group
        self.topics = [t for t in topics if not t.startswith("^")]
        self.patterns = [re.compile(t) for t in topics if t.startswith("^")]
        self.owned: set[tuple[str, int]] = set()
        self.generation = -1  # synced with no generation yet

    def wants(self, topic: str) -> bool:
        """Whether this member subscribed to ``topic`` (by name or pattern)."""
        return topic in self.topics or any(p.match(topic) for p in self.patterns)


class Group:
    """A consumer group: committed offsets, members in join order, who owns what."""

    __slots__ = ("committed", "generation", "id", "members", "owners")

    def __init__(self, group_id: str) -> None:
        self.id = group_id
        self.committed: dict[tuple[str, int], int] = {}
        self.members: list[Member] = []
        self.owners: dict[tuple[str, int], Member] = {}
        self.generation = 0


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the Java client's ``Utils.murmur2``)."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = length - rest
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def pick_partition(partitioner: str, key: bytes | None, count: int) -> int:
    """The partition librdkafka's ``partitioner`` gives ``key`` among ``count``."""
    if key is None or partitioner == "random":
        if partitioner in ("consistent", "murmur2", "fnv1a"):
            # These hash the empty key; the *_random ones pick at random.
            key = b""
        else:
            return random.randrange(count)
    if partitioner.startswith("murmur2"):
        return (murmur2(key) & 0x7FFFFFFF) % count
    if partitioner.startswith("fnv1a"):
        h = 0x811C9DC5
        for byte in key:
            h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
        signed = h - (1 << 32) if h & 0x80000000 else h
        return abs(signed) % count
    return (zlib.crc32(key) & 0xFFFFFFFF) % count


class FakeCluster:
    """Every topic, transaction and consumer group of one fake Kafka cluster.

    Share one between several ``FakeKafka`` instances (``cluster=``) to have
    them see the same topics, as services sharing a real cluster do.
    """

    def __init__(self) -> None:
        self.lock = _fork.create_rlock()
        self.changed = _fork.create_condition(self.lock)
        self.topics: dict[str, Topic] = {}  # guarded by lock
        self.groups: dict[str, Group] = {}  # guarded by lock
        # transactional id -> producer epoch, and its open transaction
        self.epochs: dict[str, int] = {}  # guarded by lock
        self.open_txns: dict[str, Txn] = {}  # guarded by lock

    # -------------------------------------------------------------- topics

    def create_topic(self, name: str, partitions: int, config: dict[str, str]) -> None:
        """Add a topic (call with the lock held); the caller checked it is new."""
        self.topics[name] = Topic(name, partitions, dict(config))
        self._topology_changed()

    def delete_topic(self, name: str) -> None:
        """Remove a topic (call with the lock held)."""
        del self.topics[name]
        for group in self.groups.values():
            for key in [k for k in group.committed if k[0] == name]:
                del group.committed[key]
        self._topology_changed()

    def _topology_changed(self) -> None:
        for group in self.groups.values():
            group.generation += 1
        self.changed.notify_all()

    def append(self, topic: str, partition: int, record: Record) -> int:
        """Append ``record``; return its offset (call with the lock held)."""
        log = self.topics[topic].logs[partition]
        log.append(record)
        if record.txn is not None:
            record.txn.partitions.add((topic, partition))
        self.changed.notify_all()
        return len(log) - 1

    def end_txn(self, txn: Txn, commit: bool) -> None:
        """Commit or abort ``txn``: a marker in each partition it wrote (lock held)."""
        txn.state = "committed" if commit else "aborted"
        now = int(time.time() * 1000)
        for topic, partition in sorted(txn.partitions):
            if topic in self.topics:
                self.topics[topic].logs[partition].append(
                    Record(None, None, None, now, txn, control=True)
                )
        if commit:
            for group_id, offsets in txn.offsets.items():
                self.group(group_id).committed.update(offsets)
        self.changed.notify_all()

    # -------------------------------------------------------------- groups

    def group(self, group_id: str) -> Group:
        """The group, created on first use (call with the lock held)."""
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id)
        return group

    def join(self, group_id: str, topics: list[str]) -> Member:
        """A new member of ``group_id``; the group rebalances (lock held)."""
        group = self.group(group_id)
        member = Member(group, topics)
        group.members.append(member)
        group.generation += 1
        self.changed.notify_all()
        return member

    def leave(self, member: Member) -> None:
        """``member`` leaves its group, giving up what it owns (lock held)."""
        group = member.group
        if member in group.members:
            group.members.remove(member)
        for key in member.owned:
            if group.owners.get(key) is member:
                del group.owners[key]
        member.owned = set()
        group.generation += 1
        self.changed.notify_all()

    def target(self, member: Member) -> set[tuple[str, int]]:
        """The partitions ``member`` should own in the current generation (lock held)."""
        group = member.group
        mine: set[tuple[str, int]] = set()
        for name in sorted(self.topics):
            takers = [m for m in group.members if m.wants(name)]
            if member not in takers:
                continue
            for partition in range(len(self.topics[name].logs)):
                if takers[partition % len(takers)] is member:
                    mine.add((name, partition))
        return mine

    def missing(self, member: Member) -> list[str]:
        """Topics ``member`` subscribed to by name that do not exist (lock held)."""
        return [t for t in member.topics if t not in self.topics]

    # ------------------------------------------------------------- reading

    def high_watermark(self, topic: str, partition: int) -> int:
        """The offset the next record will get (lock held)."""
        return len(self.topics[topic].logs[partition])

    def read(
        self, topic: str, partition: int, position: int, limit: int, committed_only: bool
    ) -> tuple[list[tuple[int, Record]], int]:
        """Up to ``limit`` visible records from ``position``; and the new position (lock held).

        Control records are skipped; with ``committed_only`` the read stops
        at an open transaction's record and skips aborted ones.
        """
        log = self.topics[topic].logs[partition]
        out: list[tuple[int, Record]] = []
        while position < len(log) and len(out) < limit:
            record = log[position]
            if record.control:
                position += 1
                continue
            if committed_only and record.txn is not None:
                if record.txn.state == "open":
                    break
                if record.txn.state == "aborted":
                    position += 1
                    continue
            out.append((position, record))
            position += 1
        return out, position


def partitions_of(items: Iterable[Any]) -> list[tuple[str, int]]:
    """``(topic, partition)`` pairs of ``TopicPartition`` objects."""
    return [(tp.topic, tp.partition) for tp in items]
