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
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import bson
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex, str_flags_to_int
from bson.timestamp import Timestamp

__all__ = [
    "MISSING",
    "TYPE_CODES",
    "MongoError",
    "bson_type",
    "compare",
    "compile_filter",
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


_MAX_RANK = 15


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
    if isinstance(value, Code):
        return 13
    if isinstance(value, str):
        return 4
    if isinstance(value, Mapping):
        return 5
    if isinstance(value, (list, tuple)):
        return 6
    if isinstance(value, (bytes, bytearray, bson.Binary, uuid.UUID)):
        return 7
    if isinstance(value, bson.ObjectId):
        return 8
    if isinstance(value, (datetime.datetime, DatetimeMS)):
        return 10
    if isinstance(value, Timestamp):
        return 11
    if isinstance(value, (Regex, re.Pattern)):
        return 12
    if isinstance(value, MaxKey):
        return _MAX_RANK
    return 14


def _binary(value: Any) -> tuple[int, int, bytes]:
    """BinData as the server orders it: length, then subtype, then the bytes."""
    if isinstance(value, uuid.UUID):
        return (16, 4, value.bytes)
    subtype = value.subtype if isinstance(value, bson.Binary) else 0
    return (len(value), subtype, bytes(value))


def _millis(value: Any) -> int:
    """A date as milliseconds since the epoch (``DatetimeMS`` or ``datetime``)."""
    if isinstance(value, DatetimeMS):
        return int(value)
    return int(DatetimeMS(value))


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
        return _cmp(_binary(a), _binary(b))
    if ra == 10:
        if isinstance(a, DatetimeMS) or isinstance(b, DatetimeMS):
            return _cmp(_millis(a), _millis(b))
        return _cmp(_utc(a), _utc(b))
    if ra == 11:
        return _cmp((a.time, a.inc), (b.time, b.inc))
    if ra == 12:
        return _cmp(_regex_key(a), _regex_key(b))
    if ra == 13:
        return _cmp(str(a), str(b))
    if ra in (0, 1, 2, _MAX_RANK):
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
        return (7, _binary(value))
    if rank == 10:
        return (10, _millis(value))
    if rank == 11:
        return (11, value.time, value.inc)
    if rank == 12:
        return (12, _regex_key(value))
    if rank == 13:
        return (13, str(value))
    if rank in (0, 1, 2, _MAX_RANK):
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

Predicate = Callable[[Any], bool]
"""A test of one value (``MISSING`` for a field that is not there), arrays not expanded."""

Candidates = Callable[[list[Any]], bool]
"""A test of the values a path reaches in a document (``resolve``)."""

INVALID_REGEX_OPTION = 51108
_REGEX_LETTERS = (
    (re.IGNORECASE, "i"),
    (re.LOCALE, "l"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.UNICODE, "u"),
    (re.VERBOSE, "x"),
)
# Options a query may give ("u" is implied by Python's str patterns).
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0}
_PYTHON_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE

# Valid MongoDB query operators the fake does not implement: refused as
# UNSUPPORTED (never as an unknown operator, never a wrong answer).
_UNSUPPORTED_FIELD = frozenset(
    {
        "$bitsAllClear",
        "$bitsAllSet",
        "$bitsAnyClear",
        "$bitsAnySet",
        "$geoIntersects",
        "$geoWithin",
        "$near",
        "$nearSphere",
        "$within",
        "$jsonSchema",
        "$maxDistance",
        "$minDistance",
    }
)
_UNSUPPORTED_TOP = frozenset(
    {"$expr", "$where", "$text", "$jsonSchema", "$sampleRate", "$alwaysTrue", "$alwaysFalse"}
)
_LOGICAL = frozenset({"$and", "$or", "$nor"})
# Top-level operators: an $elemMatch starting with one is the object form.
_PATHLESS = _LOGICAL | _UNSUPPORTED_TOP | {"$comment"}
_DBREF_FIELDS = frozenset({"$ref", "$id", "$db"})

# $type: the aliases and numbers MongoDB accepts ("number" is any numeric type).
TYPE_CODES: dict[str, int] = {
    "double": 1,
    "string": 2,
    "object": 3,
    "array": 4,
    "binData": 5,
    "undefined": 6,
    "objectId": 7,
    "bool": 8,
    "date": 9,
    "null": 10,
    "regex": 11,
    "dbPointer": 12,
    "javascript": 13,
    "symbol": 14,
    "javascriptWithScope": 15,
    "int": 16,
    "timestamp": 17,
    "long": 18,
    "decimal": 19,
    "minKey": -1,
    "maxKey": 127,
}
_NUMBER_TYPES = frozenset({1, 16, 18, 19})
_INT32 = 2**31


def bson_type(value: Any) -> int | None:
    """The BSON type number of a decoded value (``None`` for ``MISSING``)."""
    if value is MISSING:
        return None
    if value is None:
        return 10
    if isinstance(value, bool):
        return 8
    if isinstance(value, Int64):
        return 18
    if isinstance(value, int):
        return 16 if -_INT32 <= value < _INT32 else 18
    if isinstance(value, float):
        return 1
    if isinstance(value, Code):
        return 15 if value.scope is not None else 13
    if isinstance(value, str):
        return 2
    if isinstance(value, (Mapping, DBRef)):
        return 3
    if isinstance(value, (list, tuple)):
        return 4
    if isinstance(value, (bytes, bytearray, bson.Binary, uuid.UUID)):
        return 5
    if isinstance(value, bson.ObjectId):
        return 7
    if isinstance(value, (datetime.datetime, DatetimeMS)):
        return 9
    if isinstance(value, (Regex, re.Pattern)):
        return 11
    if isinstance(value, Timestamp):
        return 17
    if isinstance(value, Decimal128):
        return 19
    if isinstance(value, MinKey):
        return -1
    if isinstance(value, MaxKey):
        return 127
    return None


def _regex_key(value: Any) -> tuple[str, str]:
    """A regex as the server keeps it: its pattern and its sorted option letters."""
    flags = value.flags
    if isinstance(flags, str):
        flags = str_flags_to_int(flags)
    letters = "".join(letter for bit, letter in _REGEX_LETTERS if flags & bit)
    return (str(value.pattern), letters)


def _regex(pattern: Any, options: Any = "") -> re.Pattern[str]:
    flags = 0
    if isinstance(pattern, (Regex, re.Pattern)):
        raw = pattern.flags
        flags = (str_flags_to_int(raw) if isinstance(raw, str) else raw) & _PYTHON_FLAGS
        pattern = pattern.pattern
    if not isinstance(pattern, str):
        raise bad_value("$regex has to be a string")
    if not isinstance(options, str):
        raise bad_value("$options has to be a string")
    for letter in options:
        if letter not in _FLAGS:
            raise MongoError(
                INVALID_REGEX_OPTION,
                f"invalid flag in regex options: {letter}",
                f"Location{INVALID_REGEX_OPTION}",
            )
        flags |= _FLAGS[letter]
    try:
        return re.compile(pattern, flags)
    except re.error:
        raise MongoError(51091, "Regular expression is invalid", "Location51091") from None


def _true_value(value: Any) -> bool:
    """BSON truthiness (``$exists``): false, 0 and null are false, anything else true."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal128)):
        return bool(_number(value))
    return True


def _is_operators(value: Any) -> bool:
    """A condition document of operators (its first key is ``$...``, not a DBRef's)."""
    if not isinstance(value, Mapping) or not value:
        return False
    first = next(iter(value))
    return isinstance(first, str) and first.startswith("$") and first not in _DBREF_FIELDS


def compile_filter(filter: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """The query document ``filter`` as a test of one document.

    The whole filter is checked first, as a server parses it before it reads
    a document: a malformed or unknown operator raises even when no document
    would reach it.

    Raises:
        MongoError: An unknown or malformed operator (BadValue, code 2), or
            one the fake does not implement (code 115).
    """
    if not isinstance(filter, Mapping):
        raise bad_value("a query filter must be an object")
    tests = [_compile_entry(field, condition) for field, condition in filter.items()]
    if not tests:
        return _always
    if len(tests) == 1:
        return tests[0]
    return lambda doc: all(test(doc) for test in tests)


def matches(doc: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    """Whether ``doc`` matches the query document ``filter``.

    Raises:
        MongoError: An unknown or malformed operator.
    """
    return compile_filter(filter)(doc)


def _always(doc: Any) -> bool:
    return True


def _compile_entry(field: str, condition: Any) -> Callable[[Mapping[str, Any]], bool]:
    if field.startswith("$"):
        return _compile_logical(field, condition)
    if "." not in field and _plain_value(condition):
        # The common case, {"field": value} on a scalar: no path walk.
        candidates = _equality_candidates(condition)

        def plain(doc: Mapping[str, Any]) -> bool:
            value = doc.get(field, MISSING)
            if value is MISSING:
                return False
            if not isinstance(value, list):
                return equal(value, condition)
            return candidates([value])

        return plain
    test = _compile_condition(condition)
    return lambda doc: test(resolve(doc, field))


def _plain_value(condition: Any) -> bool:
    """A condition that is a plain value to compare for equality (not null, no regex)."""
    return condition is not None and not isinstance(
        condition, (Mapping, list, Regex, re.Pattern, MinKey, MaxKey)
    )


def _compile_logical(operator: str, clauses: Any) -> Callable[[Mapping[str, Any]], bool]:
    if operator == "$comment":
        return _always
    if operator in _LOGICAL:
        if not isinstance(clauses, list) or not clauses:
            raise bad_value(f"{operator} must be a nonempty array")
        for clause in clauses:
            if not isinstance(clause, Mapping):
                raise bad_value(f"{operator} argument's entries must be objects")
        tests = [compile_filter(clause) for clause in clauses]
        if operator == "$and":
            return lambda doc: all(test(doc) for test in tests)
        if operator == "$or":
            return lambda doc: any(test(doc) for test in tests)
        return lambda doc: not any(test(doc) for test in tests)
    if operator in _UNSUPPORTED_TOP:
        raise unsupported(f"the {operator} query operator")
    raise bad_value(
        f"unknown top level operator: {operator}. If you have a field name that starts"
        " with a '$' symbol, consider using $getField or $setField."
    )


def _compile_condition(condition: Any) -> Candidates:
    """The test of a field's condition: an operator document, or a value to equal."""
    if not _is_operators(condition):
        return _equality_candidates(condition)
    tests = [_field_operator(op, operand) for op, operand in _operators(condition)]
    if len(tests) == 1:
        return tests[0]
    return lambda candidates: all(test(candidates) for test in tests)


def _operators(condition: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The operators of a condition, ``$regex`` and its ``$options`` made one."""
    ops: list[tuple[str, Any]] = []
    for operator, operand in condition.items():
        if not isinstance(operator, str) or not operator.startswith("$"):
            raise bad_value(f"unknown operator: {operator}")
        if operator == "$options":
            if "$regex" not in condition:
                raise bad_value("$options needs a $regex")
            continue
        if operator == "$regex":
            options = condition.get("$options", "")
            if (
                isinstance(operand, (Regex, re.Pattern))
                and options
                and _regex_key(operand)[1].replace("u", "")
            ):
                raise MongoError(51075, "options set in both $regex and $options", "Location51075")
            operand = (operand, options)
        ops.append((operator, operand))
    return ops


def _expand(test: Predicate) -> Candidates:
    """A leaf test on a path: any value reached, or any element of an array reached."""

    def candidates(values: list[Any]) -> bool:
        for value in values:
            if test(value):
                return True
            if isinstance(value, list):
                for element in value:
                    if test(element):
                        return True
        return False

    return candidates


def _whole(test: Predicate) -> Candidates:
    """An array test on a path ($size, $elemMatch): the values reached, not their elements."""
    return lambda values: any(test(value) for value in values)


def _equality_candidates(operand: Any) -> Candidates:
    return _expand(_equality(operand))


def _field_operator(operator: str, operand: Any) -> Candidates:
    """The test of one operator of a field's condition (on the values its path reaches)."""
    if operator == "$ne":
        if isinstance(operand, (Regex, re.Pattern)):
            raise bad_value("Can't have regex as arg to $ne.")
        positive = _expand(_eq_operator(operand))
        return lambda values: not positive(values)
    if operator == "$nin":
        positive = _expand(_in(operand, operator))
        return lambda values: not positive(values)
    if operator == "$not":
        if isinstance(operand, (Regex, re.Pattern)):
            inner = _expand(_regex_test(_regex(operand), operand))
        elif isinstance(operand, Mapping):
            if not operand:
                raise bad_value("$not cannot be empty")
            if not _is_operators(operand):
                raise bad_value(f"unknown operator: {next(iter(operand))}")
            inner = _compile_condition(operand)
        else:
            raise bad_value("$not needs a regex or a document")
        return lambda values: not inner(values)
    if operator == "$exists":
        wanted = _true_value(operand)
        return lambda values: any(v is not MISSING for v in values) is wanted
    if operator in ("$size", "$elemMatch"):
        return _whole(_single(operator, operand))
    if operator == "$all":
        return _all(operand)
    return _expand(_single(operator, operand))


def _all(operand: Any) -> Candidates:
    if not isinstance(operand, list):
        raise bad_value("$all needs an array")
    if not operand:
        return lambda values: False
    first = operand[0]
    if isinstance(first, Mapping) and first and next(iter(first)) == "$elemMatch":
        tests = []
        for item in operand:
            if not (isinstance(item, Mapping) and list(item) == ["$elemMatch"]):
                raise bad_value("$all/$elemMatch has to be consistent")
            tests.append(_whole(_single("$elemMatch", item["$elemMatch"])))
    else:
        for item in operand:
            if _is_operators(item):
                raise bad_value("no $ expressions in $all")
        tests = [_equality_candidates(item) for item in operand]
    return lambda values: all(test(values) for test in tests)


def _single(operator: str, operand: Any) -> Predicate:
    """The test of one operator on one value, arrays not expanded (``$elemMatch``'s elements)."""
    if operator == "$eq":
        return _eq_operator(operand)
    if operator in ("$gt", "$gte", "$lt", "$lte"):
        return _comparison(operator, operand)
    if operator == "$in":
        return _in(operand, operator)
    if operator == "$regex":
        pattern, options = operand
        compiled = _regex(pattern, options)
        if isinstance(pattern, (Regex, re.Pattern)):
            literal = pattern
        else:
            letters = "".join(sorted(set(options)))
            literal = Regex(pattern, str_flags_to_int(letters))
        return _regex_test(compiled, literal)
    if operator == "$size":
        size = _size(operand)
        return lambda value: isinstance(value, list) and len(value) == size
    if operator == "$elemMatch":
        return _elem_match(operand)
    if operator == "$mod":
        return _mod(operand)
    if operator == "$type":
        return _type(operand)
    if operator in ("$ne", "$nin", "$not"):
        positive = _single_positive(operator, operand)
        return lambda value: not positive(value)
    if operator == "$exists":
        wanted = _true_value(operand)
        return lambda value: (value is not MISSING) is wanted
    if operator == "$all":
        if not isinstance(operand, list):
            raise bad_value("$all needs an array")
        for item in operand:
            if _is_operators(item) and list(item) != ["$elemMatch"]:
                raise bad_value("no $ expressions in $all")
        tests = [
            _elem_match(item["$elemMatch"]) if _is_operators(item) else _equality(item)
            for item in operand
        ]
        return lambda value: bool(tests) and all(test(value) for test in tests)
    if operator in _UNSUPPORTED_FIELD:
        raise unsupported(f"the {operator} query operator")
    raise bad_value(f"unknown operator: {operator}")


def _single_positive(operator: str, operand: Any) -> Predicate:
    """What ``$ne`` / ``$nin`` / ``$not`` negate, on one value."""
    if operator == "$ne":
        if isinstance(operand, (Regex, re.Pattern)):
            raise bad_value("Can't have regex as arg to $ne.")
        return _eq_operator(operand)
    if operator == "$nin":
        return _in(operand, operator)
    if isinstance(operand, (Regex, re.Pattern)):
        return _regex_test(_regex(operand), operand)
    if not isinstance(operand, Mapping):
        raise bad_value("$not needs a regex or a document")
    if not operand:
        raise bad_value("$not cannot be empty")
    if not _is_operators(operand):
        raise bad_value(f"unknown operator: {next(iter(operand))}")
    tests = [_single(op, value) for op, value in _operators(operand)]
    return lambda value: all(test(value) for test in tests)


def _equality(operand: Any) -> Predicate:
    """``{field: operand}``: a regex matches strings, null matches a missing field."""
    if isinstance(operand, (Regex, re.Pattern)):
        return _regex_test(_regex(operand), operand)
    if operand is None:
        return lambda value: value is None or value is MISSING
    return lambda value: value is not MISSING and equal(value, operand)


def _eq_operator(operand: Any) -> Predicate:
    """``$eq``: like an equality, but a regex is a value to equal, not a pattern to match."""
    if isinstance(operand, (Regex, re.Pattern)):
        key = _regex_key(operand)
        return lambda value: isinstance(value, (Regex, re.Pattern)) and _regex_key(value) == key
    return _equality(operand)


def _regex_test(compiled: re.Pattern[str], literal: Any) -> Predicate:
    """A regex matches strings it finds itself in, and a stored regex equal to it."""
    key = _regex_key(literal)

    def test(value: Any) -> bool:
        if isinstance(value, str):
            return not isinstance(value, Code) and compiled.search(value) is not None
        if isinstance(value, (Regex, re.Pattern)):
            return _regex_key(value) == key
        return False

    return test


def _comparison(operator: str, operand: Any) -> Predicate:
    if isinstance(operand, (Regex, re.Pattern)):
        raise bad_value("Can't have RegEx as arg to predicate over field.")
    accept: Callable[[int], bool] = {
        "$gt": lambda c: c > 0,
        "$gte": lambda c: c >= 0,
        "$lt": lambda c: c < 0,
        "$lte": lambda c: c <= 0,
    }[operator]
    if isinstance(operand, (MinKey, MaxKey)):
        # Every value is above MinKey and below MaxKey (type bracketing aside).
        same = MinKey if isinstance(operand, MinKey) else MaxKey
        if operator in ("$gt", "$gte"):
            below = isinstance(operand, MinKey)
        else:
            below = isinstance(operand, MaxKey)
        inclusive = operator in ("$gte", "$lte")
        return lambda value: (
            (isinstance(value, same) and inclusive) or (not isinstance(value, same) and below)
        )
    target = operand
    rank = _rank(target)

    def test(value: Any) -> bool:
        if value is MISSING:
            value = None
        return _rank(value) == rank and accept(compare(value, target))

    return test


def _in(operand: Any, operator: str) -> Predicate:
    if not isinstance(operand, list):
        raise bad_value(f"{operator} needs an array")
    tests: list[Predicate] = []
    for item in operand:
        if _is_operators(item):
            raise bad_value("cannot nest $ under $in")  # $nin is parsed as a negated $in
        tests.append(_equality(item))
    return lambda value: any(test(value) for test in tests)


def _whole_number(number: Any) -> bool:
    """A finite number without a fraction (``int``, ``float`` or ``Decimal``)."""
    try:
        return bool(number == int(number))
    except (ValueError, OverflowError, ArithmeticError):  # NaN, infinities
        return False


def _size(operand: Any) -> int:
    if isinstance(operand, bool) or not isinstance(operand, (int, float, Decimal128)):
        raise bad_value(f"Failed to parse $size. Expected a number in: $size: {operand!r}")
    number = _number(operand)
    if not _whole_number(number):
        raise bad_value(f"Failed to parse $size. Expected an integer: $size: {operand!r}")
    if number < 0:
        raise bad_value(
            f"Failed to parse $size. Expected a non-negative number in: $size: {number}"
        )
    return int(number)


def _elem_match(operand: Any) -> Predicate:
    if not isinstance(operand, Mapping):
        raise bad_value("$elemMatch needs an Object")
    if _is_operators(operand) and next(iter(operand)) not in _PATHLESS:
        # The value form, {"$elemMatch": {"$gte": 80, "$lt": 85}}: each element itself.
        tests = [_single(op, value) for op, value in _operators(operand)]

        def value_form(value: Any) -> bool:
            if not isinstance(value, list):
                return False
            return any(all(test(element) for test in tests) for element in value)

        return value_form
    # The object form, {"$elemMatch": {"qty": {"$gt": 5}}}: an element is a document
    # (an array element is one too, its indexes as field names).
    inner = compile_filter(operand)

    def object_form(value: Any) -> bool:
        if not isinstance(value, list):
            return False
        for element in value:
            if isinstance(element, list):
                element = {str(i): item for i, item in enumerate(element)}
            if isinstance(element, Mapping) and inner(element):
                return True
        return False

    return object_form


def _mod(operand: Any) -> Predicate:
    if not isinstance(operand, list):
        raise bad_value("malformed mod, needs to be an array")
    if len(operand) < 2:
        raise bad_value("malformed mod, not enough elements")
    if len(operand) > 2:
        raise bad_value("malformed mod, too many elements")
    parts = []
    for what, item in zip(("divisor", "remainder"), operand, strict=True):
        if isinstance(item, bool) or not isinstance(item, (int, float, Decimal128)):
            raise bad_value(f"malformed mod, {what} not a number")
        number = _number(item)
        if number != number or number in (float("inf"), float("-inf")):
            raise bad_value(f"malformed mod, {what} value is invalid")
        parts.append(int(number))  # truncated toward zero, as the server does
    divisor, remainder = parts
    if divisor == 0:
        raise bad_value("divisor cannot be 0")

    def test(value: Any) -> bool:
        if _rank(value) != 3:
            return False
        number = _number(value)
        if number != number or number in (float("inf"), float("-inf")):
            return False
        dividend = int(number)
        # C's %: the remainder takes the dividend's sign (-5 % 4 == -1).
        result = abs(dividend) % abs(divisor)
        return (-result if dividend < 0 else result) == remainder

    return test


def _type(operand: Any) -> Predicate:
    items = operand if isinstance(operand, list) else [operand]
    if isinstance(operand, list) and not operand:
        raise bad_value("$type must match at least one type")
    wanted: set[int] = set()
    for item in items:
        if isinstance(item, str):
            if item == "number":
                wanted |= _NUMBER_TYPES
            elif item in TYPE_CODES:
                wanted.add(TYPE_CODES[item])
            else:
                raise bad_value(f"Unknown type name alias: {item}")
        elif not isinstance(item, bool) and isinstance(item, (int, float, Decimal128)):
            number = _number(item)
            if not _whole_number(number) or int(number) not in TYPE_CODES.values():
                raise bad_value(f"Invalid numerical type code: {item}")
            wanted.add(int(number))
        else:
            raise MongoError(14, "type must be represented as a number or a string", "TypeMismatch")
    return lambda value: bson_type(value) in wanted


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
