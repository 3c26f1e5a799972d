"""Pure checks and values of the MongoDB verbs: names, documents, updates, results.

No I/O and no pymongo import: every check here runs before a request is
built, so bad input fails with a clear ``ConnectorError`` (never a value the
user passed in the message) and nothing reaches the server.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from dictamesh_connectors._convert import check_timeout, to_seconds
from dictamesh_connectors.errors import (
    ArgumentTypeError,
    ConnectorError,
    ErrorCode,
    ErrorRule,
    InvalidConfigError,
    RetryHint,
    build_error,
)

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "ArgumentTypeError",
    "BulkResult",
    "UpdateResult",
    "call_timeout",
    "check_collection",
    "check_database",
    "check_filter",
    "check_insert",
    "check_replacement",
    "check_update",
    "flag",
    "key_spec",
    "max_time_ms",
    "seconds",
    "sort_spec",
    "wrong_type",
]

CONNECTOR = "mongodb"

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""The server's BSON document limit (16 MiB)."""

_MAX_SECONDS = 86_400.0 * 365
_BAD_REQUEST = ErrorRule(ErrorCode.INVALID_REQUEST, False, RetryHint.NONE)
_INT64 = 2**63


def wrong_type(message: str) -> ArgumentTypeError:
    """An ``ArgumentTypeError`` of the MongoDB connector."""
    return ArgumentTypeError(f"{CONNECTOR}: {message}", connector=CONNECTOR)


def _type_name(value: object) -> str:
    return type(value).__name__


class UpdateResult(NamedTuple):
    """What ``update_one``, ``update_many`` and ``replace_one`` did.

    Attributes:
        matched: Documents the filter matched (-1 for an unacknowledged write).
        modified: Documents changed (-1 for an unacknowledged write).
        upserted_id: The ``_id`` of the document an upsert inserted, else ``None``.
    """

    matched: int
    modified: int
    upserted_id: Any = None


class BulkResult(NamedTuple):
    """What ``bulk_write`` did (-1 everywhere for an unacknowledged write).

    Attributes:
        inserted, matched, modified, deleted, upserted: The counts.
        upserted_ids: Operation index -> ``_id`` of each upserted document.
    """

    inserted: int
    matched: int
    modified: int
    deleted: int
    upserted: int
    upserted_ids: dict[int, Any]


def bad_request(message: str) -> ConnectorError:
    """An INVALID_REQUEST error: the request was refused before any I/O."""
    return build_error(f"{CONNECTOR}: {message}", _BAD_REQUEST, connector=CONNECTOR)


def check_collection(name: object) -> str:
    """Return ``name`` if it is a valid collection name.

    Raises:
        ArgumentTypeError: ``name`` is not a string.
        ConnectorError: INVALID_REQUEST, an empty name, one with ``$`` or NUL,
            starting or ending with ``.``, not valid Unicode, or over 255 bytes.
    """
    if not isinstance(name, str):
        raise wrong_type(f"a collection name must be a str, not {type(name).__name__}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise bad_request("invalid collection name: not valid Unicode") from None
    if (
        not name
        or size > 255
        or "\x00" in name
        or ("$" in name and not name.startswith("oplog.$"))
        or name.startswith(".")
        or name.endswith(".")
    ):
        raise bad_request(
            "invalid collection name (empty, '$', NUL, a '.' at either end, too long)"
        )
    return name


def check_database(name: object) -> str:
    """Return ``name`` if it is a valid database name.

    Raises:
        ArgumentTypeError: ``name`` is not a string.
        ConnectorError: INVALID_REQUEST, an empty name, one with any of
            ``/\\. "$``, NUL or a space, not valid Unicode, or 64 bytes or more.
    """
    if not isinstance(name, str):
        raise wrong_type(f"a database name must be a str, not {type(name).__name__}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise bad_request("invalid database name: not valid Unicode") from None
    if not name or size >= 64 or any(c in name for c in _BAD_DATABASE_CHARS):
        raise bad_request('invalid database name (empty, /\\. "$, NUL, space, 64 bytes or more)')
    return name


_BAD_DATABASE_CHARS = frozenset('/\\. "$\x00')


def check_filter(filter: object, what: str = "filter") -> Mapping[str, Any]:
    """Return the filter (``{}`` for ``None``); a filter must be a mapping.

    Raises:
        ArgumentTypeError: ``filter`` is not a mapping.
    """
    if type(filter) is dict:  # the common case, without the ABC check
        return filter
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise wrong_type(f"a {what} must be a mapping, not {type(filter).__name__}")
    return filter


def check_insert(document: object) -> Mapping[str, Any]:
    """Return ``document`` if it may be inserted (or used as a replacement).

    Raises:
        ArgumentTypeError: ``document`` is not a mapping.
        ConnectorError: INVALID_REQUEST, a top-level key is not a string or
            starts with ``$``.
    """
    if type(document) is not dict and not isinstance(document, Mapping):
        raise wrong_type(f"a document must be a mapping, not {type(document).__name__}")
    # The common case (every key a str, none with a '$') in two C calls:
    # str.join refuses a key that is not a str (a subclass passes, as with
    # isinstance); a '$' found may be inside a key, which the loop allows.
    try:
        if "$" not in "".join(document):
            return document
    except TypeError:
        pass
    for key in document:
        if not isinstance(key, str):
            raise bad_request("a document key must be a string")
        if key.startswith("$"):
            raise bad_request("a top-level key of a document cannot start with '$'")
    return document


def check_replacement(document: object) -> Mapping[str, Any]:
    """Return ``document`` if it is a replacement (no update operators).

    Raises:
        ArgumentTypeError: ``document`` is not a mapping.
        ConnectorError: INVALID_REQUEST, it holds ``$`` operators (use
            ``update_one``) or a key that is not a string.
    """
    if not isinstance(document, Mapping):
        raise wrong_type(f"a replacement must be a mapping, not {type(document).__name__}")
    for key in document:
        if not isinstance(key, str):
            raise bad_request("a document key must be a string")
        if key.startswith("$"):
            raise bad_request("replace_one takes a whole document, not update operators")
    return document


def check_update(update: object) -> Mapping[str, Any] | list[Any]:
    """Return ``update`` if it is an update: ``$`` operators, or a pipeline (a list).

    Raises:
        ArgumentTypeError: ``update`` is neither a mapping nor a list.
        ConnectorError: INVALID_REQUEST, it is empty or holds a key that is
            not a ``$`` operator (use ``replace_one`` to replace a document).
    """
    if isinstance(update, list):
        if not update:
            raise bad_request("an update pipeline cannot be empty")
        for stage in update:
            if not isinstance(stage, Mapping):
                raise wrong_type("an update pipeline is a list of mappings")
        return update
    if not isinstance(update, Mapping):
        raise wrong_type(f"an update must be a mapping or a list, not {type(update).__name__}")
    if not update:
        raise bad_request("an update needs at least one '$' operator")
    for key in update:
        if not isinstance(key, str) or not key.startswith("$"):
            raise bad_request(
                "an update takes '$' operators ($set, $inc, ...); "
                "use replace_one to replace a whole document"
            )
    return update


def seconds(value: object, what: str = "timeout") -> float:
    """Return ``value`` as a positive, finite number of seconds.

    The core's ``to_seconds`` with MongoDB's bounds: a year, not the
    per-call ``MAX_TIMEOUT`` (a TTL index's ``expire_after`` or a
    transaction ``deadline`` may be longer than a week), and no ``inf``.

    Raises:
        InvalidConfigError: Not a number, not positive, infinite or over a year.
    """
    try:
        return to_seconds(value, name=what, positive=True, maximum=_MAX_SECONDS, no_limit=None)
    except TypeError:
        message = f"{what} must be a number of seconds, got {type(value).__name__}"
    except InvalidConfigError:
        message = f"{what} must be a positive number of seconds up to one year"
    raise InvalidConfigError(message, connector=CONNECTOR)


def call_timeout(value: object) -> float | None:
    """A verb's ``timeout=``: seconds above 0, or ``None``/``inf`` for no limit.

    Raises:
        ArgumentTypeError: Not a number.
        InvalidConfigError: NaN, zero, negative or over the core's maximum.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise wrong_type(f"timeout must be a number of seconds or None, not {_type_name(value)}")
    return check_timeout(value, name="timeout", positive=True)


def max_time_ms(value: object) -> int | None:
    """``max_time`` (seconds) as the server's ``maxTimeMS`` (None stays None)."""
    if value is None:
        return None
    return max(1, math.ceil(seconds(value, "max_time") * 1000))


def sort_spec(sort: object, what: str = "sort") -> list[tuple[str, Any]] | None:
    """A sort as pymongo takes it: ``"field"``, ``[("a", 1), ("b", -1)]`` or a mapping.

    A direction is ``1``/``-1`` (any 64-bit int), an index type name
    (``"text"``, ``"2dsphere"``, ...) or a mapping (``{"$meta": "textScore"}``);
    the server judges the value. ``None`` and an empty sort are no sort.

    Raises:
        ArgumentTypeError: Anything else: a field name that is not a str, a
            direction of another type, a pair that is not two items.
    """
    if sort is None:
        return None
    if isinstance(sort, str):
        return [(_field(sort, what), 1)]
    if isinstance(sort, Mapping):
        items: Any = sort.items()
    elif isinstance(sort, Sequence) and not isinstance(sort, (bytes, bytearray)):
        items = sort
    else:
        raise wrong_type(f"a {what} is a field name, pairs or a mapping, not {_type_name(sort)}")
    spec: list[tuple[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            spec.append((_field(item, what), 1))
            continue
        if (
            not isinstance(item, Sequence)
            or isinstance(item, (str, bytes, bytearray))
            or len(item) != 2
        ):
            raise wrong_type(f"a {what} item is a field name or a (field, direction) pair")
        field, direction = item
        if not isinstance(field, str):
            raise wrong_type(f"a {what} field name must be a str, not {_type_name(field)}")
        spec.append((_field(field, what), _direction(direction, what)))
    return spec or None


def _field(name: str, what: str) -> str:
    if not name:
        raise bad_request(f"a {what} field name cannot be empty")
    return name


def _direction(value: object, what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, str, Mapping)):
        raise wrong_type(
            f"a {what} direction is 1, -1, an index type name or a mapping, not {_type_name(value)}"
        )
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        raise InvalidConfigError(f"a {what} direction must fit in 64 bits", connector=CONNECTOR)
    return value


def key_spec(keys: object, what: str = "hint") -> str | list[tuple[str, Any]] | None:
    """An index named by its name (a str) or by its keys (as ``sort_spec``).

    Used for ``hint=``: ``None`` stays ``None``.

    Raises:
        ArgumentTypeError: Neither a name nor a key specification.
        ConnectorError: INVALID_REQUEST, an empty name or no keys.
    """
    if keys is None:
        return None
    if isinstance(keys, str):
        if not keys:
            raise bad_request(f"a {what} index name cannot be empty")
        return keys
    spec = sort_spec(keys, what)
    if spec is None:
        raise bad_request(f"a {what} needs an index name or at least one key")
    return spec


def flag(value: object, what: str) -> bool:
    """A boolean argument (``upsert``, ``ordered``, ...): a bool, nothing else.

    Raises:
        ArgumentTypeError: Not a bool (``bool()`` of an arbitrary object may
            raise, or mean something else than the caller thinks).
    """
    if not isinstance(value, bool):
        raise wrong_type(f"{what} must be a bool, not {_type_name(value)}")
    return value
