"""``FakeMongoDB``: the MongoDB connector's API on in-memory collections.

The fake *is* the real connector's verb layer (``mongodb.verbs._Verbs``):
every verb checks its arguments exactly as ``MongoDBConnector`` does, then
runs against an in-memory stand-in for pymongo's ``Collection`` instead of a
server. Errors are raised as the pymongo exceptions a server would cause
(``DuplicateKeyError``, ``BulkWriteError``, ``OperationFailure`` with the
server's code and labels) and go through the real ``mongodb.errors``
translation, so a duplicate key is CONSTRAINT_VIOLATION with the same
``details``, an unknown stage QUERY_FAILED, a write conflict in a
transaction SERIALIZATION_FAILURE with the TransientTransactionError label.

What the fake leaves out (positional update operators, ``$expr``, ``$out``,
collations, text and geo queries, update pipelines) raises UNSUPPORTED, so
a test never passes on a silently wrong answer.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import types
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from dictamesh_connectors._compat import require
from dictamesh_connectors.base import Connector
from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.mongodb.config import MongoDBConfig
from dictamesh_connectors.mongodb.connector import (
    _DEFAULT_TX_DEADLINE,
    Transaction,
    _transaction_options,
)
from dictamesh_connectors.mongodb.documents import call_timeout, check_collection, seconds
from dictamesh_connectors.mongodb.errors import translate
from dictamesh_connectors.mongodb.verbs import Body, Document, DocumentStream, _Verbs
from dictamesh_connectors.testing.fakes._faults import FaultInjection, FaultPlan, fault_operations
from dictamesh_connectors.testing.fakes._mongo_pipeline import run_pipeline
from dictamesh_connectors.testing.fakes._mongo_query import (
    MISSING,
    MongoError,
    compile_filter,
    key_of,
    project,
    resolve,
    sort_documents,
    unsupported,
)
from dictamesh_connectors.testing.fakes._mongo_store import (
    Collection,
    DuplicateKey,
    Index,
    Store,
    index_name,
)
from dictamesh_connectors.testing.fakes._mongo_update import apply_update, upsert_seed

if TYPE_CHECKING:
    import bson
    import pymongo
else:
    pymongo = require("pymongo", extra="mongodb", connector="mongodb")
    require("pymongo.errors", extra="mongodb", connector="mongodb")
    require("pymongo.operations", extra="mongodb", connector="mongodb")
    bson = require("bson", extra="mongodb", connector="mongodb")
    require("bson.codec_options", extra="mongodb", connector="mongodb")

__all__ = ["FakeMongoDB", "FakeTransaction"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_UUID = {"unspecified": 0, "standard": 4, "pythonLegacy": 3, "javaLegacy": 5, "csharpLegacy": 6}
_TRANSIENT_TX = "TransientTransactionError"
_WRITE_CONFLICT = 112
_NOT_IN_TRANSACTION = 263  # OperationNotSupportedInTransaction


def _server_error(exc: MongoError, write: bool, labels: Sequence[str] = ()) -> Exception:
    """The pymongo exception a server answer with this error would raise."""
    details: Document = {"ok": 0.0, "errmsg": exc.message, "code": exc.code}
    if exc.code_name:
        details["codeName"] = exc.code_name
    if labels:
        details["errorLabels"] = list(labels)
    cls = pymongo.errors.WriteError if write else pymongo.errors.OperationFailure
    return cls(exc.message, exc.code, details)


def _duplicate(exc: DuplicateKey) -> Exception:
    details = exc.details()
    return pymongo.errors.DuplicateKeyError(details["errmsg"], details["code"], details)


class _Handle:
    """The fake's handle: which store and database it serves (closed on disconnect)."""

    __slots__ = ("closed", "database", "store")

    def __init__(self, store: Store, database: str) -> None:
        self.store = store
        self.database = database
        self.closed = False

    def __repr__(self) -> str:
        return f"<fake mongodb handle {self.database}>"


class _TxState:
    """A transaction's snapshot: collection copies, what it wrote, their base revisions."""

    __slots__ = ("copies", "revisions", "written")

    def __init__(self) -> None:
        self.copies: dict[str, Collection] = {}
        # name -> id key -> revision in the store when the snapshot was taken
        self.revisions: dict[str, dict[Any, int]] = {}
        self.written: dict[str, dict[Any, int | None]] = {}  # name -> id key -> that revision


def _exact(value: Any) -> bool:
    """An ``_id`` condition that is one value to look up (not operators, a regex or null)."""
    return value is not None and not isinstance(value, (Mapping, list, bson.Regex, re.Pattern))


def _result(**fields: Any) -> Any:
    return types.SimpleNamespace(acknowledged=True, **fields)


# ----------------------------------------------------------------- the view


class _View:
    """Stands in for pymongo's ``Collection`` under the real verbs (one per call).

    Each method first asks the fault plan (the call counts as an operation
    of the verb that made it), then works on the store under its lock, or
    on the transaction's snapshot.
    """

    def __init__(
        self, fake: FakeMongoDB, name: str, operation: str, tx: FakeTransaction | None
    ) -> None:
        self._fake = fake
        self._store = fake._store
        self._database = fake.config.database
        self._name = name
        self._operation = operation
        self._tx = tx
        self.codec_options = fake._codec

    # ------------------------------------------------------------ plumbing

    def _check(self, batch: int | None = None) -> int | None:
        return self._fake._faults.check(self._operation, batch_size=batch)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Collection | None]:
        with self._store.lock:  # the store: read what this call needs
            if self._tx is not None:
                yield self._tx._collection(self._name, create=False)
            else:
                yield self._store.get(self._database, self._name)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Collection]:
        with self._store.lock:  # the store: this call's whole change is atomic
            if self._tx is not None:
                coll = self._tx._collection(self._name, create=True)
                assert coll is not None
                yield coll
            else:
                yield self._store.ensure(self._database, self._name)

    def _wrote(self, coll: Collection, id_key: Any) -> None:
        if self._tx is not None:
            self._tx._wrote(self._name, coll, id_key)

    def _encode(self, doc: Mapping[str, Any]) -> Document:
        """A stored copy: through BSON, as a server would keep it (``_id`` first)."""
        opts = self.codec_options
        stored: Document = bson.decode(bson.encode(doc, codec_options=opts), codec_options=opts)
        if "_id" in stored and next(iter(stored)) != "_id":
            stored = {"_id": stored.pop("_id"), **stored}
        return stored

    def _hint(self, coll: Collection | None, hint: Any) -> None:
        if hint is None:
            return
        names = set() if coll is None else set(coll.indexes)
        keys = [] if coll is None else [list(ix.keys) for ix in coll.indexes.values()]
        if isinstance(hint, str):
            if hint in names:
                return
        else:
            spec = list(hint.items()) if isinstance(hint, Mapping) else [tuple(h) for h in hint]
            if spec in keys:
                return
        raise MongoError(2, "hint provided does not correspond to an existing index", "BadValue")

    def _matching(self, coll: Collection | None, filter: Mapping[str, Any]) -> list[Document]:
        # The filter is checked before anything is read: a bad operator is an
        # error even on a missing collection, as on a server.
        test = compile_filter(filter)
        if coll is None:
            return []
        if set(filter) == {"_id"} and _exact(filter["_id"]):
            doc = coll.docs.get(key_of(filter["_id"]))
            return [] if doc is None else [doc]
        return [doc for doc in coll.docs.values() if test(doc)]

    # --------------------------------------------------------------- reads

    def find(
        self,
        session: Any = None,
        *,
        filter: Mapping[str, Any],
        projection: Any = None,
        sort: Any = None,
        limit: int = 0,
        skip: int = 0,
        hint: Any = None,
        max_time_ms: int | None = None,
        batch_size: int | None = None,
    ) -> Iterator[Document]:
        self._check()
        return self._batches(self._find(filter, projection, sort, limit, skip, hint), batch_size)

    def _batches(self, docs: list[Document], batch_size: int | None) -> Iterator[Document]:
        """The documents of a cursor; each batch after the first is a ``getMore``.

        ``fail_next("getMore", ...)`` makes a stream fail between two
        batches, as a server cursor can (a lost connection, a killed cursor).
        """
        if not batch_size:
            return iter(docs)
        return _cursor(self._fake, docs, batch_size)

    def _find(
        self,
        filter: Mapping[str, Any],
        projection: Any,
        sort: Any,
        limit: int,
        skip: int,
        hint: Any,
    ) -> list[Document]:
        try:
            with self._read() as coll:
                self._hint(coll, hint)
                docs = self._matching(coll, filter)
                if sort:
                    docs = sort_documents(docs, sort)
                docs = docs[skip:]
                if limit:
                    docs = docs[:limit]
                return [project(copy.deepcopy(doc), projection) for doc in docs]
        except MongoError as exc:
            raise _server_error(exc, write=False) from None

    def find_one(
        self, filter: Mapping[str, Any] | None = None, session: Any = None, **find: Any
    ) -> Document | None:
        """pymongo's ``find_one(filter=None, *args, **kwargs)``: the filter may be positional."""
        self._check()
        docs = self._find(
            {} if filter is None else filter,
            find.get("projection"),
            find.get("sort"),
            1,
            find.get("skip", 0),
            find.get("hint"),
        )
        return docs[0] if docs else None

    def count_documents(
        self,
        filter: Mapping[str, Any],
        session: Any = None,
        *,
        limit: int = 0,
        skip: int = 0,
        hint: Any = None,
        maxTimeMS: int | None = None,
    ) -> int:
        self._check()
        try:
            with self._read() as coll:
                self._hint(coll, hint)
                count = max(0, len(self._matching(coll, filter)) - skip)
        except MongoError as exc:
            raise _server_error(exc, write=False) from None
        return min(count, limit) if limit else count

    def distinct(
        self,
        key: str,
        filter: Mapping[str, Any],
        session: Any = None,
        *,
        maxTimeMS: int | None = None,
    ) -> list[Any]:
        self._check()
        try:
            with self._read() as coll:
                values: list[Any] = []
                seen: set[Any] = set()
                for doc in self._matching(coll, filter):
                    for value in resolve(doc, key):
                        items = value if isinstance(value, list) else [value]
                        for item in items:
                            if item is MISSING:
                                continue
                            k = key_of(item)
                            if k not in seen:
                                seen.add(k)
                                values.append(copy.deepcopy(item))
        except MongoError as exc:
            raise _server_error(exc, write=False) from None
        return [d["v"] for d in sort_documents([{"v": v} for v in values], [("v", 1)])]

    def aggregate(
        self,
        pipeline: list[Mapping[str, Any]],
        session: Any = None,
        *,
        maxTimeMS: int | None = None,
        allowDiskUse: bool | None = None,
        batchSize: int | None = None,
    ) -> Iterator[Document]:
        self._check()
        try:
            with self._read() as coll:
                docs = copy.deepcopy(list(coll.docs.values())) if coll is not None else []
                return self._batches(run_pipeline(docs, pipeline, self._lookup), batchSize)
        except MongoError as exc:
            raise _server_error(exc, write=False) from None

    def _lookup(self, name: str) -> list[Document]:
        # Called with the store lock held (inside aggregate's read).
        if self._tx is not None:
            coll = self._tx._collection(name, create=False)
        else:
            coll = self._store.get(self._database, name)
        return [] if coll is None else list(coll.docs.values())

    # -------------------------------------------------------------- writes

    def _new_id(self, document: Mapping[str, Any]) -> Any:
        if "_id" in document:
            return document["_id"]
        new_id = bson.ObjectId()
        if isinstance(document, dict):
            document["_id"] = new_id  # as pymongo does: the caller's mapping gets it
        return new_id

    def insert_one(self, document: Mapping[str, Any], session: Any = None) -> Any:
        self._check()
        new_id = self._new_id(document)
        stored = self._encode({"_id": new_id, **document})
        try:
            with self._write() as coll:
                coll.insert(stored)
                self._wrote(coll, key_of(new_id))
        except DuplicateKey as exc:
            raise _duplicate(exc) from None
        return _result(inserted_id=new_id)

    def insert_many(
        self, documents: list[Mapping[str, Any]], ordered: bool = True, session: Any = None
    ) -> Any:
        applied = self._check(batch=len(documents))
        ids = [self._new_id(doc) for doc in documents]
        stored = [self._encode({"_id": i, **d}) for i, d in zip(ids, documents, strict=True)]
        errors: list[Document] = []
        limit = len(stored) if applied is None else applied
        inserted = 0
        with self._write() as coll:
            for position, doc in enumerate(stored[:limit]):
                try:
                    coll.insert(doc)
                except DuplicateKey as exc:
                    errors.append({**exc.details(position), "op": copy.deepcopy(doc)})
                    if ordered:
                        break
                    continue
                inserted += 1
                self._wrote(coll, key_of(doc["_id"]))
        if errors:
            raise pymongo.errors.BulkWriteError(_bulk_details(errors, inserted=inserted))
        if applied is not None:
            raise self._fake._faults.partial_error(self._operation, applied, len(documents))
        return _result(inserted_ids=ids)

    def _update_docs(
        self,
        coll: Collection,
        filter: Mapping[str, Any],
        change: Callable[[Document, bool], Document],
        *,
        many: bool,
        upsert: bool,
        sort: Any = None,
    ) -> tuple[int, int, Any, Document | None, Document | None]:
        """Apply ``change`` to the matches: (matched, modified, upserted id, before, after)."""
        docs = self._matching(coll, filter)
        if sort:
            docs = sort_documents(docs, sort)
        if not many:
            docs = docs[:1]
        if not docs:
            if not upsert:
                return 0, 0, None, None, None
            seed = upsert_seed(filter)
            new = change(seed, True)
            if "_id" not in new:
                new = {"_id": bson.ObjectId(), **new}
            stored = self._encode(new)
            coll.insert(stored)
            self._wrote(coll, key_of(stored["_id"]))
            return 0, 0, stored["_id"], None, stored
        modified = 0
        before = after = None
        for doc in docs:
            id_key = key_of(doc["_id"])
            new = self._encode(change(copy.deepcopy(doc), False))
            before, after = doc, new
            if bson.encode(new) == bson.encode(doc):
                continue
            coll.replace(id_key, new)
            self._wrote(coll, id_key)
            modified += 1
        return len(docs), modified, None, before, after

    def _update(
        self,
        filter: Mapping[str, Any],
        update: Any,
        *,
        many: bool,
        upsert: bool,
        array_filters: Any,
        hint: Any,
    ) -> Any:
        self._check()
        change = _updater(update, array_filters)
        try:
            with self._write() as coll:
                self._hint(coll, hint)
                matched, modified, upserted, _, _ = self._update_docs(
                    coll, filter, change, many=many, upsert=upsert
                )
        except MongoError as exc:
            raise _server_error(exc, write=True) from None
        except DuplicateKey as exc:
            raise _duplicate(exc) from None
        return _result(matched_count=matched, modified_count=modified, upserted_id=upserted)

    def update_one(
        self,
        filter: Mapping[str, Any],
        update: Any,
        session: Any = None,
        *,
        upsert: bool = False,
        array_filters: Any = None,
        hint: Any = None,
    ) -> Any:
        return self._update(
            filter, update, many=False, upsert=upsert, array_filters=array_filters, hint=hint
        )

    def update_many(
        self,
        filter: Mapping[str, Any],
        update: Any,
        session: Any = None,
        *,
        upsert: bool = False,
        array_filters: Any = None,
        hint: Any = None,
    ) -> Any:
        return self._update(
            filter, update, many=True, upsert=upsert, array_filters=array_filters, hint=hint
        )

    def replace_one(
        self,
        filter: Mapping[str, Any],
        replacement: Mapping[str, Any],
        session: Any = None,
        *,
        upsert: bool = False,
        hint: Any = None,
    ) -> Any:
        self._check()
        try:
            with self._write() as coll:
                self._hint(coll, hint)
                matched, modified, upserted, _, _ = self._update_docs(
                    coll, filter, _replacer(replacement), many=False, upsert=upsert
                )
        except MongoError as exc:
            raise _server_error(exc, write=True) from None
        except DuplicateKey as exc:
            raise _duplicate(exc) from None
        return _result(matched_count=matched, modified_count=modified, upserted_id=upserted)

    def _delete(self, filter: Mapping[str, Any], many: bool, hint: Any) -> Any:
        self._check()
        try:
            with self._write() as coll:
                self._hint(coll, hint)
                docs = self._matching(coll, filter)
                if not many:
                    docs = docs[:1]
                for doc in docs:
                    id_key = key_of(doc["_id"])
                    coll.delete(id_key)
                    self._wrote(coll, id_key)
        except MongoError as exc:
            raise _server_error(exc, write=True) from None
        return _result(deleted_count=len(docs))

    def delete_one(
        self, filter: Mapping[str, Any], session: Any = None, *, hint: Any = None
    ) -> Any:
        return self._delete(filter, False, hint)

    def delete_many(
        self, filter: Mapping[str, Any], session: Any = None, *, hint: Any = None
    ) -> Any:
        return self._delete(filter, True, hint)

    def find_one_and_update(
        self,
        filter: Mapping[str, Any],
        update: Any,
        session: Any = None,
        *,
        upsert: bool = False,
        return_document: bool = False,
        projection: Any = None,
        sort: Any = None,
    ) -> Document | None:
        self._check()
        change = _updater(update, None)
        try:
            with self._write() as coll:
                _, _, _, before, after = self._update_docs(
                    coll, filter, change, many=False, upsert=upsert, sort=sort
                )
                found = after if return_document else before
                return None if found is None else project(copy.deepcopy(found), projection)
        except MongoError as exc:
            raise _server_error(exc, write=True) from None
        except DuplicateKey as exc:
            raise _duplicate(exc) from None

    def bulk_write(self, requests: list[Any], ordered: bool = True, session: Any = None) -> Any:
        applied = self._check(batch=len(requests))
        ops = pymongo.operations
        counts = {"inserted": 0, "matched": 0, "modified": 0, "deleted": 0, "upserted": 0}
        upserted_ids: dict[int, Any] = {}
        errors: list[Document] = []
        limit = len(requests) if applied is None else applied
        with self._write() as coll:
            for position, request in enumerate(requests[:limit]):
                try:
                    self._bulk_one(coll, position, request, ops, counts, upserted_ids)
                except DuplicateKey as exc:
                    errors.append(exc.details(position))
                except MongoError as exc:
                    errors.append({"index": position, "code": exc.code, "errmsg": exc.message})
                else:
                    continue
                if ordered:
                    break
        if errors:
            raise pymongo.errors.BulkWriteError(
                _bulk_details(errors, upserted_ids=upserted_ids, **counts)
            )
        if applied is not None:
            raise self._fake._faults.partial_error(self._operation, applied, len(requests))
        return _result(
            inserted_count=counts["inserted"],
            matched_count=counts["matched"],
            modified_count=counts["modified"],
            deleted_count=counts["deleted"],
            upserted_count=counts["upserted"],
            upserted_ids=upserted_ids,
        )

    def _bulk_one(
        self,
        coll: Collection,
        position: int,
        request: Any,
        ops: Any,
        counts: dict[str, int],
        upserted_ids: dict[int, Any],
    ) -> None:
        if isinstance(request, ops.InsertOne):
            doc = request._doc
            new_id = self._new_id(doc)
            stored = self._encode({"_id": new_id, **doc})
            coll.insert(stored)
            self._wrote(coll, key_of(new_id))
            counts["inserted"] += 1
            return
        if isinstance(request, (ops.DeleteOne, ops.DeleteMany)):
            docs = self._matching(coll, request._filter)
            if isinstance(request, ops.DeleteOne):
                docs = docs[:1]
            for doc in docs:
                id_key = key_of(doc["_id"])
                coll.delete(id_key)
                self._wrote(coll, id_key)
            counts["deleted"] += len(docs)
            return
        if isinstance(request, ops.ReplaceOne):
            change = _replacer(request._doc)
            many = False
        else:
            change = _updater(request._doc, request._array_filters)
            many = isinstance(request, ops.UpdateMany)
        matched, modified, upserted, _, _ = self._update_docs(
            coll, request._filter, change, many=many, upsert=bool(request._upsert)
        )
        counts["matched"] += matched
        counts["modified"] += modified
        if upserted is not None:
            counts["upserted"] += 1
            upserted_ids[position] = upserted

    # ------------------------------------------------------------- indexes

    def create_index(
        self,
        keys: list[tuple[str, Any]],
        session: Any = None,
        *,
        unique: bool = False,
        name: str | None = None,
        sparse: bool = False,
        expireAfterSeconds: int | None = None,
        partialFilterExpression: Mapping[str, Any] | None = None,
    ) -> str:
        self._check()
        self._not_in_transaction("createIndexes")
        for _, direction in keys:
            if direction not in (1, -1) or isinstance(direction, bool):
                raise _server_error(unsupported("an index that is not ascending/descending"), True)
        index = Index(
            name=name or index_name(keys),
            keys=tuple(keys),
            unique=unique,
            sparse=sparse,
            expire_after=expireAfterSeconds,
            partial_filter=copy.deepcopy(dict(partialFilterExpression))
            if partialFilterExpression is not None
            else None,
        )
        try:
            with self._write() as coll:
                return coll.add_index(index)
        except MongoError as exc:
            raise _server_error(exc, write=False) from None
        except DuplicateKey as exc:
            raise _duplicate(exc) from None

    def drop_index(self, name: str, session: Any = None) -> None:
        self._check()
        self._not_in_transaction("dropIndexes")
        try:
            with self._store.lock:  # the store
                coll = self._store.get(self._database, self._name)
                if coll is None:
                    raise MongoError(
                        26, f"ns not found {self._database}.{self._name}", "NamespaceNotFound"
                    )
                coll.drop_index(name)
        except MongoError as exc:
            raise _server_error(exc, write=False) from None

    def list_indexes(self, session: Any = None) -> list[Document]:
        self._check()
        with self._read() as coll:
            if coll is None:
                return []
            return [index.describe() for index in coll.indexes.values()]

    def drop(self, session: Any = None) -> None:
        self._check()
        self._not_in_transaction("drop")
        with self._store.lock:  # the store
            self._store.drop(self._database, self._name)

    def _not_in_transaction(self, command: str) -> None:
        if self._tx is not None:
            raise _server_error(
                MongoError(
                    _NOT_IN_TRANSACTION,
                    f"Cannot run '{command}' in a multi-document transaction (FakeMongoDB)",
                    "OperationNotSupportedInTransaction",
                ),
                write=False,
            )


def _bulk_details(
    errors: list[Document],
    *,
    inserted: int = 0,
    matched: int = 0,
    modified: int = 0,
    deleted: int = 0,
    upserted: int = 0,
    upserted_ids: Mapping[int, Any] | None = None,
) -> Document:
    return {
        "writeErrors": errors,
        "writeConcernErrors": [],
        "nInserted": inserted,
        "nUpserted": upserted,
        "nMatched": matched,
        "nModified": modified,
        "nRemoved": deleted,
        "upserted": [{"index": i, "_id": v} for i, v in (upserted_ids or {}).items()],
    }


def _updater(update: Any, array_filters: Any) -> Callable[[Document, bool], Document]:
    if isinstance(update, list):
        raise _server_error(unsupported("an update pipeline"), write=True)
    if array_filters:
        raise _server_error(unsupported("array_filters"), write=True)

    def change(doc: Document, inserting: bool) -> Document:
        apply_update(doc, update, inserting=inserting)
        return doc

    return change


def _replacer(replacement: Mapping[str, Any]) -> Callable[[Document, bool], Document]:
    def change(doc: Document, inserting: bool) -> Document:
        new = copy.deepcopy(dict(replacement))
        if "_id" in doc:
            if "_id" in new and key_of(new["_id"]) != key_of(doc["_id"]):
                if not inserting:
                    raise MongoError(
                        66,
                        "After applying the update, the (immutable) field '_id' was found "
                        "to have been altered",
                        "ImmutableField",
                    )
            else:
                new = {"_id": doc["_id"], **new}
        return new

    return change


# ------------------------------------------------------------ transactions


class FakeTransaction(Transaction):
    """A transaction of ``FakeMongoDB``: the verbs on a private snapshot, applied on commit.

    It is a ``mongodb.Transaction`` (every verb, ``is_active``). Reads see
    the collections as they were when the transaction first touched them,
    plus its own writes; nothing is visible to others before the commit. A
    document another writer changed after the snapshot makes the write (or
    the commit) fail with WriteConflict: SERIALIZATION_FAILURE, transient,
    RETRY_TRANSACTION, labelled TransientTransactionError, as on a server.
    Not thread-safe, like the real one.

    Example::

        with db.transaction() as tx:
            tx.insert_one("orders", {"_id": 1})
            tx.update_one("stock", {"_id": "apple"}, {"$inc": {"n": -1}})
    """

    def __init__(self, fake: FakeMongoDB, handle: _Handle) -> None:
        self._fake = fake
        self._handle = handle  # type: ignore[assignment]
        self._session = None  # type: ignore[assignment]
        self._target = fake._target
        self._active = True
        self._state = _TxState()

    def _check(self) -> Any:
        if not self._active:
            return super()._check()
        return None

    def _collection(self, name: str, *, create: bool) -> Collection | None:
        """The snapshot of ``name`` (taken on first touch; call with the store lock held)."""
        state = self._state
        coll = state.copies.get(name)
        if coll is not None:
            return coll
        base = self._fake._store.get(self._fake.config.database, name)
        if base is None:
            if not create:
                return None
            coll = Collection(f"{self._fake.config.database}.{name}")
            state.revisions[name] = {}
        else:
            coll = base.clone()
            state.revisions[name] = dict(base.revisions)
        state.copies[name] = coll
        return coll

    def _current_revision(self, name: str, id_key: Any) -> int | None:
        base = self._fake._store.get(self._fake.config.database, name)
        return None if base is None else base.revisions.get(id_key)

    def _wrote(self, name: str, coll: Collection, id_key: Any) -> None:
        """Record a write of ``id_key``: WriteConflict if another writer changed it since."""
        written = self._state.written.setdefault(name, {})
        if id_key in written:
            return
        snapshot = self._state.revisions[name].get(id_key)
        if self._current_revision(name, id_key) != snapshot:
            raise _write_conflict()
        written[id_key] = snapshot

    def _commit(self) -> None:
        """Apply the snapshot's writes to the store, or raise WriteConflict (nothing applied)."""
        store = self._fake._store
        database = self._fake.config.database
        state = self._state
        with store.lock:  # the store: the whole commit is atomic
            for name, written in state.written.items():
                for id_key, revision in written.items():
                    if self._current_revision(name, id_key) != revision:
                        raise _write_conflict()
            for name, written in state.written.items():
                copy_ = state.copies[name]
                base = store.ensure(database, name)
                for id_key in written:
                    doc = copy_.docs.get(id_key)
                    if doc is None:
                        if id_key in base.docs:
                            base.delete(id_key)
                    elif id_key in base.docs:
                        base.replace(id_key, doc)
                    else:
                        base.insert(doc)

    def _call(
        self,
        operation: str,
        name: str,
        body: Body[T],
        write: bool,
        retried: bool,
        timeout: float | None,
        session: Transaction | None,
    ) -> T:
        if session is not None and session is not self:
            raise TypeError("a verb of a Transaction cannot run in another session")
        call_timeout(timeout)
        self._check()
        check_collection(name)
        with translate(operation, self._target, write=write, in_transaction=True):
            return body(_View(self._fake, name, operation, self), None)  # type: ignore[arg-type]

    def _open_stream(
        self,
        operation: str,
        name: str,
        open_cursor: Callable[[Any, Any], Any],
        timeout: float | None,
        session: Transaction | None,
    ) -> DocumentStream:
        if session is not None and session is not self:
            raise TypeError("a verb of a Transaction cannot run in another session")
        self._check()
        call_timeout(timeout)
        check_collection(name)
        with translate(operation, self._target, in_transaction=True):
            cursor = open_cursor(_View(self._fake, name, operation, self), None)
        return DocumentStream(_in_transaction(cursor, translate(operation, self._target)))

    def __repr__(self) -> str:
        state = "active" if self._active else "finished"
        return f"<FakeTransaction {state} on {self._target}>"


def _write_conflict() -> Exception:
    return _server_error(
        MongoError(
            _WRITE_CONFLICT,
            "Write conflict during plan execution and yielding is disabled.",
            "WriteConflict",
        ),
        write=True,
        labels=(_TRANSIENT_TX,),
    )


def _in_transaction(
    cursor: Iterator[Document], translator: translate
) -> Generator[Document, None, None]:
    while True:
        with translator:
            doc = next(cursor, None)
        if doc is None:
            return
        yield doc


# -------------------------------------------------------------- the fake


class FakeMongoDB(FaultInjection, _Verbs, Connector[MongoDBConfig, _Handle]):
    """``MongoDBConnector``'s API on in-memory collections, for unit tests without a server.

    Every verb of the real connector (``insert_one`` ... ``aggregate``,
    ``stream``, ``transaction``, ``run_in_transaction``, ``execute``) with
    the same arguments, checks, return values and ``ConnectorError`` codes;
    the lifecycle, in-flight accounting, ``stats()``, events and fork
    handling are the base class's. Data lives as long as the fake (it
    survives ``disconnect()``/``connect()``, like a server's); ``reset()``
    forgets it.

    Faults: ``fake.fail_next("insert_one", code=ErrorCode.TIMEOUT)``,
    ``fake.set_latency("query", 0.05)``; a ``partial=`` fault on
    ``insert_many`` or ``bulk_write`` applies that many documents, then
    raises with ``maybe_applied=True``; ``fail_next("getMore")`` fails a
    ``stream`` between two batches. A programmed fault is what the real
    connector would finally raise (after pymongo's own retry), so it is not
    retried again.

    Thread safety: as the real connector; one store lock makes each
    operation atomic, and no lock is held during an injected latency.

    Example::

        from dictamesh_connectors.testing.fakes import FakeMongoDB

        with FakeMongoDB() as db:
            db.insert_one("users", {"_id": 1, "name": "Ada"})
            assert db.find_one("users", {"name": "Ada"}) == {"_id": 1, "name": "Ada"}

    Args:
        config: A ``MongoDBConfig``, a ``mongodb://`` URL, or nothing (the
            ``test`` database); nothing is ever contacted.
    """

    name: ClassVar[str] = "mongodb"
    config_class: ClassVar[type[MongoDBConfig]] = MongoDBConfig

    def __init__(self, config: MongoDBConfig | str | None = None) -> None:
        """Prepare a DISCONNECTED fake with an empty store (no I/O).

        Raises:
            InvalidConfigError: ``config`` is not a valid config or URL.
        """
        if config is None:
            config = MongoDBConfig()
        elif isinstance(config, str):
            config = MongoDBConfig.from_url(config)
        super().__init__(config)
        self._target = config.target
        self._store = Store()
        self._faults = FaultPlan(
            self.name, operations=fault_operations(type(self), "commit", "getMore")
        )
        self._codec: bson.codec_options.CodecOptions[Document] = bson.codec_options.CodecOptions(
            tz_aware=config.tz_aware, uuid_representation=_UUID[config.uuid_representation]
        )

    def reset(self) -> None:
        """Forget every database, collection and index (the programmed faults stay)."""
        with self._store.lock:  # the store
            self._store.databases.clear()

    # --------------------------------------------------------------- hooks

    def _open(self) -> _Handle:
        self._faults.check("connect")
        return _Handle(self._store, self.config.database)

    def _close(self, handle: _Handle, timeout: float | None) -> None:
        handle.closed = True

    def _ping(self, handle: _Handle, timeout: float | None) -> None:
        self._faults.check("ping")

    def _translate_errors(self) -> contextlib.AbstractContextManager[None]:
        return translate("connect", self._target)

    def _on_connection_lost(self, handle: _Handle, error: ConnectorError) -> None:
        # As the real connector: pymongo's pool heals itself, the client stays.
        logger.debug("mongodb (fake): connection lost (%s)", error.code.value)

    # ------------------------------------------------------------ plumbing

    def _call(
        self,
        operation: str,
        name: str,
        body: Body[T],
        write: bool,
        retried: bool,
        timeout: float | None,
        session: Transaction | None,
    ) -> T:
        if session is not None:
            if not isinstance(session, FakeTransaction):
                raise TypeError(f"session must be a Transaction, not {type(session).__name__}")
            return session._call(operation, name, body, write, retried, timeout, session)
        check_collection(name)
        call_timeout(timeout)
        translator = translate(operation, self._target, write=write, retried=retried)
        with self._use(operation), translator:
            return body(_View(self, name, operation, None), None)  # type: ignore[arg-type]

    def _open_stream(
        self,
        operation: str,
        name: str,
        open_cursor: Callable[[Any, Any], Any],
        timeout: float | None,
        session: Transaction | None,
    ) -> DocumentStream:
        if session is not None:
            if not isinstance(session, FakeTransaction):
                raise TypeError(f"session must be a Transaction, not {type(session).__name__}")
            return session._open_stream(operation, name, open_cursor, timeout, session)
        check_collection(name)
        call_timeout(timeout)
        return DocumentStream(_stream(self, name, operation, open_cursor))

    def execute(
        self,
        command: str | Mapping[str, Any],
        *,
        database: str | None = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> Document:
        """Run a database command and return its reply (a small set of commands).

        Supported: ``ping``, ``hello``/``isMaster``, ``buildInfo``,
        ``listCollections``, ``create``, ``drop``, ``count``,
        ``dropDatabase``, ``dbStats``. Any other command fails as an unknown
        command does on a server (59, UNSUPPORTED).

        Raises:
            TypeError: ``command`` is neither a str nor a mapping.
            ConnectorError: The command failed (classified by code).
        """
        if not isinstance(command, (str, Mapping)):
            raise TypeError(f"a command is a str or a mapping, not {type(command).__name__}")
        if isinstance(command, Mapping) and not command:
            raise TypeError("a command mapping cannot be empty")
        call_timeout(timeout)
        if session is not None and not isinstance(session, FakeTransaction):
            raise TypeError(f"session must be a Transaction, not {type(session).__name__}")
        cmd: dict[str, Any] = {command: 1} if isinstance(command, str) else dict(command)
        db_name = self.config.database if database is None else database
        translator = translate(
            "execute", self._target, write=True, in_transaction=session is not None
        )
        if session is not None:
            session._check()
            with translator:
                self._faults.check("execute")
                return self._command(db_name, cmd)
        with self._use("execute"), translator:
            self._faults.check("execute")
            return self._command(db_name, cmd)

    def _command(self, database: str, cmd: dict[str, Any]) -> Document:
        name = next(iter(cmd))
        arg = cmd[name]
        store = self._store
        try:
            with store.lock:  # the store
                if name == "ping":
                    return {"ok": 1.0}
                if name in ("hello", "isMaster", "ismaster"):
                    return {"isWritablePrimary": True, "ismaster": True, "ok": 1.0}
                if name == "buildInfo" or name == "buildinfo":
                    return {"version": "7.0.0-fake", "ok": 1.0}
                collections = store.databases.get(database, {})
                if name == "listCollections":
                    batch = [{"name": n, "type": "collection"} for n in sorted(collections)]
                    return {
                        "cursor": {"id": 0, "ns": f"{database}.$cmd.listCollections",
                                   "firstBatch": batch},
                        "ok": 1.0,
                    }  # fmt: skip
                if name == "create":
                    check_collection(arg)
                    if arg in collections:
                        raise MongoError(48, f"Collection {database}.{arg} already exists.",
                                         "NamespaceExists")  # fmt: skip
                    store.ensure(database, arg)
                    return {"ok": 1.0}
                if name == "drop":
                    if not store.drop(database, arg):
                        raise MongoError(26, "ns not found", "NamespaceNotFound")
                    return {"ns": f"{database}.{arg}", "ok": 1.0}
                if name == "count":
                    coll = collections.get(arg)
                    test = compile_filter(cmd.get("query") or {})
                    n = 0 if coll is None else sum(1 for d in coll.docs.values() if test(d))
                    return {"n": n, "ok": 1.0}
                if name == "dropDatabase":
                    store.databases.pop(database, None)
                    return {"ok": 1.0}
                if name == "dbStats":
                    objects = sum(len(c.docs) for c in collections.values())
                    return {"db": database, "collections": len(collections), "objects": objects,
                            "ok": 1.0}  # fmt: skip
        except MongoError as exc:
            raise _server_error(exc, write=False) from None
        raise _server_error(
            MongoError(59, f"no such command: '{name}'", "CommandNotFound"), write=False
        )

    # ------------------------------------------------------- transactions

    @contextlib.contextmanager
    def transaction(
        self,
        *,
        read_concern: str | None = None,
        write_concern: Mapping[str, Any] | None = None,
        read_preference: str | None = None,
        max_commit_time: float | None = None,
    ) -> Iterator[Transaction]:
        """Open a transaction: commit when the block ends, abort (discard) on an exception.

        Raises:
            InvalidConfigError: A bad option.
            NotConnectedError: The fake is not connected.
            ConnectorError: The commit met a write conflict
                (SERIALIZATION_FAILURE, RETRY_TRANSACTION).
        """
        _transaction_options(read_concern, write_concern, read_preference, max_commit_time)
        with self._use("transaction") as handle:
            with translate("transaction", self._target):
                self._faults.check("transaction")
            tx = FakeTransaction(self, handle)
            try:
                yield tx
            except BaseException:
                tx._active = False
                raise
            tx._active = False
            with translate("commit", self._target, write=True, commit=True):
                self._faults.check("commit")
                tx._commit()

    def run_in_transaction(
        self,
        fn: Callable[[Transaction], T],
        *,
        read_concern: str | None = None,
        write_concern: Mapping[str, Any] | None = None,
        max_commit_time: float | None = None,
        deadline: float | None = None,
    ) -> T:
        """Run ``fn(tx)`` in a transaction, rerun on TransientTransactionError (as the real one).

        Waits between reruns follow the config's retry policy, with the
        fake's ``_sleep``/``_rand`` (tests may replace them).

        Raises:
            ConnectorError: The last error once the deadline passed, or any
                error without that label at once.
        """
        _transaction_options(read_concern, write_concern, None, max_commit_time)
        limit = _DEFAULT_TX_DEADLINE if deadline is None else seconds(deadline, "deadline")
        policy = self.config.retry
        start = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.transaction(
                    read_concern=read_concern,
                    write_concern=write_concern,
                    max_commit_time=max_commit_time,
                ) as tx:
                    result = fn(tx)
                return result
            except ConnectorError as err:
                if _TRANSIENT_TX not in err.details.get("labels", ()):
                    raise
                wait = policy.delay(attempt, self._rand())
                if self._clock() - start + wait >= limit:
                    raise
                logger.warning(
                    "mongodb: transaction on %s failed (attempt %d, %s, "
                    "TransientTransactionError); rerunning in %.3fs",
                    self._target,
                    attempt,
                    err.code.value,
                    wait,
                )
                self._sleep(wait)


def _stream(
    fake: FakeMongoDB, name: str, operation: str, open_cursor: Callable[[Any, Any], Any]
) -> Generator[Document, None, None]:
    # As the real stream: the operation opens (and counts as in flight) on
    # the first next() and ends when the stream is exhausted or closed.
    translator = translate(operation, fake._target)
    with fake._use(operation):
        with translator:
            cursor = open_cursor(_View(fake, name, operation, None), None)
        while True:
            with translator:  # a getMore fault is translated as the real one is
                doc = next(cursor, None)
            if doc is None:
                return
            yield doc


def _cursor(fake: FakeMongoDB, docs: list[Document], batch_size: int) -> Iterator[Document]:
    for index, doc in enumerate(docs):
        if index and index % batch_size == 0:
            fake._faults.check("getMore")
        yield doc
