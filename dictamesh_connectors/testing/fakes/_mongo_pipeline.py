"""Aggregation pipelines of ``FakeMongoDB``: the common stages, accumulators and expressions.

Stages: ``$match $project $addFields/$set $unset $sort $skip $limit $count
$group $unwind $replaceRoot/$replaceWith $sortByCount $lookup`` (the
equality form). Accumulators: ``$sum $avg $min $max $count $first $last
$push $addToSet``. Expressions: field paths (``"$a.b"``, ``"$$ROOT"``),
literals and the usual arithmetic, comparison, boolean, string and array
operators. Anything else raises the server's error (an unknown stage is
40324) or, for what the fake leaves out, UNSUPPORTED.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dictamesh_connectors.testing.fakes._mongo_query import (
    MISSING,
    MongoError,
    bad_value,
    compare,
    compile_filter,
    equal,
    key_of,
    matches,
    project,
    resolve,
    sort_documents,
    unsupported,
)

__all__ = ["run_pipeline"]

Document = dict[str, Any]
Lookup = Callable[[str], list[Document]]

_UNKNOWN_STAGE = 40324
_UNKNOWN_EXPRESSION = 168


def run_pipeline(
    docs: list[Document], pipeline: Sequence[Mapping[str, Any]], lookup: Lookup
) -> list[Document]:
    """Run ``pipeline`` over ``docs`` (already copies: stages may change them).

    Args:
        docs: The collection's documents, in natural order.
        pipeline: The stages.
        lookup: Another collection's documents by name (for ``$lookup``).

    Raises:
        MongoError: An unknown stage or operator, a malformed stage.
    """
    for stage in pipeline:
        if len(stage) != 1:
            raise MongoError(
                40323,
                "A pipeline stage specification object must contain exactly one field.",
                "Location40323",
            )
        name, spec = next(iter(stage.items()))
        docs = _stage(docs, name, spec, lookup)
    return docs


def _stage(docs: list[Document], name: str, spec: Any, lookup: Lookup) -> list[Document]:
    if name == "$match":
        if not isinstance(spec, Mapping):
            raise bad_value("the match filter must be an expression in an object")
        test = compile_filter(spec)
        return [doc for doc in docs if test(doc)]
    if name == "$project":
        return [_project(doc, spec) for doc in docs]
    if name in ("$addFields", "$set"):
        return [_add_fields(doc, spec) for doc in docs]
    if name == "$unset":
        fields = [spec] if isinstance(spec, str) else list(spec)
        return [project(doc, dict.fromkeys(fields, 0)) for doc in docs]
    if name == "$sort":
        if not isinstance(spec, Mapping) or not spec:
            raise MongoError(15976, "$sort stage must have at least one sort key", "Location15976")
        return sort_documents(docs, list(spec.items()))
    if name in ("$skip", "$limit"):
        if (
            isinstance(spec, bool)
            or not isinstance(spec, int)
            or spec < (0 if name == "$skip" else 1)
        ):
            raise bad_value(f"invalid argument to {name} stage")
        return docs[spec:] if name == "$skip" else docs[:spec]
    if name == "$count":
        if not isinstance(spec, str) or not spec or spec.startswith("$") or "." in spec:
            raise bad_value("the count field must be a non-empty string without '$' or '.'")
        return [{spec: len(docs)}] if docs else []
    if name == "$group":
        return _group(docs, spec)
    if name == "$sortByCount":
        grouped = _group(docs, {"_id": spec, "count": {"$sum": 1}})
        return sort_documents(grouped, [("count", -1)])
    if name == "$unwind":
        return _unwind(docs, spec)
    if name in ("$replaceRoot", "$replaceWith"):
        expression = spec["newRoot"] if name == "$replaceRoot" else spec
        out = []
        for doc in docs:
            root = evaluate(expression, doc)
            if not isinstance(root, Mapping):
                raise MongoError(40228, "'newRoot' expression must evaluate to an object", "")
            out.append(dict(root))
        return out
    if name == "$lookup":
        return _lookup(docs, spec, lookup)
    if name in ("$out", "$merge", "$facet", "$bucket", "$bucketAuto", "$graphLookup",
                "$geoNear", "$sample", "$densify", "$fill", "$setWindowFields", "$unionWith",
                "$redact", "$collStats", "$indexStats", "$changeStream", "$search"):  # fmt: skip
        raise unsupported(f"the {name} stage")
    raise MongoError(_UNKNOWN_STAGE, f"Unrecognized pipeline stage name: '{name}'", "Location40324")


def _project(doc: Document, spec: Any) -> Document:
    if not isinstance(spec, Mapping) or not spec:
        raise MongoError(51272, "$project specification must have at least one field", "")
    flags: dict[str, Any] = {}
    computed: dict[str, Any] = {}
    for field, value in spec.items():
        if isinstance(value, bool) or (
            isinstance(value, (int, float)) and not isinstance(value, bool)
        ):
            flags[field] = bool(value)
        else:
            computed[field] = value
    if not computed:
        return project(doc, flags)
    if any(not v for k, v in flags.items() if k != "_id"):
        raise MongoError(
            31254, "Cannot do exclusion on a field in inclusion projection", "Location31254"
        )
    base = (
        project(doc, {**flags, **dict.fromkeys(computed, 1)})
        if flags
        else ({"_id": doc["_id"]} if "_id" in doc and flags.get("_id", True) else {})
    )
    if flags.get("_id") is False:
        base.pop("_id", None)
    for field, expression in computed.items():
        value = evaluate(expression, doc)
        if value is not MISSING:
            _set_path(base, field, value)
        else:
            _drop_path(base, field)
    return base


def _add_fields(doc: Document, spec: Any) -> Document:
    if not isinstance(spec, Mapping):
        raise bad_value("$addFields specification stage must be an object")
    out = dict(doc)
    for field, expression in spec.items():
        value = evaluate(expression, doc)
        if value is MISSING:
            _drop_path(out, field)
        else:
            _set_path(out, field, value)
    return out


def _set_path(doc: Document, path: str, value: Any) -> None:
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _drop_path(doc: Document, path: str) -> None:
    parts = path.split(".")
    node: Any = doc
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def _unwind(docs: list[Document], spec: Any) -> list[Document]:
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("path"), str):
        raise bad_value("$unwind needs a path")
    path = spec["path"]
    if not path.startswith("$"):
        raise MongoError(28818, "path option to $unwind stage should be prefixed with a '$'", "")
    field = path[1:]
    keep = bool(spec.get("preserveNullAndEmptyArrays", False))
    index_field = spec.get("includeArrayIndex")
    out: list[Document] = []
    for doc in docs:
        value = evaluate(path, doc)
        if isinstance(value, list) and value:
            for index, item in enumerate(value):
                copy_ = copy.deepcopy(doc)
                _set_path(copy_, field, item)
                if index_field:
                    _set_path(copy_, index_field, index)
                out.append(copy_)
        elif isinstance(value, list) or value is None or value is MISSING:
            if keep:
                copy_ = copy.deepcopy(doc)
                if isinstance(value, list):
                    _drop_path(copy_, field)
                if index_field:
                    _set_path(copy_, index_field, None)
                out.append(copy_)
        else:
            copy_ = copy.deepcopy(doc)
            if index_field:
                _set_path(copy_, index_field, None)
            out.append(copy_)
    return out


def _lookup(docs: list[Document], spec: Any, lookup: Lookup) -> list[Document]:
    if not isinstance(spec, Mapping) or not {"from", "localField", "foreignField", "as"} <= set(
        spec
    ):
        raise unsupported("$lookup without from/localField/foreignField/as")
    foreign = lookup(str(spec["from"]))
    out = []
    for doc in docs:
        local = resolve(doc, spec["localField"])
        values = [v for item in local for v in (item if isinstance(item, list) else [item])]
        values = [None if v is MISSING else v for v in values]
        joined = [
            copy.deepcopy(other)
            for other in foreign
            if any(matches(other, {spec["foreignField"]: {"$eq": value}}) for value in values)
        ]
        copy_ = dict(doc)
        _set_path(copy_, spec["as"], joined)
        out.append(copy_)
    return out


# ------------------------------------------------------------------- groups

_ACCUMULATORS = ("$sum", "$avg", "$min", "$max", "$count", "$first", "$last", "$push", "$addToSet")


def _group(docs: list[Document], spec: Any) -> list[Document]:
    if not isinstance(spec, Mapping) or "_id" not in spec:
        raise MongoError(15955, "a group specification must include an _id", "Location15955")
    accumulators: dict[str, tuple[str, Any]] = {}
    for field, accumulator in spec.items():
        if field == "_id":
            continue
        if not isinstance(accumulator, Mapping) or len(accumulator) != 1:
            raise MongoError(40234, f"The field '{field}' must be an accumulator object", "")
        operator, argument = next(iter(accumulator.items()))
        if operator not in _ACCUMULATORS:
            raise MongoError(15952, f"unknown group operator '{operator}'", "Location15952")
        accumulators[field] = (operator, argument)
    groups: dict[Any, tuple[Any, list[Document]]] = {}
    for doc in docs:
        key = evaluate(spec["_id"], doc)
        key = None if key is MISSING else key
        groups.setdefault(key_of(key), (key, []))[1].append(doc)
    out: list[Document] = []
    for key, members in groups.values():
        row: Document = {"_id": key}
        for field, (operator, argument) in accumulators.items():
            row[field] = _accumulate(operator, argument, members)
        out.append(row)
    return out


def _numbers(values: list[Any]) -> list[Any]:
    return [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _accumulate(operator: str, argument: Any, members: list[Document]) -> Any:
    if operator == "$count":
        return len(members)
    values = [evaluate(argument, doc) for doc in members]
    if operator == "$sum":
        # As an accumulator $sum skips what is not a number, arrays included.
        return sum(_numbers(values))
    if operator == "$avg":
        numbers = _numbers(values)
        return sum(numbers) / len(numbers) if numbers else None
    if operator in ("$min", "$max"):
        present = [v for v in values if v is not MISSING and v is not None]
        if not present:
            return None
        key = functools.cmp_to_key(compare)
        return min(present, key=key) if operator == "$min" else max(present, key=key)
    if operator in ("$first", "$last"):
        value = values[0] if operator == "$first" else values[-1]
        return None if value is MISSING else value
    if operator == "$push":
        return [v for v in values if v is not MISSING]
    unique: list[Any] = []
    for value in values:
        if value is not MISSING and not any(equal(value, seen) for seen in unique):
            unique.append(value)
    return unique


# -------------------------------------------------------------- expressions


def evaluate(expression: Any, doc: Document) -> Any:
    """The value of an aggregation expression for ``doc`` (``MISSING`` for a missing field).

    Raises:
        MongoError: An unknown operator or a type error the server refuses too.
    """
    if isinstance(expression, str):
        if expression.startswith("$$"):
            name, _, rest = expression[2:].partition(".")
            if name not in ("ROOT", "CURRENT"):
                raise unsupported(f"the variable $${name}")
            return _field(doc, rest) if rest else doc
        if expression.startswith("$"):
            return _field(doc, expression[1:])
        return expression
    if isinstance(expression, list):
        return [_present(evaluate(item, doc)) for item in expression]
    if isinstance(expression, Mapping):
        if len(expression) == 1 and next(iter(expression)).startswith("$"):
            operator, argument = next(iter(expression.items()))
            return _operator(operator, argument, doc)
        for key in expression:
            if key.startswith("$"):
                raise MongoError(
                    15983, "an expression specification must contain exactly one field", ""
                )
        out = {}
        for key, item in expression.items():
            value = evaluate(item, doc)
            if value is not MISSING:
                out[key] = value
        return out
    return expression


def _present(value: Any) -> Any:
    return None if value is MISSING else value


def _field(doc: Any, path: str) -> Any:
    value = doc
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        elif isinstance(value, list):
            value = [item.get(part) for item in value if isinstance(item, Mapping) and part in item]
        else:
            return MISSING
    return value


def _args(argument: Any, doc: Document) -> list[Any]:
    items = argument if isinstance(argument, list) else [argument]
    return [_present(evaluate(item, doc)) for item in items]


def _arithmetic(operator: str, values: list[Any]) -> Any:
    if any(v is None for v in values):
        return None
    numbers = _numbers(values)
    if len(numbers) != len(values):
        raise MongoError(14, f"{operator} only supports numeric types", "TypeMismatch")
    if operator == "$add":
        return sum(numbers)
    if operator == "$multiply":
        product: Any = 1
        for number in numbers:
            product *= number
        return product
    if len(numbers) != 2:
        raise MongoError(16020, f"Expression {operator} takes exactly 2 arguments", "")
    a, b = numbers
    if operator == "$subtract":
        return a - b
    if b == 0:
        raise MongoError(
            2, "can't divide by zero" if operator == "$divide" else "can't $mod by zero", "BadValue"
        )
    if operator == "$divide":
        return a / b
    return a - b * int(a / b)  # $mod: the sign follows the dividend, as in C


_COMPARISONS = {
    "$eq": lambda c: c == 0,
    "$ne": lambda c: c != 0,
    "$gt": lambda c: c > 0,
    "$gte": lambda c: c >= 0,
    "$lt": lambda c: c < 0,
    "$lte": lambda c: c <= 0,
}


def _truthy(value: Any) -> bool:
    if value is None or value is MISSING or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    return True


def _operator(operator: str, argument: Any, doc: Document) -> Any:
    if operator == "$literal":
        return argument
    if operator in ("$add", "$subtract", "$multiply", "$divide", "$mod"):
        return _arithmetic(operator, _args(argument, doc))
    if operator in _COMPARISONS:
        a, b = _pair(operator, argument, doc)
        return bool(_COMPARISONS[operator](compare(a, b)))
    if operator == "$cmp":
        a, b = _pair(operator, argument, doc)
        return compare(a, b)
    if operator in ("$and", "$or"):
        values = [_truthy(v) for v in _args(argument, doc)]
        return all(values) if operator == "$and" else any(values)
    if operator == "$not":
        return not _truthy(_args(argument, doc)[0])
    if operator == "$cond":
        if isinstance(argument, Mapping):
            condition, then, otherwise = argument["if"], argument["then"], argument["else"]
        else:
            condition, then, otherwise = argument
        chosen = then if _truthy(evaluate(condition, doc)) else otherwise
        return evaluate(chosen, doc)
    if operator == "$ifNull":
        items = argument if isinstance(argument, list) else [argument]
        for item in items[:-1]:
            value = evaluate(item, doc)
            if value is not None and value is not MISSING:
                return value
        return evaluate(items[-1], doc)
    if operator == "$concat":
        parts = _args(argument, doc)
        if any(v is None for v in parts):
            return None
        if not all(isinstance(v, str) for v in parts):
            raise MongoError(16702, "$concat only supports strings", "")
        return "".join(str(v) for v in parts)
    if operator in ("$toUpper", "$toLower"):
        value = _args(argument, doc)[0]
        text = "" if value is None else str(value)
        return text.upper() if operator == "$toUpper" else text.lower()
    if operator == "$size":
        value = _args(argument, doc)[0]
        if not isinstance(value, list):
            raise MongoError(17124, "The argument to $size must be an array", "Location17124")
        return len(value)
    if operator == "$arrayElemAt":
        array, index = _args(argument, doc)
        if array is None or index is None:
            return None
        if not isinstance(array, list):
            raise MongoError(28689, "$arrayElemAt's first argument must be an array", "")
        return array[index] if -len(array) <= index < len(array) else MISSING
    if operator == "$in":
        value, array = _args(argument, doc)
        if not isinstance(array, list):
            raise MongoError(40081, "$in requires an array as a second argument", "")
        return any(equal(value, item) for item in array)
    if operator in ("$sum", "$avg", "$min", "$max"):
        values = _args(argument, doc)
        if len(values) == 1 and isinstance(values[0], list):
            values = values[0]
        if operator == "$sum":
            return sum(_numbers(values))
        if operator == "$avg":
            numbers = _numbers(values)
            return sum(numbers) / len(numbers) if numbers else None
        present = [v for v in values if v is not None]
        if not present:
            return None
        key = functools.cmp_to_key(compare)
        return min(present, key=key) if operator == "$min" else max(present, key=key)
    raise MongoError(
        _UNKNOWN_EXPRESSION, f"Unrecognized expression '{operator}'", "InvalidPipelineOperator"
    )


def _pair(operator: str, argument: Any, doc: Document) -> tuple[Any, Any]:
    values = _args(argument, doc)
    if len(values) != 2:
        raise MongoError(16020, f"Expression {operator} takes exactly 2 arguments", "Location16020")
    return values[0], values[1]
