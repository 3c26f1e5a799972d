"""Update operators of ``FakeMongoDB``: ``$set``, ``$inc``, ``$push``... and upsert seeds.

Pure functions that change a decoded document in place, with the server's
error codes for what it refuses (a conflict between two operators on one
path, ``$inc`` on a string, changing ``_id``).
"""

from __future__ import annotations

import copy
import datetime
import decimal
import re
from collections.abc import Mapping
from typing import Any

from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64
from bson.regex import Regex
from bson.timestamp import Timestamp

from dictamesh_connectors.testing.fakes._mongo_query import (
    MISSING,
    MongoError,
    bad_value,
    compare,
    equal,
    get_path,
    matches,
    resolve,
    unsupported,
)

__all__ = ["apply_update", "upsert_seed"]

Document = dict[str, Any]

TYPE_MISMATCH = 14
CONFLICTING_OPERATORS = 40
IMMUTABLE_FIELD = 66
PATH_NOT_VIABLE = 28
EMPTY_FIELD_NAME = 56
_INT32 = 2**31
_INT64 = 2**63

_OPERATORS = (
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$push",
    "$addToSet",
    "$pull",
    "$pop",
    "$rename",
    "$setOnInsert",
    "$currentDate",
)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, Decimal128))


def _arithmetic(operator: str, current: Any, operand: Any) -> Any:
    """``current + operand`` (``$inc``) or ``current * operand`` (``$mul``), typed as the server
    types it: decimal if either is one, else double if either is one, else a 64-bit
    integer if either is one or a 32-bit result overflows, else a 32-bit integer.

    Raises:
        MongoError: A 64-bit integer overflow (BadValue, as on the server).
    """
    if isinstance(current, Decimal128) or isinstance(operand, Decimal128):
        with decimal.localcontext(create_decimal128_context()) as context:
            a, b = (_decimal(current), _decimal(operand))
            return Decimal128(context.add(a, b) if operator == "$inc" else context.multiply(a, b))
    if isinstance(current, float) or isinstance(operand, float):
        return float(current) + float(operand) if operator == "$inc" else float(current) * operand
    result = int(current) + int(operand) if operator == "$inc" else int(current) * int(operand)
    if not -_INT64 <= result < _INT64:
        raise bad_value(f"Failed to apply {operator} operations to current value: overflow")
    if isinstance(current, Int64) or isinstance(operand, Int64) or not -_INT32 <= result < _INT32:
        return Int64(result)
    return result


def _decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, float):
        return decimal.Decimal(repr(value))
    return decimal.Decimal(int(value))


def _zero_like(value: Any) -> Any:
    """The zero of ``value``'s numeric type (``$mul`` on a missing field)."""
    if isinstance(value, Decimal128):
        return Decimal128("0")
    if isinstance(value, float):
        return 0.0
    if isinstance(value, Int64):
        return Int64(0)
    return 0


def _parent(doc: Document, path: str, create: bool) -> tuple[Any, str]:
    """The container holding the last part of ``path`` (created when ``create``)."""
    parts = path.split(".")
    node: Any = doc
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, dict):
            if part not in node:
                if not create:
                    return None, parts[-1]
                node[part] = {}
            node = node[part]
        elif isinstance(node, list) and part.isdigit():
            index = int(part)
            if index >= len(node):
                if not create:
                    return None, parts[-1]
                node.extend([None] * (index + 1 - len(node)))
                node[index] = {}
            node = node[index]
        else:
            if not create:
                return None, parts[-1]
            where = ".".join(parts[: depth + 1])
            raise MongoError(
                PATH_NOT_VIABLE,
                f"Cannot create field '{part}' in element {{{where}: ...}}",
                "PathNotViable",
            )
    if not isinstance(node, (dict, list)):
        if not create:
            return None, parts[-1]
        raise MongoError(
            PATH_NOT_VIABLE, f"Cannot create field '{parts[-1]}' in a scalar", "PathNotViable"
        )
    return node, parts[-1]


def _get(container: Any, part: str) -> Any:
    if isinstance(container, dict):
        return container.get(part, MISSING)
    if isinstance(container, list) and part.isdigit() and int(part) < len(container):
        return container[int(part)]
    return MISSING


def _put(container: Any, part: str, value: Any) -> None:
    if isinstance(container, dict):
        container[part] = value
        return
    if not part.isdigit():
        raise MongoError(
            PATH_NOT_VIABLE, f"Cannot create field '{part}' in an array", "PathNotViable"
        )
    index = int(part)
    if index >= len(container):
        container.extend([None] * (index + 1 - len(container)))
    container[index] = value


def _remove(container: Any, part: str) -> None:
    if isinstance(container, dict):
        container.pop(part, None)
    elif isinstance(container, list) and part.isdigit() and int(part) < len(container):
        container[int(part)] = None  # $unset of an array element leaves null


def _check_paths(update: Mapping[str, Any]) -> None:
    seen: list[str] = []
    for operator, fields in update.items():
        if operator not in _OPERATORS:
            if operator in ("$bit",):
                raise unsupported(f"the {operator} update operator")
            raise bad_value(f"Unknown modifier: {operator}. Expected a valid update modifier")
        if not isinstance(fields, Mapping):
            raise MongoError(
                9, f"Modifiers operate on fields but we found type for {operator}", "FailedToParse"
            )
        paths = list(fields)
        if operator == "$rename":
            paths += [str(v) for v in fields.values()]
        for path in paths:
            if "" in path.split("."):
                raise MongoError(
                    EMPTY_FIELD_NAME,
                    f"The update path '{path}' contains an empty field name, which is not allowed.",
                    "EmptyFieldName",
                )
            if "$" in path.split(".") or any(p.startswith("$") for p in path.split(".")):
                raise unsupported("the positional operators ($, $[], $[<id>])")
            if operator == "$currentDate":
                _current_date_type(fields[path])
            for other in seen:
                if path == other or path.startswith(other + ".") or other.startswith(path + "."):
                    raise MongoError(
                        CONFLICTING_OPERATORS,
                        f"Updating the path '{path}' would create a conflict at '{other}'",
                        "ConflictingUpdateOperators",
                    )
            seen.append(path)


def apply_update(doc: Document, update: Mapping[str, Any], *, inserting: bool) -> None:
    """Apply the operators of ``update`` to ``doc`` in place.

    Args:
        doc: The document (its ``_id`` must not change).
        update: ``{"$set": {...}, "$inc": {...}, ...}``.
        inserting: The update builds an upserted document (``$setOnInsert`` applies).

    Raises:
        MongoError: An unknown operator, a conflict, a type mismatch, a change of ``_id``.
    """
    _check_paths(update)
    original_id = doc.get("_id", MISSING)
    for operator, fields in update.items():
        for path, operand in fields.items():
            _apply(doc, operator, path, operand, inserting)
    if original_id is not MISSING and ("_id" not in doc or not equal(doc["_id"], original_id)):
        raise MongoError(
            IMMUTABLE_FIELD,
            "Performing an update on the path '_id' would modify the immutable field '_id'",
            "ImmutableField",
        )


def _apply(doc: Document, operator: str, path: str, operand: Any, inserting: bool) -> None:
    if operator == "$setOnInsert":
        if inserting:
            container, last = _parent(doc, path, create=True)
            _put(container, last, copy.deepcopy(operand))
        return
    if operator == "$unset":
        container, last = _parent(doc, path, create=False)
        if container is not None:
            _remove(container, last)
        return
    if operator == "$rename":
        if not isinstance(operand, str):
            raise bad_value("The 'to' field for $rename must be a string")
        if operand == path:
            raise bad_value("The source and target field for $rename must differ")
        if operand.startswith(path + ".") or path.startswith(operand + "."):
            raise bad_value("The source and target field for $rename must not be on the same path")
        _no_array_on(doc, path)
        container, last = _parent(doc, path, create=False)
        if container is None or _get(container, last) is MISSING:
            return
        value = _get(container, last)
        _remove(container, last)
        target, target_last = _parent(doc, operand, create=True)
        _put(target, target_last, value)
        return
    if operator == "$pop" and (operand not in (1, -1) or isinstance(operand, bool)):
        raise MongoError(9, "$pop expects 1 or -1", "FailedToParse")
    container, last = _parent(doc, path, create=operator not in ("$pull", "$pop"))
    current = MISSING if container is None else _get(container, last)
    if operator == "$set":
        _put(container, last, copy.deepcopy(operand))
    elif operator in ("$inc", "$mul"):
        if not _is_number(operand):
            raise MongoError(
                TYPE_MISMATCH, f"Cannot {operator[1:]} with non-numeric argument", "TypeMismatch"
            )
        if current is MISSING:
            _put(container, last, operand if operator == "$inc" else _zero_like(operand))
        elif not _is_number(current):
            raise MongoError(
                TYPE_MISMATCH,
                f"Cannot apply {operator} to a value of non-numeric type",
                "TypeMismatch",
            )
        else:
            result = _arithmetic(operator, current, operand)
            # Same type and value (0.0 * -1 is -0.0): a no-op, as the server's
            # arithmetic counts it, so the document is not "modified".
            if type(result) is not type(current) or result != current:
                _put(container, last, result)
    elif operator in ("$min", "$max"):
        if current is MISSING:
            _put(container, last, copy.deepcopy(operand))
        else:
            order = compare(operand, current)
            if (operator == "$min" and order < 0) or (operator == "$max" and order > 0):
                _put(container, last, copy.deepcopy(operand))
    elif operator in ("$push", "$addToSet"):
        _push(container, last, current, operator, operand)
    elif operator == "$pull":
        if current is MISSING:
            return
        if not isinstance(current, list):
            raise bad_value("Cannot apply $pull to a non-array value")
        _put(container, last, [item for item in current if not _pulled(item, operand)])
    elif operator == "$pop":
        if current is MISSING:
            return
        if not isinstance(current, list):
            raise MongoError(
                TYPE_MISMATCH, "Path contains an element of non-array type", "TypeMismatch"
            )
        if current:
            current.pop(-1 if operand == 1 else 0)
    elif operator == "$currentDate":
        now = datetime.datetime.now(datetime.timezone.utc)
        if _current_date_type(operand) == "timestamp":
            _put(container, last, Timestamp(now, 1))
        else:
            _put(container, last, now.replace(microsecond=now.microsecond // 1000 * 1000))


def _current_date_type(operand: Any) -> str:
    """``"date"`` or ``"timestamp"``: what ``$currentDate`` sets (``true`` or ``{"$type": ...}``).

    Raises:
        MongoError: Any other operand (BadValue, as on the server).
    """
    if isinstance(operand, bool):
        return "date"
    if isinstance(operand, Mapping) and list(operand) == ["$type"]:
        kind = operand["$type"]
        if kind in ("date", "timestamp"):
            return str(kind)
        raise bad_value("The '$type' string field is required to be 'date' or 'timestamp'")
    raise bad_value(
        f"{operand!r} is not valid type for $currentDate. Please use a boolean ('true') "
        "or a $type expression ({$type: 'timestamp/date'})."
    )


def _no_array_on(doc: Document, path: str) -> None:
    """``$rename`` refuses a source that exists inside an array (2), or through one (28)."""
    if not resolve_exists(doc, path):
        return
    node: Any = doc
    for part in path.split("."):
        if isinstance(node, list):
            if part.isdigit():
                raise bad_value("The source field cannot be an array element")
            raise MongoError(
                PATH_NOT_VIABLE, f"cannot use the part ({part}) to traverse the element",
                "PathNotViable",
            )  # fmt: skip
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]


def _push(container: Any, last: str, current: Any, operator: str, operand: Any) -> None:
    if current is MISSING:
        current = []
        _put(container, last, current)
    elif not isinstance(current, list):
        raise bad_value(
            f"The field '{last}' must be an array but is of type {type(current).__name__}"
        )
    if isinstance(operand, Mapping) and "$each" in operand:
        items = operand["$each"]
        if not isinstance(items, list):
            raise bad_value("The argument to $each must be an array")
        extra = set(operand) - {"$each"}
        if extra - ({"$position", "$slice", "$sort"} if operator == "$push" else set()):
            raise bad_value(f"Unrecognized clause in {operator}")
        if extra:
            raise unsupported("$position, $slice and $sort in $push")
    else:
        items = [operand]
    for item in items:
        if operator == "$addToSet" and any(equal(item, existing) for existing in current):
            continue
        current.append(copy.deepcopy(item))


def _pulled(item: Any, condition: Any) -> bool:
    """Whether ``$pull`` removes ``item``: a condition of operators (or a regex) tests it as
    a field would be tested; a document (``{}`` too) is a query each removed element that is
    a document matches; any other value removes the elements equal to it."""
    if isinstance(condition, (Regex, re.Pattern)):
        return matches({"v": item}, {"v": condition})
    if isinstance(condition, Mapping):
        if condition and next(iter(condition)).startswith("$"):
            return matches({"v": item}, {"v": condition})
        return isinstance(item, Mapping) and matches(item, condition)
    return equal(item, condition)


def upsert_seed(filter: Mapping[str, Any]) -> Document:
    """The document an upsert starts from: the filter's equality fields.

    Raises:
        MongoError: Two conflicting equalities on one path.
    """
    seed: Document = {}
    for path, value in _equalities(filter):
        container, last = _parent(seed, path, create=True)
        if _get(container, last) is not MISSING:
            continue
        _put(container, last, copy.deepcopy(value))
    return seed


def _equalities(filter: Mapping[str, Any]) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for field, condition in filter.items():
        if field == "$and" and isinstance(condition, list):
            for clause in condition:
                if isinstance(clause, Mapping):
                    found.extend(_equalities(clause))
        elif field.startswith("$"):
            continue
        elif isinstance(condition, Mapping) and condition and next(iter(condition)).startswith("$"):
            if "$eq" in condition:
                found.append((field, condition["$eq"]))
        elif not isinstance(condition, (Regex, re.Pattern)):  # a regex is no equality
            found.append((field, condition))
    return found


def resolve_exists(doc: Document, path: str) -> bool:
    """Whether ``path`` reaches a value (through arrays too)."""
    return any(value is not MISSING for value in resolve(doc, path))


def value_at(doc: Document, path: str) -> Any:
    """The value at ``path`` (``MISSING`` when absent)."""
    return get_path(doc, path)
