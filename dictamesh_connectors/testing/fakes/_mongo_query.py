"""The query language of ``FakeMongoDB``: comparison, filters, projections, sorts.

Pure functions over decoded BSON values (dicts, lists, ``ObjectId``...), no
I/O. Where the server's rules are subtle they are kept: BSON comparison
order across types, type bracketing in ``$gt``/``$lt``, arrays matching by
their elements, a missing field equal to ``null``, ``1 == 1.0`` but
``True != 1``. What the fake does not implement raises ``MongoError`` with
code 115 (CommandNotSupported), which the connector reports as UNSUPPORTED.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import bson
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex
from bson.timestamp import Timestamp

__all__ = [
    "MISSING",
    "MongoError",
    "compare",
    "equal",
    "key_of",
    "matches",
    "project",
    "resolve",
    "sort_documents",
]

Document = dict[str, Any]

UNSUPPORTED = 115  # CommandNotSupported: the fake does not implement it
BAD_VALUE = 2


class MongoError(Exception):
    """A server-side error of the fake: the code and name a real server would send."""

    def __init__(self, code: int, message: str, code_name: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.code_name = code_name


def unsupported(what: str) -> MongoError:
    """The error for a feature the fake does not implement."""
    return MongoError(UNSUPPORTED, f"{what} is not supported by FakeMongoDB", "CommandNotSupported")


def bad_value(message: str) -> MongoError:
    """A BadValue (2) error: the request is malformed."""
    return MongoError(BAD_VALUE, message, "BadValue")


class _Missing:
    """A field that is not there (sorts and compares as ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class _EmptyArray:
    """The sort key of an empty array: below ``null`` in both directions, as on a server."""

    def __repr__(self) -> str:
        return "EMPTY_ARRAY"


_EMPTY_ARRAY: Any = _EmptyArray()

# --------------------------------------------------------------- comparison


def _rank(value: Any) -> int:
    """The value's place in BSON comparison order (MinKey ... MaxKey)."""
    if isinstance(value, MinKey):
        return 0
    if value is _EMPTY_ARRAY:
        return 1
    if value is None or value is MISSING:
        return 2
    if isinstance(value, bool):
        return 9
    if isinstance(value, (int, float, Decimal128, decimal.Decimal)):
        return 3
    if isinstance(value, str):
        return 4
    if isinstance(value, Mapping):
        return 5
    if isinstance(value, (list, tuple)):
        return 6
    if isinstance(value, (bytes, bytearray, bson.Binary)):
        return 7
    if isinstance(value, bson.ObjectId):
        return 8
    if isinstance(value, datetime.datetime):
        return 10
    if isinstance(value, Timestamp):
        return 11
    if isinstance(value, (Regex, re.Pattern)):
        return 12
    if isinstance(value, MaxKey):
        return 13
    return 14


def _number(value: Any) -> Any:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    return value


def _utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    # BSON dates have millisecond precision.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1: ``a`` against ``b`` in BSON order (the order ``sort`` uses)."""
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return _cmp(ra, rb)
    if ra == 3:
        x, y = _number(a), _number(b)
        if isinstance(x, float) and x != x:  # NaN sorts below every number
            return 0 if isinstance(y, float) and y != y else -1
        if isinstance(y, float) and y != y:
            return 1
        return _cmp(x, y)
    if ra in (4, 8, 9):
        return _cmp(a, b)
    if ra == 5:
        items_a, items_b = list(a.items()), list(b.items())
        for (ka, va), (kb, vb) in zip(items_a, items_b, strict=False):
            order = _cmp(_rank(va), _rank(vb)) or _cmp(ka, kb) or compare(va, vb)
            if order:
                return order
        return _cmp(len(items_a), len(items_b))
    if ra == 6:
        for va, vb in zip(a, b, strict=False):
            order = compare(va, vb)
            if order:
                return order
        return _cmp(len(a), len(b))
    if ra == 7:
        return _cmp(len(a), len(b)) or _cmp(bytes(a), bytes(b))
    if ra == 10:
        return _cmp(_utc(a), _utc(b))
    if ra == 11:
        return _cmp((a.time, a.inc), (b.time, b.inc))
    if ra == 12:
        return _cmp(_pattern(a), _pattern(b))
    if ra in (0, 1, 2, 13):
        return 0
    return _cmp(repr(a), repr(b))


def equal(a: Any, b: Any) -> bool:
    """Server equality: ``1 == 1.0``, ``True != 1``, ordered sub-documents."""
    return compare(a, b) == 0


def key_of(value: Any) -> Any:
    """A hashable key with the same equality as ``equal`` (for groups and unique indexes)."""
    rank = _rank(value)
    if rank == 3:
        number = _number(value)
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if isinstance(number, decimal.Decimal) and number == number.to_integral_value():
            number = int(number)
        return (3, number)
    if rank == 5:
        return (5, tuple((k, key_of(v)) for k, v in value.items()))
    if rank == 6:
        return (6, tuple(key_of(v) for v in value))
    if rank == 7:
        return (7, bytes(value))
    if rank == 10:
        return (10, _utc(value))
    if rank == 11:
        return (11, value.time, value.inc)
    if rank == 12:
        return (12, _pattern(value))
    if rank in (0, 1, 2, 13):
        return (rank,)
    if rank == 14:
        return (14, repr(value))
    return (rank, value)


# -------------------------------------------------------------------- paths


def resolve(value: Any, path: str) -> list[Any]:
    """Every value at dotted ``path``, traversing arrays as the server does.

    A path through an array of sub-documents reaches each element's field; a
    numeric part indexes an array. Where nothing is found the result holds
    ``MISSING``.
    """
    return list(_resolve(value, path.split(".")))


def _resolve(value: Any, parts: Sequence[str]) -> Iterator[Any]:
    if not parts:
        yield value
        return
    head, rest = parts[0], parts[1:]
    if isinstance(value, Mapping):
        yield from _resolve(value[head], rest) if head in value else iter((MISSING,))
        return
    if isinstance(value, list):
        found = False
        if head.isdigit():
            index = int(head)
            if index < len(value):
                found = True
                yield from _resolve(value[index], rest)
        for element in value:
            if isinstance(element, Mapping):
                found = True
                yield from _resolve(element, parts)
        if not found:
            yield MISSING
        return
    yield MISSING


def get_path(doc: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` without array traversal (``MISSING`` if absent)."""
    value: Any = doc
    for part in path.split("."):
        if isinstance(value, Mapping):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


# ------------------------------------------------------------------ filters


def _pattern(value: Any) -> str:
    if isinstance(value, Regex):
        return str(value.pattern)
    if isinstance(value, re.Pattern):
        return str(value.pattern)
    return str(value)


_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def _regex(pattern: Any, options: str = "") -> re.Pattern[str]:
    flags = 0
    if isinstance(pattern, Regex):
        flags = pattern.flags
        pattern = pattern.pattern
    elif isinstance(pattern, re.Pattern):
        flags = pattern.flags & (re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE)
        pattern = pattern.pattern
    if not isinstance(pattern, str):
        raise bad_value("$regex has to be a string")
    for letter in options:
        if letter not in _FLAGS:
            raise bad_value(f"invalid flag in regex options: {letter}")
        flags |= _FLAGS[letter]
    try:
        return re.compile(pattern, flags)
    except re.error:
        raise MongoError(51091, "Regular expression is invalid", "Location51091") from None


def _is_operators(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and next(iter(value)).startswith("$")


def matches(doc: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    """Whether ``doc`` matches the query document ``filter``.

    Raises:
        MongoError: An unknown or malformed operator.
    """
    for field, condition in filter.items():
        if field.startswith("$"):
            if not _logical(doc, field, condition):
                return False
            continue
        if "." not in field and _plain_value(condition):
            # The common case, {"field": value} on a scalar: no path walk.
            value = doc.get(field, MISSING)
            if value is MISSING:
                return False
            if not isinstance(value, list):
                if not equal(value, condition):
                    return False
                continue
        if not _field_matches(resolve(doc, field), condition):
            return False
    return True


def _plain_value(condition: Any) -> bool:
    """A condition that is a plain value to compare for equality (not null, no regex)."""
    return condition is not None and not isinstance(condition, (Mapping, list, Regex, re.Pattern))


def _logical(doc: Mapping[str, Any], operator: str, clauses: Any) -> bool:
    if operator == "$comment":
        return True
    if operator in ("$and", "$or", "$nor"):
        if not isinstance(clauses, list) or not clauses:
            raise bad_value(f"{operator} must be a nonempty array")
        for clause in clauses:
            if not isinstance(clause, Mapping):
                raise bad_value(f"{operator} argument's entries must be objects")
        results = (matches(doc, clause) for clause in clauses)
        if operator == "$and":
            return all(results)
        if operator == "$or":
            return any(results)
        return not any(results)
    if operator in ("$expr", "$where", "$text", "$jsonSchema"):
        raise unsupported(f"the {operator} query operator")
    raise bad_value(f"unknown top level operator: {operator}")


def _field_matches(candidates: list[Any], condition: Any) -> bool:
    if _is_operators(condition):
        if "$regex" in condition:
            options = condition.get("$options", "")
            compiled = _regex(condition["$regex"], options)
            rest = {k: v for k, v in condition.items() if k not in ("$regex", "$options")}
            return _any_element(
                candidates, lambda v: isinstance(v, str) and bool(compiled.search(v))
            ) and (not rest or _field_matches(candidates, rest))
        for operator, operand in condition.items():
            if not operator.startswith("$"):
                raise bad_value(f"unknown operator: {operator}")
            if not _operator(candidates, operator, operand):
                return False
        return True
    return _eq(candidates, condition)


def _any_element(candidates: list[Any], test: Any) -> bool:
    """``test`` holds for a candidate, or for an element of a candidate array."""
    for value in candidates:
        if test(value):
            return True
        if isinstance(value, list) and any(test(element) for element in value):
            return True
    return False


def _eq(candidates: list[Any], operand: Any) -> bool:
    if isinstance(operand, (Regex, re.Pattern)):
        compiled = _regex(operand)
        return _any_element(candidates, lambda v: isinstance(v, str) and bool(compiled.search(v)))
    if operand is None:
        return _any_element(candidates, lambda v: v is None or v is MISSING)
    return _any_element(candidates, lambda v: v is not MISSING and equal(v, operand))


def _ordered(candidates: list[Any], operand: Any, accept: Any) -> bool:
    if isinstance(operand, (Regex, re.Pattern)):
        return False
    target = None if operand is MISSING else operand
    rank = _rank(target)

    def test(value: Any) -> bool:
        value = None if value is MISSING else value
        return _rank(value) == rank and bool(accept(compare(value, target)))

    return _any_element(candidates, test)


def _in(candidates: list[Any], operand: Any, operator: str) -> bool:
    if not isinstance(operand, list):
        raise bad_value(f"{operator} needs an array")
    return any(_eq(candidates, item) for item in operand)


def _operator(candidates: list[Any], operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return _eq(candidates, operand)
    if operator == "$ne":
        return not _eq(candidates, operand)
    if operator == "$gt":
        return _ordered(candidates, operand, lambda c: c > 0)
    if operator == "$gte":
        return _ordered(candidates, operand, lambda c: c >= 0)
    if operator == "$lt":
        return _ordered(candidates, operand, lambda c: c < 0)
    if operator == "$lte":
        return _ordered(candidates, operand, lambda c: c <= 0)
    if operator == "$in":
        return _in(candidates, operand, operator)
    if operator == "$nin":
        return not _in(candidates, operand, operator)
    if operator == "$exists":
        present = any(value is not MISSING for value in candidates)
        return present if operand else not present
    if operator == "$not":
        if isinstance(operand, (Regex, re.Pattern)):
            return not _eq(candidates, operand)
        if not _is_operators(operand):
            raise bad_value("$not needs a regex or a document")
        return not _field_matches(candidates, operand)
    if operator == "$size":
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise bad_value("$size needs a number")
        return any(isinstance(v, list) and len(v) == operand for v in candidates)
    if operator == "$all":
        if not isinstance(operand, list):
            raise bad_value("$all needs an array")
        return bool(operand) and all(_eq(candidates, item) for item in operand)
    if operator == "$elemMatch":
        if not isinstance(operand, Mapping):
            raise bad_value("$elemMatch needs an Object")
        return any(
            isinstance(value, list) and any(_element_matches(e, operand) for e in value)
            for value in candidates
        )
    if operator == "$mod":
        if not isinstance(operand, list) or len(operand) != 2:
            raise bad_value("malformed mod, needs to be an array of 2 elements")
        divisor, remainder = operand
        if not divisor:
            raise bad_value("divisor cannot be 0")

        def test(value: Any) -> bool:
            return _rank(value) == 3 and int(_number(value)) % divisor == remainder

        return _any_element(candidates, test)
    if operator == "$type":
        raise unsupported("the $type query operator")
    raise bad_value(f"unknown operator: {operator}")


def _element_matches(element: Any, spec: Mapping[str, Any]) -> bool:
    if _is_operators(spec) and all(k not in ("$and", "$or", "$nor") for k in spec):
        return _field_matches([element], spec) and not isinstance(element, list)
    return isinstance(element, Mapping) and matches(element, spec)


# -------------------------------------------------------------- projections


def _projection_spec(projection: Any) -> dict[str, Any]:
    if isinstance(projection, Mapping):
        return dict(projection)
    return dict.fromkeys(projection, 1)


def project(doc: Document, projection: Any) -> Document:
    """``doc`` with only the fields ``projection`` includes (or without the ones it excludes).

    Raises:
        MongoError: Inclusion mixed with exclusion, or an unsupported
            projection operator.
    """
    if projection is None:
        return doc
    spec = _projection_spec(projection)
    id_flag = spec.pop("_id", None)
    for value in spec.values():
        if isinstance(value, (Mapping, str, list)):
            raise unsupported("a find projection with operators or expressions")
    flags = {bool(value) for value in spec.values()}
    if len(flags) > 1:
        raise MongoError(
            31254, "Cannot do exclusion on a field in inclusion projection", "Location31254"
        )
    include = flags == {True} or (not flags and id_flag is not None and bool(id_flag))
    if include:
        out: Document = {}
        if (id_flag is None or bool(id_flag)) and "_id" in doc:
            out["_id"] = doc["_id"]
        tree = _tree(spec)
        for key, value in doc.items():
            if key in tree and key != "_id":
                sub = tree[key]
                if sub is True:
                    out[key] = value
                else:
                    picked = _include(value, sub)
                    if picked is not MISSING:
                        out[key] = picked
        return out
    out = dict(doc)
    if id_flag is not None and not bool(id_flag):
        out.pop("_id", None)
    excluded: Document = _exclude(out, _tree(spec))
    return excluded


def _tree(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted paths as a nested dict; a leaf is ``True``."""
    tree: dict[str, Any] = {}
    for path in spec:
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is True:
                break
            node = node.setdefault(part, {})
        else:
            node[parts[-1]] = True
    return tree


def _include(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, Mapping):
        out: Document = {}
        for key, item in value.items():
            if key in tree:
                sub = tree[key]
                if sub is True:
                    out[key] = item
                else:
                    picked = _include(item, sub)
                    if picked is not MISSING:
                        out[key] = picked
        return out
    if isinstance(value, list):
        return [_include(item, tree) for item in value if isinstance(item, (Mapping, list))]
    return MISSING


def _exclude(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, Mapping):
        out: Document = {}
        for key, item in value.items():
            sub = tree.get(key)
            if sub is True:
                continue
            out[key] = item if sub is None else _exclude(item, sub)
        return out
    if isinstance(value, list):
        return [_exclude(item, tree) for item in value]
    return value


# -------------------------------------------------------------------- sorts


def _sort_value(doc: Mapping[str, Any], path: str, descending: bool) -> Any:
    """The value a document sorts by, as the server keys it.

    An array sorts by its least (or, descending, greatest) element, an empty
    one below ``null``; array elements without the field are left out
    (the document sorts as ``null`` only when none has it).
    """
    values: list[Any] = []
    for value in resolve(doc, path):
        if isinstance(value, list):
            values.extend(value if value else [_EMPTY_ARRAY])
        elif value is not MISSING:
            values.append(value)
    if not values:
        return None
    key = functools.cmp_to_key(compare)
    if _EMPTY_ARRAY in values:
        return _EMPTY_ARRAY
    return max(values, key=key) if descending else min(values, key=key)


def sort_documents(docs: list[Document], spec: Sequence[tuple[str, Any]]) -> list[Document]:
    """``docs`` sorted by ``spec`` (``[(field, 1 | -1), ...]``), stably.

    Raises:
        MongoError: A direction other than 1 or -1.
    """
    directions: list[tuple[str, bool]] = []
    for field, direction in spec:
        if isinstance(direction, bool) or direction not in (1, -1):
            if isinstance(direction, Mapping):
                raise unsupported("a $meta sort")
            raise bad_value("$sort key ordering must be 1 (for ascending) or -1 (for descending)")
        directions.append((field, direction == -1))

    def order(a: Document, b: Document) -> int:
        for field, descending in directions:
            result = compare(_sort_value(a, field, descending), _sort_value(b, field, descending))
            if result:
                return -result if descending else result
        return 0

    return sorted(docs, key=functools.cmp_to_key(order))


def number_value(value: Any) -> Any:
    """A BSON number as a Python number (``Int64`` and ``Decimal128`` unwrapped)."""
    if isinstance(value, Int64):
        return int(value)
    return _number(value)
