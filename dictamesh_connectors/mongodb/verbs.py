"""The verbs of the MongoDB connector, shared by ``MongoDBConnector`` and ``Transaction``.

Each verb checks its arguments (before any I/O), builds one closure over
pymongo's ``Collection`` method and hands it to ``_call``, which the
connector and the transaction implement: the connector registers an
in-flight operation, the transaction binds its session. Results come back
as plain values (ids, counts, documents), never pymongo result objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping, MutableMapping, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar

from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import (
    ErrorCode,
    ErrorRule,
    InvalidConfigError,
    RetryHint,
    build_error,
)
from dictamesh_connectors.mongodb.documents import (
    MAX_DOCUMENT_BYTES,
    BulkResult,
    UpdateResult,
    bad_request,
    check_filter,
    check_insert,
    check_replacement,
    check_update,
    flag,
    key_spec,
    max_time_ms,
    seconds,
    sort_spec,
    wrong_type,
)
from dictamesh_connectors.mongodb.errors import translate

if TYPE_CHECKING:
    import bson
    import pymongo
    from bson.objectid import ObjectId
    from bson.raw_bson import RawBSONDocument
    from pymongo.client_session import ClientSession
    from pymongo.collection import Collection
    from pymongo.cursor import Cursor

    from dictamesh_connectors.mongodb.connector import Transaction
else:
    pymongo = require("pymongo", extra="mongodb", connector="mongodb")
    require("pymongo.operations", extra="mongodb", connector="mongodb")
    bson = require("bson", extra="mongodb", connector="mongodb")
    ObjectId = require("bson.objectid", extra="mongodb", connector="mongodb").ObjectId
    RawBSONDocument = require("bson.raw_bson", extra="mongodb", connector="mongodb").RawBSONDocument

__all__ = ["Document", "DocumentStream"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Document = dict[str, Any]
Body = Callable[["Collection[Document]", "ClientSession | None"], T]

_RETURN_DOCUMENT = {"before": False, "after": True}
_TOO_LARGE = ErrorRule(ErrorCode.PAYLOAD_TOO_LARGE, False, RetryHint.NONE)

# --------------------------------------------------------------------- verbs


class _Verbs:
    """The verbs, shared by the connector and ``Transaction``.

    Subclasses supply ``_call`` (run ``body(collection, session)`` as one
    translated operation) and ``_open_stream``.
    """

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
        raise NotImplementedError

    def _open_stream(
        self,
        operation: str,
        name: str,
        open_cursor: Callable[[Collection[Document], ClientSession | None], Any],
        timeout: float | None,
        session: Transaction | None,
    ) -> DocumentStream:
        raise NotImplementedError

    # ------------------------------------------------------------- reads

    def query(
        self,
        collection: str,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | Sequence[str] | None = None,
        sort: Any = None,
        limit: int = 0,
        skip: int = 0,
        hint: Any = None,
        max_time: float | None = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> list[Document]:
        """Find the documents matching ``filter`` and return them all as a list.

        Args:
            collection: The collection name.
            filter: A query document (``None`` matches everything).
            projection: Fields to return (a mapping, or a list of names).
            sort: A field name, ``[(field, 1 | -1), ...]`` or a mapping.
            limit: At most this many documents (0: no limit).
            skip: Skip this many first.
            hint: An index name or key specification to use.
            max_time: Seconds the server may spend (``maxTimeMS``).
            timeout: Seconds for the whole call, client side (pymongo's
                ``timeout()``: server selection, network and ``maxTimeMS``).
            session: A ``Transaction`` to run in.

        Raises:
            ArgumentTypeError: ``filter`` is not a mapping, or a bad ``sort``.
            ConnectorTimeoutError: ``max_time`` or ``timeout`` ran out.
            ConnectorError: The query failed (classified by ``errors.py``).
        """
        find = _find_args(filter, projection, sort, limit, skip, hint, max_time)

        def body(coll: Collection[Document], s: ClientSession | None) -> list[Document]:
            return list(coll.find(session=s, **find))

        return self._call("query", collection, body, False, False, timeout, session)

    def stream(
        self,
        collection: str,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | Sequence[str] | None = None,
        sort: Any = None,
        limit: int = 0,
        skip: int = 0,
        hint: Any = None,
        max_time: float | None = None,
        batch_size: int = 1000,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> DocumentStream:
        """Iterate the documents matching ``filter`` over a server cursor.

        At most ``batch_size`` documents are held in memory at once. The
        cursor is closed (``killCursors``) when the stream is exhausted,
        closed, used as a context manager, or abandoned. Arguments as for
        ``query``; ``timeout`` bounds each round trip (the first batch and
        every ``getMore``).

        Raises:
            ArgumentTypeError: ``filter`` is not a mapping, or a bad ``sort``.
            InvalidConfigError: ``batch_size`` is not a positive int.
        """
        find = _find_args(filter, projection, sort, limit, skip, hint, max_time)
        find["batch_size"] = _batch_size(batch_size)

        def open_cursor(coll: Collection[Document], s: ClientSession | None) -> Cursor[Document]:
            return coll.find(session=s, **find)

        return self._open_stream("stream", collection, open_cursor, timeout, session)

    def find_one(
        self,
        collection: str,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | Sequence[str] | None = None,
        sort: Any = None,
        skip: int = 0,
        hint: Any = None,
        max_time: float | None = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> Document | None:
        """The first document matching ``filter``, or ``None``.

        Raises:
            ConnectorError: As ``query``.
        """
        find = _find_args(filter, projection, sort, 0, skip, hint, max_time)
        if len(find) == 1:  # a filter alone, the common call
            filt = find["filter"]

            def body(coll: Collection[Document], s: ClientSession | None) -> Document | None:
                # Positional and without a session=None: pymongo's find_one,
                # find and Cursor each rebuild a kwargs dict otherwise.
                return coll.find_one(filt) if s is None else coll.find_one(filt, session=s)

        else:

            def body(coll: Collection[Document], s: ClientSession | None) -> Document | None:
                return coll.find_one(session=s, **find)

        return self._call("find_one", collection, body, False, False, timeout, session)

    def count(
        self,
        collection: str,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int = 0,
        skip: int = 0,
        hint: Any = None,
        max_time: float | None = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> int:
        """The number of documents matching ``filter`` (an exact count).

        Raises:
            ConnectorError: As ``query``.
        """
        filt = check_filter(filter)
        options = _cursor_options({}, limit, skip, hint, max_time, "maxTimeMS")

        def body(coll: Collection[Document], s: ClientSession | None) -> int:
            return coll.count_documents(filt, session=s, **options)

        return self._call("count", collection, body, False, False, timeout, session)

    def distinct(
        self,
        collection: str,
        key: str,
        filter: Mapping[str, Any] | None = None,
        *,
        max_time: float | None = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> list[Any]:
        """The distinct values of ``key`` among the documents matching ``filter``.

        Raises:
            ArgumentTypeError: ``key`` is not a string.
            ConnectorError: As ``query``.
        """
        if not isinstance(key, str):
            raise wrong_type(f"key must be a str, not {type(key).__name__}")
        if not key:
            raise bad_request("distinct needs a field name")
        filt = check_filter(filter)
        ms = max_time_ms(max_time)
        options: dict[str, Any] = {"maxTimeMS": ms} if ms is not None else {}

        def body(coll: Collection[Document], s: ClientSession | None) -> list[Any]:
            return coll.distinct(key, filt, session=s, **options)

        return self._call("distinct", collection, body, False, False, timeout, session)

    def aggregate(
        self,
        collection: str,
        pipeline: Sequence[Mapping[str, Any]],
        *,
        stream: bool = False,
        batch_size: int = 1000,
        max_time: float | None = None,
        allow_disk_use: bool | None = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> Any:
        """Run an aggregation pipeline.

        Args:
            collection: The collection name.
            pipeline: A list of stage mappings.
            stream: Return a ``DocumentStream`` over the result cursor
                instead of a list.
            batch_size: Documents per batch when streaming.
            max_time: Seconds the server may spend (``maxTimeMS``).
            allow_disk_use: Let stages spill to disk.
            timeout: Seconds for the call (each round trip when streaming).
            session: A ``Transaction`` to run in.

        Returns:
            A list of documents, or a ``DocumentStream`` with ``stream=True``.

        Raises:
            ArgumentTypeError: ``pipeline`` is not a list of mappings.
            ConnectorError: As ``query``; a pipeline with ``$out``/``$merge``
                is a write.
        """
        stages = _pipeline(pipeline)
        options: dict[str, Any] = {}
        ms = max_time_ms(max_time)
        if ms is not None:
            options["maxTimeMS"] = ms
        if allow_disk_use is not None:
            options["allowDiskUse"] = flag(allow_disk_use, "allow_disk_use")
        write = any("$out" in stage or "$merge" in stage for stage in stages)
        if flag(stream, "stream"):
            options["batchSize"] = _batch_size(batch_size)

            def open_cursor(coll: Collection[Document], s: ClientSession | None) -> Any:
                return coll.aggregate(stages, session=s, **options)

            return self._open_stream("aggregate", collection, open_cursor, timeout, session)

        def body(coll: Collection[Document], s: ClientSession | None) -> list[Document]:
            return list(coll.aggregate(stages, session=s, **options))

        return self._call("aggregate", collection, body, write, False, timeout, session)

    # ------------------------------------------------------------ writes

    def insert_one(
        self,
        collection: str,
        document: Mapping[str, Any],
        *,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> Any:
        """Insert one document and return its ``_id``.

        A document without ``_id`` gets a new ``ObjectId`` (added to the
        mapping you passed, as pymongo does; not if the document is refused
        before it is sent). A ``bson.raw_bson.RawBSONDocument`` with an
        ``_id`` is sent as it is. A retryable write: pymongo
        retries it once, and the server applies it at most once.

        Raises:
            ArgumentTypeError: ``document`` is not a mapping.
            ConnectorError: INVALID_REQUEST for a ``$``-prefixed top-level
                key; PAYLOAD_TOO_LARGE over 16 MiB; CONSTRAINT_VIOLATION for
                a duplicate key (``details["key_pattern"]``); a lost
                connection or timeout has ``maybe_applied=True``.
        """
        doc = check_insert(document)
        if type(doc) is not dict:
            doc = _mutable(doc)

        def body(coll: Collection[Document], s: ClientSession | None) -> Any:
            raw, inserted_id = _encoded(doc, coll)
            coll.insert_one(raw, session=s)
            return inserted_id

        return self._call("insert_one", collection, body, True, True, timeout, session)

    def insert_many(
        self,
        collection: str,
        documents: Sequence[Mapping[str, Any]],
        *,
        ordered: bool = True,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> list[Any]:
        """Insert documents (in batches the driver sizes) and return their ``_id`` values.

        Args:
            ordered: Stop at the first failure (``True``), or try every
                document and report all failures (``False``).

        Raises:
            ArgumentTypeError: ``documents`` is not a sequence of mappings.
            ConnectorError: A BulkWriteError becomes CONSTRAINT_VIOLATION (a
                duplicate key) or EXEC_FAILED, with ``details["write_errors"]``
                (``index``, ``code``, ``message``) and ``details["inserted"]``.
        """
        if isinstance(documents, (str, bytes, Mapping)) or not isinstance(documents, Sequence):
            raise wrong_type(
                f"documents must be a sequence of mappings, not {type(documents).__name__}"
            )
        docs = _insertables(documents)
        if not docs:
            return []
        ordered = flag(ordered, "ordered")

        def body(coll: Collection[Document], s: ClientSession | None) -> list[Any]:
            _check_sizes(docs, coll)  # all of them, before the first is sent
            ids = coll.insert_many(docs, ordered=ordered, session=s).inserted_ids  # type: ignore[arg-type]
            if len(ids) != len(docs):  # pymongo lists no _id for a RawBSONDocument
                return [doc["_id"] for doc in docs]
            return ids

        return self._call("insert_many", collection, body, True, True, timeout, session)

    def update_one(
        self,
        collection: str,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        hint: Any = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> UpdateResult:
        """Update the first document matching ``filter`` with ``$`` operators (or a pipeline).

        Raises:
            ArgumentTypeError: ``filter`` is not a mapping, or ``update`` neither a
                mapping nor a list.
            ConnectorError: INVALID_REQUEST for an update without operators.
        """
        return self._update(
            "update_one",
            collection,
            filter,
            update,
            upsert,
            array_filters,
            hint,
            timeout,
            session,
            many=False,
        )

    def update_many(
        self,
        collection: str,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        hint: Any = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> UpdateResult:
        """Update every document matching ``filter``. Not a retryable write.

        Raises:
            ConnectorError: As ``update_one``; a lost connection or a
                timeout has ``maybe_applied=True`` (some documents may be updated).
        """
        return self._update(
            "update_many",
            collection,
            filter,
            update,
            upsert,
            array_filters,
            hint,
            timeout,
            session,
            many=True,
        )

    def _update(
        self,
        operation: str,
        collection: str,
        filter: Mapping[str, Any],
        update: Any,
        upsert: bool,
        array_filters: Sequence[Mapping[str, Any]] | None,
        hint: Any,
        timeout: float | None,
        session: Transaction | None,
        *,
        many: bool,
    ) -> UpdateResult:
        filt = check_filter(filter)
        upd = check_update(update)
        options: dict[str, Any] = {"upsert": flag(upsert, "upsert")}
        if array_filters is not None:
            options["array_filters"] = _array_filters(array_filters)
        if hint is not None:
            options["hint"] = key_spec(hint)

        def body(coll: Collection[Document], s: ClientSession | None) -> UpdateResult:
            method = coll.update_many if many else coll.update_one
            return _update_result(method(filt, upd, session=s, **options))

        return self._call(operation, collection, body, True, not many, timeout, session)

    def replace_one(
        self,
        collection: str,
        filter: Mapping[str, Any],
        replacement: Mapping[str, Any],
        *,
        upsert: bool = False,
        hint: Any = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> UpdateResult:
        """Replace the first document matching ``filter`` (insert it with ``upsert``).

        Raises:
            ConnectorError: INVALID_REQUEST when ``replacement`` holds ``$`` operators.
        """
        filt = check_filter(filter)
        doc = check_replacement(replacement)
        options: dict[str, Any] = {"upsert": flag(upsert, "upsert")}
        if hint is not None:
            options["hint"] = key_spec(hint)

        def body(coll: Collection[Document], s: ClientSession | None) -> UpdateResult:
            _check_size(doc, coll)
            return _update_result(coll.replace_one(filt, doc, session=s, **options))

        return self._call("replace_one", collection, body, True, True, timeout, session)

    def delete_one(
        self,
        collection: str,
        filter: Mapping[str, Any],
        *,
        hint: Any = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> int:
        """Delete the first document matching ``filter``; return how many (0 or 1).

        Raises:
            ConnectorError: As ``insert_one``.
        """
        return self._delete("delete_one", collection, filter, hint, timeout, session, many=False)

    def delete_many(
        self,
        collection: str,
        filter: Mapping[str, Any],
        *,
        hint: Any = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> int:
        """Delete every document matching ``filter`` (``{}`` deletes all); return how many.

        Raises:
            ArgumentTypeError: ``filter`` is ``None`` or not a mapping (pass ``{}``
                to delete everything, on purpose).
            ConnectorError: As ``update_many``.
        """
        return self._delete("delete_many", collection, filter, hint, timeout, session, many=True)

    def _delete(
        self,
        operation: str,
        collection: str,
        filter: Mapping[str, Any],
        hint: Any,
        timeout: float | None,
        session: Transaction | None,
        *,
        many: bool,
    ) -> int:
        if filter is None:
            raise wrong_type(f"{operation} needs a filter mapping ({{}} matches every document)")
        filt = check_filter(filter)
        options: dict[str, Any] = {"hint": key_spec(hint)} if hint is not None else {}

        def body(coll: Collection[Document], s: ClientSession | None) -> int:
            method = coll.delete_many if many else coll.delete_one
            result = method(filt, session=s, **options)
            return result.deleted_count if result.acknowledged else -1

        return self._call(operation, collection, body, True, not many, timeout, session)

    def bulk_write(
        self,
        collection: str,
        operations: Sequence[tuple[str, Any]],
        *,
        ordered: bool = True,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> BulkResult:
        """Send many writes in one request: each ``(verb, arguments)``.

        The verbs and their arguments: ``("insert_one", document)``,
        ``("update_one" | "update_many", (filter, update))``,
        ``("replace_one", (filter, replacement))``, ``("delete_one" |
        "delete_many", filter)``; an update or replace may add a third item,
        a mapping of options (``{"upsert": True}``).

        Raises:
            ArgumentTypeError: A malformed operation.
            ConnectorError: INVALID_REQUEST for an unknown verb or a bad
                document; a BulkWriteError as in ``insert_many``.
        """
        if isinstance(operations, (str, bytes, bytearray, Mapping)) or not isinstance(
            operations, Sequence
        ):
            raise wrong_type(
                f"operations must be a sequence of (verb, arguments), "
                f"not {type(operations).__name__}"
            )
        requests: list[Any] = []
        documents: list[Mapping[str, Any]] = []  # inserted or replacing: size-checked
        for op in operations:
            request, document = _bulk_request(op)
            requests.append(request)
            if document is not None:
                documents.append(document)
        if not requests:
            return BulkResult(0, 0, 0, 0, 0, {})
        retried = not any(isinstance(r, _MULTI_REQUESTS) for r in requests)
        ordered = flag(ordered, "ordered")

        def body(coll: Collection[Document], s: ClientSession | None) -> BulkResult:
            _check_sizes(documents, coll)
            result = coll.bulk_write(requests, ordered=ordered, session=s)
            if not result.acknowledged:
                return BulkResult(-1, -1, -1, -1, -1, {})
            return BulkResult(
                result.inserted_count,
                result.matched_count,
                result.modified_count,
                result.deleted_count,
                result.upserted_count,
                dict(result.upserted_ids or {}),
            )

        return self._call("bulk_write", collection, body, True, retried, timeout, session)

    def find_one_and_update(
        self,
        collection: str,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        projection: Mapping[str, Any] | Sequence[str] | None = None,
        sort: Any = None,
        upsert: bool = False,
        return_document: str = "before",
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> Document | None:
        """Update the first match atomically and return it, as it was or as it is now.

        Args:
            return_document: ``"before"`` (default) or ``"after"`` the update.

        Returns:
            The document, or ``None`` when nothing matched (and no upsert).

        Raises:
            InvalidConfigError: ``return_document`` is neither "before" nor "after".
            ConnectorError: As ``update_one``.
        """
        filt = check_filter(filter)
        upd = check_update(update)
        if not isinstance(return_document, str) or return_document not in _RETURN_DOCUMENT:
            raise InvalidConfigError(
                "return_document must be 'before' or 'after'", connector="mongodb"
            )
        options: dict[str, Any] = {
            "upsert": flag(upsert, "upsert"),
            "return_document": _RETURN_DOCUMENT[return_document],
        }
        if projection is not None:
            options["projection"] = _projection(projection)
        spec = sort_spec(sort)
        if spec is not None:
            options["sort"] = spec

        def body(coll: Collection[Document], s: ClientSession | None) -> Document | None:
            return coll.find_one_and_update(filt, upd, session=s, **options)

        return self._call("find_one_and_update", collection, body, True, True, timeout, session)

    # ----------------------------------------------------------- indexes

    def create_index(
        self,
        collection: str,
        keys: str | Sequence[tuple[str, Any]] | Mapping[str, Any],
        *,
        unique: bool = False,
        name: str | None = None,
        sparse: bool = False,
        expire_after: float | None = None,
        partial_filter: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> str:
        """Create an index (a no-op if the same one exists) and return its name.

        Args:
            keys: A field name, ``[(field, 1 | -1 | "2dsphere"), ...]`` or a mapping.
            unique: Refuse duplicate keys (CONSTRAINT_VIOLATION on write).
            name: The index name (default: derived from the keys).
            sparse: Skip documents without the field.
            expire_after: TTL in seconds (``expireAfterSeconds``).
            partial_filter: Index only documents matching this filter.

        Raises:
            ConnectorError: CONFLICT when an index of that name has other options.
        """
        spec = sort_spec(keys, "index key")
        if not spec:
            raise bad_request("create_index needs at least one key")
        options: dict[str, Any] = {}
        if flag(unique, "unique"):
            options["unique"] = True
        if name is not None:
            options["name"] = _index_name(name)
        if flag(sparse, "sparse"):
            options["sparse"] = True
        if expire_after is not None:
            options["expireAfterSeconds"] = int(seconds(expire_after, "expire_after"))
        if partial_filter is not None:
            options["partialFilterExpression"] = check_filter(partial_filter, "partial_filter")

        def body(coll: Collection[Document], s: ClientSession | None) -> str:
            return coll.create_index(spec, session=s, **options)

        return self._call("create_index", collection, body, True, False, timeout, session)

    def drop_index(
        self,
        collection: str,
        name: str,
        *,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> None:
        """Drop the index called ``name``.

        Raises:
            ConnectorError: NOT_FOUND when there is no such index.
        """
        index = _index_name(name)

        def body(coll: Collection[Document], s: ClientSession | None) -> None:
            coll.drop_index(index, session=s)

        self._call("drop_index", collection, body, True, False, timeout, session)

    def list_indexes(
        self,
        collection: str,
        *,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> list[Document]:
        """Every index of the collection, as plain dicts (``name``, ``key``, ``unique``...).

        Raises:
            ConnectorError: As ``query``.
        """

        def body(coll: Collection[Document], s: ClientSession | None) -> list[Document]:
            return [_plain_index(ix) for ix in coll.list_indexes(session=s)]

        return self._call("list_indexes", collection, body, False, False, timeout, session)

    def drop_collection(
        self,
        collection: str,
        *,
        timeout: float | None = None,
        session: Transaction | None = None,
    ) -> None:
        """Drop the collection with its documents and indexes (no error if it does not exist).

        Raises:
            ConnectorError: The server refused.
        """

        def body(coll: Collection[Document], s: ClientSession | None) -> None:
            coll.drop(session=s)

        self._call("drop_collection", collection, body, True, False, timeout, session)


# --------------------------------------------------------------- helpers


# The codec options each collection's documents are encoded with, by the
# options' id() (the entry keeps the options alive, so the id stays theirs).
_ENCODING: dict[int, tuple[Any, Any]] = {}
_MAX_ENCODING = 64


def _encoding(coll: Collection[Document]) -> Any:
    """``coll.codec_options`` with ``document_class=RawBSONDocument``: the same bytes, cheaper.

    ``document_class`` only steers decoding, but bson's C encoder checks it
    on every call for the ``_type_marker`` that ``RawBSONDocument`` has and
    ``dict`` has not: an ``AttributeError`` raised and cleared on each
    encode (about 0.35 µs of a 1 µs encode of a small document).
    """
    opts = coll.codec_options
    entry = _ENCODING.get(id(opts))
    if entry is not None and entry[0] is opts:
        return entry[1]
    encoding = opts.with_options(document_class=RawBSONDocument)
    if len(_ENCODING) >= _MAX_ENCODING:
        _ENCODING.clear()
    _ENCODING[id(opts)] = (opts, encoding)
    return encoding


def _encoded(document: MutableMapping[str, Any], coll: Collection[Document]) -> tuple[Any, Any]:
    """``document`` encoded once, as a ``RawBSONDocument``, and its ``_id``; checked for size.

    pymongo copies a ``RawBSONDocument``'s bytes into the message instead of
    encoding the document again (the second encode the size check used to
    cost). A missing ``_id`` is set first, as pymongo would (the caller's
    mapping gets it, and BSON puts it first), but taken back if the document
    is refused here, before any I/O, as before.

    Raises:
        ConnectorError: PAYLOAD_TOO_LARGE over 16 MiB.
        bson.errors.InvalidDocument: A value bson cannot encode (the caller's
            ``translate`` makes it SERIALIZATION_ERROR).
    """
    # (type() first: RawBSONDocument is an ABC, its isinstance a Python call.)
    if type(document) is not dict and isinstance(document, RawBSONDocument):  # has an _id
        _refuse_over_limit(len(document.raw))
        return document, document["_id"]
    added = "_id" not in document
    if added:
        document["_id"] = ObjectId()
    try:
        data = bson.encode(document, codec_options=_encoding(coll))
        if len(data) > MAX_DOCUMENT_BYTES:
            _refuse_over_limit(len(data))
    except BaseException:
        if added:
            del document["_id"]
        raise
    return RawBSONDocument(data), document["_id"]


def _refuse_over_limit(size: int) -> None:
    if size > MAX_DOCUMENT_BYTES:
        raise build_error(
            f"mongodb: the document is {size} bytes, over the 16 MiB BSON limit",
            _TOO_LARGE,
            connector="mongodb",
        )


# The bytes of an ``_id`` element holding an ObjectId: type, "_id\0", 12 bytes.
_ID_ELEMENT_BYTES = 17


def _check_size(document: Mapping[str, Any], coll: Collection[Document]) -> None:
    """Refuse a document over 16 MiB before any I/O (PAYLOAD_TOO_LARGE).

    pymongo leaves the limit to the server (it allows 16 KiB of command
    overhead on top), and not every server enforces it (FerretDB stores
    larger documents): one C-speed encode, about 2 µs for a small document.
    A document without ``_id`` counts the ObjectId one it will have: pymongo
    adds it to an insert, the server to an upserted replacement (a matched
    one keeps its old ``_id``, mostly an ObjectId too). Asked only near the
    limit: on a ``RawBSONDocument`` the question decodes it.
    """
    size = len(bson.encode(document, codec_options=_encoding(coll)))
    if size > MAX_DOCUMENT_BYTES - _ID_ELEMENT_BYTES and "_id" not in document:
        size += _ID_ELEMENT_BYTES
    _refuse_over_limit(size)


_CHUNK_BYTES = 4 * 1024 * 1024
_MAX_CHUNK = 1024


def _check_sizes(documents: Sequence[Mapping[str, Any]], coll: Collection[Document]) -> None:
    """``_check_size`` of every document, before any of them is sent.

    pymongo sends an acknowledged ``insert_many`` or ``bulk_write`` in
    batches and leaves a document over 16 MiB to the server, so the ones
    before it are written (SecantusDB) or it is stored (FerretDB). Checking
    them one by one would cost a Python call and an encode each (about
    0.7 µs); instead a chunk of documents is encoded in one C call (about
    0.15 µs a document) and only a chunk over the limit is looked at one
    by one. Chunks hold about 4 MiB (sized from the last chunk's average).
    """
    encode, opts = bson.encode, _encoding(coll)
    start, step, total = 0, 16, len(documents)
    while start < total:
        chunk = documents[start : start + step]
        size = len(encode({"d": chunk}, codec_options=opts))
        # (A document may still get its _id: near the limit, look closer.)
        if size > MAX_DOCUMENT_BYTES - _ID_ELEMENT_BYTES:
            for document in chunk:
                _check_size(document, coll)
        start += len(chunk)
        step = max(1, min(_MAX_CHUNK, _CHUNK_BYTES * len(chunk) // size))


def _non_negative(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(f"{what} must be a non-negative int, not {type(value).__name__}")
    if value < 0 or value > 2**62:
        raise InvalidConfigError(f"{what} must be a non-negative int", connector="mongodb")
    return value


def _batch_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise InvalidConfigError(
            "batch_size must be an int from 1 to 1,000,000", connector="mongodb"
        )
    return value


def _projection(projection: object) -> Any:
    if isinstance(projection, Mapping):
        return projection
    if isinstance(projection, Sequence) and not isinstance(projection, (str, bytes)):
        if not all(isinstance(p, str) for p in projection):
            raise wrong_type("a projection list holds field names")
        return list(projection)
    raise wrong_type(
        f"a projection is a mapping or a list of names, not {type(projection).__name__}"
    )


def _find_args(
    filter: object,
    projection: object,
    sort: object,
    limit: object,
    skip: object,
    hint: Any,
    max_time: object,
) -> dict[str, Any]:
    """Keyword arguments of ``Collection.find``, checked before any I/O."""
    args: dict[str, Any] = {"filter": check_filter(filter)}
    if (
        projection is None
        and sort is None
        and hint is None
        and max_time is None
        and type(limit) is int
        and not limit
        and type(skip) is int
        and not skip
    ):
        return args  # the common call (a filter alone): nothing else to check
    if projection is not None:
        args["projection"] = _projection(projection)
    spec = sort_spec(sort)
    if spec is not None:
        args["sort"] = spec
    return _cursor_options(args, limit, skip, hint, max_time, "max_time_ms")


def _cursor_options(
    options: dict[str, Any],
    limit: object,
    skip: object,
    hint: Any,
    max_time: object,
    max_time_key: str,
) -> dict[str, Any]:
    """Add the checked ``limit``/``skip``/``hint``/``max_time`` that are set to ``options``.

    ``find`` names the server time limit ``max_time_ms``, ``count_documents``
    ``maxTimeMS``: ``max_time_key`` says which.
    """
    # The int 0 (the default) skips the check; truthiness alone would also
    # let "", [] or 0.0 through unchecked, as "no limit".
    if (type(limit) is not int or limit) and _non_negative(limit, "limit"):
        options["limit"] = limit
    if (type(skip) is not int or skip) and _non_negative(skip, "skip"):
        options["skip"] = skip
    if hint is not None:
        options["hint"] = key_spec(hint)
    ms = max_time_ms(max_time)
    if ms is not None:
        options[max_time_key] = ms
    return options


def _pipeline(pipeline: object) -> list[Mapping[str, Any]]:
    if isinstance(pipeline, (str, bytes, Mapping)) or not isinstance(pipeline, Sequence):
        raise wrong_type(f"a pipeline is a list of stages, not {type(pipeline).__name__}")
    stages = list(pipeline)
    for stage in stages:
        if not isinstance(stage, Mapping):
            raise wrong_type("a pipeline stage must be a mapping")
    return stages


def _update_result(result: Any) -> UpdateResult:
    if not result.acknowledged:
        return UpdateResult(-1, -1, None)
    return UpdateResult(result.matched_count, result.modified_count, result.upserted_id)


def _plain_index(index: Any) -> Document:
    plain = dict(index)
    if "key" in plain:
        plain["key"] = dict(plain["key"])
    return plain


def _bulk_request(op: object) -> tuple[Any, Mapping[str, Any] | None]:
    """The pymongo request of one ``(verb, arguments)``, and its whole document if it has one."""
    if not isinstance(op, tuple) or len(op) != 2 or not isinstance(op[0], str):
        raise wrong_type("a bulk_write operation is a (verb, arguments) tuple")
    verb, args = op
    ops = pymongo.operations
    if verb == "insert_one":
        document = _mutable(check_insert(args))
        return ops.InsertOne(document), document
    if verb == "delete_one":
        return ops.DeleteOne(check_filter(args)), None
    if verb == "delete_many":
        return ops.DeleteMany(check_filter(args)), None
    if verb in ("update_one", "update_many", "replace_one"):
        if not isinstance(args, tuple) or len(args) not in (2, 3):
            raise wrong_type(f"{verb} in bulk_write takes (filter, document[, options])")
        given = args[2] if len(args) == 3 else {}
        if not isinstance(given, Mapping):
            raise wrong_type(f"the options of {verb} in bulk_write are a mapping")
        allowed = _BULK_OPTIONS if verb != "replace_one" else _BULK_OPTIONS - {"array_filters"}
        if not all(isinstance(k, str) and k in allowed for k in given):
            raise wrong_type(f"{verb} in bulk_write takes the options {', '.join(sorted(allowed))}")
        options: dict[str, Any] = {}
        if "upsert" in given:
            options["upsert"] = flag(given["upsert"], "upsert")
        if given.get("hint") is not None:
            options["hint"] = key_spec(given["hint"])
        if given.get("array_filters") is not None:
            options["array_filters"] = _array_filters(given["array_filters"])
        filt = check_filter(args[0])
        if verb == "replace_one":
            replacement = check_replacement(args[1])
            return ops.ReplaceOne(filt, replacement, **options), replacement
        if verb == "update_one":
            return ops.UpdateOne(filt, check_update(args[1]), **options), None
        return ops.UpdateMany(filt, check_update(args[1]), **options), None
    raise bad_request(
        "unknown bulk_write verb; use insert_one, update_one, update_many, "
        "replace_one, delete_one or delete_many"
    )


_BULK_OPTIONS = frozenset({"upsert", "hint", "array_filters"})


def _mutable(document: Mapping[str, Any]) -> MutableMapping[str, Any]:
    """The document itself when pymongo can add its ``_id``; else a dict copy.

    A ``RawBSONDocument`` that has an ``_id`` is sent as it is (as pymongo
    does: its bytes are not decoded and encoded again); one without gets
    copied, so that its new ``_id`` can be returned.
    """
    if type(document) is dict:  # the common case, without the ABC check
        return document
    if isinstance(document, MutableMapping):
        return document
    if isinstance(document, RawBSONDocument) and "_id" in document:
        return document  # type: ignore[return-value]  # never written to
    return dict(document)


def _insertables(documents: Sequence[Mapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    """``_mutable(check_insert(d))`` of each document, in a few C calls when it can.

    ``insert_many``'s per-document cost. The common case, every document a
    plain dict and no top-level key starting with ``$``, is settled for the
    whole batch at once: the set of the documents' types, and every key
    joined behind a NUL (a BSON key cannot hold one) in one string, where a
    ``$`` key shows as NUL + ``$`` (about 0.1 µs a small document, against
    0.26 µs for a Python loop over them). A key that is not a str (the join
    refuses it) or anything else goes the document-by-document way, which
    raises the precise error.
    """
    docs: list[Any] = list(documents)
    if set(map(type, docs)) == {dict}:
        try:
            if "\0$" not in "\0" + "\0".join(chain.from_iterable(docs)):
                return docs
        except TypeError:
            pass
    return [_mutable(check_insert(document)) for document in docs]


def _array_filters(filters: object) -> list[Mapping[str, Any]]:
    if isinstance(filters, (str, bytes, bytearray, Mapping)) or not isinstance(filters, Sequence):
        raise wrong_type(f"array_filters is a list of mappings, not {type(filters).__name__}")
    out = list(filters)
    for item in out:
        if not isinstance(item, Mapping):
            raise wrong_type("array_filters is a list of mappings")
    return out


def _index_name(name: object) -> str:
    if not isinstance(name, str):
        raise wrong_type(f"an index name must be a str, not {type(name).__name__}")
    if not name:
        raise bad_request("an index name cannot be empty")
    return name


_MULTI_REQUESTS: tuple[type[Any], ...] = (
    pymongo.operations.UpdateMany,
    pymongo.operations.DeleteMany,
)


# -------------------------------------------------------------------- stream


class DocumentStream:
    """Documents of a server cursor, fetched ``batch_size`` at a time.

    Iterate it once. The stream counts as an in-flight operation (so
    ``disconnect()`` waits for it) from the first ``next()`` until it is
    exhausted or closed: use it as a context manager, or call ``close()``
    when stopping early. Dropping the last reference to an unfinished stream
    also closes its cursor at once (the generator behind it does not refer
    back to the stream). Not thread-safe: iterate it from one thread.

    Example::

        with db.stream("events", {"kind": "click"}, batch_size=5000) as docs:
            for doc in docs:
                handle(doc)
    """

    __slots__ = ("_docs",)

    def __init__(self, docs: Generator[Document, None, None]) -> None:
        self._docs = docs

    def __iter__(self) -> DocumentStream:
        return self

    def __next__(self) -> Document:
        return next(self._docs)

    def close(self) -> None:
        """Stop early: close the server cursor (``killCursors``)."""
        self._docs.close()

    def __enter__(self) -> DocumentStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _iterate(
    cursor: Any, translator: translate, timeout: float | None
) -> Generator[Document, None, None]:
    """Yield the cursor's documents; translate errors; close the cursor at the end."""
    try:
        if timeout is None:
            with translator:
                yield from cursor
            return
        while True:
            # pymongo.timeout() sets a context variable: it must not stay
            # set while the consumer runs between two yields.
            with translator, pymongo.timeout(timeout):
                try:
                    doc = cursor.next()
                except StopIteration:
                    return
            yield doc
    finally:
        try:
            cursor.close()
        except Exception:
            logger.debug("mongodb: closing a cursor failed", exc_info=True)
