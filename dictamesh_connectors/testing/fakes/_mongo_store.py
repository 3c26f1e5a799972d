"""The in-memory data of ``FakeMongoDB``: databases, collections, unique indexes.

Documents are stored as decoded BSON (encoded and decoded with the
connector's codec options on the way in, deep-copied on the way out), so
nothing the caller holds aliases what is stored, and a value BSON cannot
hold fails as it does against a server. Every collection keeps a revision
per document, which transactions use to detect write conflicts.

One lock (``Store.lock``) guards all of it; an operation holds it only for
its in-memory work (never across a sleep or a callback).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from dictamesh_connectors import _fork
from dictamesh_connectors.testing.fakes._mongo_query import (
    MISSING,
    MongoError,
    get_path,
    key_of,
    matches,
)

__all__ = ["Collection", "DuplicateKey", "Index", "Store", "index_name"]

Document = dict[str, Any]

DUPLICATE_KEY = 11000


class DuplicateKey(Exception):
    """A unique index refused a document (the fake turns it into the server's E11000)."""

    def __init__(self, namespace: str, index: Index, doc: Mapping[str, Any]) -> None:
        super().__init__(f"E11000 duplicate key error collection: {namespace} index: {index.name}")
        self.namespace = namespace
        self.index = index
        self.key_value = {field: _plain(get_path(doc, field)) for field, _ in index.keys}

    def details(self, position: int = 0) -> Document:
        """The write error document a server sends for it."""
        message = f"{self.args[0]} dup key: {{ ... }}"
        return {
            "index": position,
            "code": DUPLICATE_KEY,
            "errmsg": message,
            "keyPattern": dict(self.index.keys),
            "keyValue": self.key_value,
        }


def _plain(value: Any) -> Any:
    return None if value is MISSING else value


def index_name(keys: Sequence[tuple[str, Any]]) -> str:
    """The default index name (``a_1_b_-1``), as the server derives it."""
    return "_".join(f"{field}_{direction}" for field, direction in keys)


@attrs.define(kw_only=True)
class Index:
    """One index: its key, options and (for a unique one) key -> document id."""

    name: str
    keys: tuple[tuple[str, Any], ...]
    unique: bool = False
    sparse: bool = False
    expire_after: int | None = None
    partial_filter: Mapping[str, Any] | None = None
    entries: dict[Any, Any] = attrs.field(factory=dict)

    def describe(self) -> Document:
        """The index as ``listIndexes`` shows it."""
        out: Document = {"v": 2, "key": dict(self.keys), "name": self.name}
        if self.unique and self.name != "_id_":
            out["unique"] = True
        if self.sparse:
            out["sparse"] = True
        if self.expire_after is not None:
            out["expireAfterSeconds"] = self.expire_after
        if self.partial_filter is not None:
            out["partialFilterExpression"] = copy.deepcopy(dict(self.partial_filter))
        return out

    def same_options(self, other: Index) -> bool:
        """Whether ``other`` is the same index (creating it again is a no-op)."""
        return (self.keys, self.unique, self.sparse, self.expire_after, self.partial_filter) == (
            other.keys,
            other.unique,
            other.sparse,
            other.expire_after,
            other.partial_filter,
        )

    def key_for(self, doc: Mapping[str, Any]) -> Any:
        """The unique key of ``doc`` in this index, or ``MISSING`` if the index skips it."""
        values = [get_path(doc, field) for field, _ in self.keys]
        if self.sparse and all(v is MISSING for v in values):
            return MISSING
        if self.partial_filter is not None and not matches(doc, self.partial_filter):
            return MISSING
        return tuple(key_of(None if v is MISSING else v) for v in values)

    def clone(self) -> Index:
        """A copy with its own entries (for a transaction's snapshot)."""
        return attrs.evolve(self, entries=dict(self.entries))


def _id_index() -> Index:
    return Index(name="_id_", keys=(("_id", 1),), unique=True)


class Collection:
    """One collection: documents in natural (insertion) order, indexes, revisions."""

    __slots__ = ("docs", "indexes", "namespace", "revisions", "serial")

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.docs: dict[Any, Document] = {}  # key_of(_id) -> document
        self.indexes: dict[str, Index] = {"_id_": _id_index()}
        # key_of(_id) -> revision of its last write (kept after a delete).
        self.revisions: dict[Any, int] = {}
        self.serial = 0

    def clone(self) -> Collection:
        """A deep snapshot (a transaction works on one)."""
        other = Collection(self.namespace)
        other.docs = copy.deepcopy(self.docs)
        other.indexes = {name: index.clone() for name, index in self.indexes.items()}
        other.revisions = dict(self.revisions)
        other.serial = self.serial
        return other

    def __iter__(self) -> Iterator[Document]:
        return iter(list(self.docs.values()))

    def _bump(self, id_key: Any) -> None:
        self.serial += 1
        self.revisions[id_key] = self.serial

    def _unique(self) -> list[Index]:
        return [index for index in self.indexes.values() if index.unique and index.name != "_id_"]

    def check_unique(self, doc: Mapping[str, Any], id_key: Any) -> None:
        """Raise ``DuplicateKey`` if ``doc`` (stored under ``id_key``) breaks a unique index."""
        for index in self._unique():
            key = index.key_for(doc)
            if key is MISSING:
                continue
            holder = index.entries.get(key, MISSING)
            if holder is not MISSING and holder != id_key:
                raise DuplicateKey(self.namespace, index, doc)

    def insert(self, doc: Document) -> None:
        """Store a new document (its ``_id`` set).

        Raises:
            DuplicateKey: Its ``_id`` or a unique key is taken.
        """
        id_key = key_of(doc["_id"])
        if id_key in self.docs:
            raise DuplicateKey(self.namespace, self.indexes["_id_"], doc)
        self.check_unique(doc, id_key)
        self.docs[id_key] = doc
        self._index(doc, id_key)
        self._bump(id_key)

    def replace(self, id_key: Any, doc: Document) -> None:
        """Store ``doc`` in place of the document under ``id_key`` (same ``_id``).

        Raises:
            DuplicateKey: A unique key of the new version is taken by another document.
        """
        self.check_unique(doc, id_key)
        self._unindex(self.docs[id_key], id_key)
        self.docs[id_key] = doc
        self._index(doc, id_key)
        self._bump(id_key)

    def delete(self, id_key: Any) -> None:
        """Remove the document under ``id_key``."""
        doc = self.docs.pop(id_key)
        self._unindex(doc, id_key)
        self._bump(id_key)

    def _index(self, doc: Mapping[str, Any], id_key: Any) -> None:
        for index in self._unique():
            key = index.key_for(doc)
            if key is not MISSING:
                index.entries[key] = id_key

    def _unindex(self, doc: Mapping[str, Any], id_key: Any) -> None:
        for index in self._unique():
            key = index.key_for(doc)
            if key is not MISSING and index.entries.get(key) == id_key:
                del index.entries[key]

    def add_index(self, index: Index) -> str:
        """Create ``index`` (a no-op for the same one) and return its name.

        Raises:
            MongoError: 85/86 for a name or key taken with other options;
                DuplicateKey when existing documents break a new unique index.
        """
        existing = self.indexes.get(index.name)
        if existing is not None:
            if existing.same_options(index):
                return index.name
            code, name = (
                (86, "IndexKeySpecsConflict")
                if existing.keys != index.keys
                else (
                    85,
                    "IndexOptionsConflict",
                )
            )
            raise MongoError(
                code,
                f"An existing index has the same name as the requested index: {index.name}",
                name,
            )
        for other in self.indexes.values():
            if other.same_options(index):
                raise MongoError(
                    85,
                    "Index already exists with a different name: " + other.name,
                    "IndexOptionsConflict",
                )
        if index.unique:
            for id_key, doc in self.docs.items():
                key = index.key_for(doc)
                if key is MISSING:
                    continue
                if key in index.entries:
                    index.entries.clear()
                    raise DuplicateKey(self.namespace, index, doc)
                index.entries[key] = id_key
        self.indexes[index.name] = index
        return index.name

    def drop_index(self, name: str) -> None:
        """Drop the index called ``name``.

        Raises:
            MongoError: 27 IndexNotFound, or 72 for ``_id_``.
        """
        if name == "_id_":
            raise MongoError(72, "cannot drop _id index", "InvalidOptions")
        if name not in self.indexes:
            raise MongoError(27, f"index not found with name [{name}]", "IndexNotFound")
        del self.indexes[name]


class Store:
    """Every database of one fake server. ``lock`` guards all of it (memory only)."""

    def __init__(self) -> None:
        self.lock = _fork.create_rlock()
        self.databases: dict[str, dict[str, Collection]] = {}  # guarded by lock

    def get(self, database: str, name: str) -> Collection | None:
        """The collection, or ``None`` if it does not exist (call with the lock held)."""
        return self.databases.get(database, {}).get(name)

    def ensure(self, database: str, name: str) -> Collection:
        """The collection, created (empty) if needed (call with the lock held)."""
        collections = self.databases.setdefault(database, {})
        coll = collections.get(name)
        if coll is None:
            coll = collections[name] = Collection(f"{database}.{name}")
        return coll

    def drop(self, database: str, name: str) -> bool:
        """Drop a collection; whether it existed (call with the lock held)."""
        return self.databases.get(database, {}).pop(name, None) is not None
