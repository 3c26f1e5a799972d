"""FakeMongoDB cannot drift: one set of behaviour tests, run on the fake and on real servers.

Every test takes ``mongo``, parametrized over the fake, SecantusDB and
FerretDB (transaction tests: the fake and SecantusDB), and asserts exactly
the same thing on each: the same documents for the same filters, updates
and pipelines, the same error codes and details for the same mistakes.

The fake follows MongoDB (SecantusDB agrees with it everywhere). Where
FerretDB 1.24 departs from MongoDB, the test asserts what FerretDB does
instead (``FERRETDB_GAPS``), so a FerretDB that catches up fails the test
and the gap is removed.
"""

from __future__ import annotations

import copy
import datetime
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from bson import Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.mongodb import BulkResult, MongoDBConnector, UpdateResult
from dictamesh_connectors.testing.fakes import FakeMongoDB
from tests.integration.mongodb.conftest import Server, connected

pytestmark = pytest.mark.integration

PEOPLE: list[dict[str, Any]] = [
    {"_id": 1, "name": "Ada", "age": 36, "tags": ["math", "code"], "address": {"city": "London"}},
    {"_id": 2, "name": "Grace", "age": 85, "tags": ["navy", "code"], "address": {"city": "NYC"}},
    {"_id": 3, "name": "Alan", "age": 41, "tags": ["math"], "address": {"city": "London"}},
    {"_id": 4, "name": "Edsger", "age": 72, "tags": [], "score": None},
    {"_id": 5, "name": "barbara", "age": 8, "kids": [{"n": "x", "a": 3}, {"n": "y", "a": 9}]},
]


def _server(request: pytest.FixtureRequest, name: str) -> Server:
    if name == "secantusdb":
        return Server("secantusdb", request.getfixturevalue("mongodb_uri"), True)
    return Server("ferretdb", request.getfixturevalue("ferretdb_uri"), False)


@pytest.fixture(params=["fake", "secantusdb", "ferretdb"])
def mongo(request: pytest.FixtureRequest) -> Iterator[MongoDBConnector]:
    if request.param == "fake":
        with FakeMongoDB() as fake:
            yield fake  # type: ignore[misc]
        return
    with connected(_server(request, request.param)) as db:
        yield db


@pytest.fixture(params=["fake", "secantusdb"])
def tx_mongo(request: pytest.FixtureRequest) -> Iterator[MongoDBConnector]:
    if request.param == "fake":
        with FakeMongoDB() as fake:
            yield fake  # type: ignore[misc]
        return
    with connected(_server(request, request.param)) as db:
        yield db


# Where FerretDB 1.24 is not MongoDB (the fake and SecantusDB are).
FERRETDB_GAPS = {
    "elemMatch": "a multi-field $elemMatch is refused (BadValue 'unknown operator')",
    "unique index": "a unique-index violation by an update or create_index is InternalError 1,"
    " not DuplicateKey 11000",
    "bulk upsert index": "bulk_write reports an upsert's index among the upserts, not the ops",
    "accumulators": "$avg, $min and $max are NotImplemented in $group, and $sum of a field"
    " after $unwind gives 0",
    "expressions": "$project takes '$field' literally and $multiply is NotImplemented",
    "regex u": "a regex with the 'u' option (pymongo sends it for every compiled str pattern)"
    " is refused: Location51108 'invalid flag in regex options: u'",
    "ranges through arrays": "{'kids.a': {'$gt': 3, '$lt': 9}} wants one element for both"
    " bounds (MongoDB: each bound may hold for a different element)",
    "exists": "$exists takes any non-boolean as true ($exists: 1 matches every document)",
    "empty elemMatch": "{'$elemMatch': {}} matches nothing (MongoDB: any sub-document)",
    "lax": "a malformed filter is answered (an $all of operators, an empty $not, $options"
    " without $regex), not refused with BadValue",
    "types": "Decimal128, MinKey and MaxKey are not supported (FerretDB closes the"
    " connection), nor the $type names decimal, minKey, maxKey, javascript and symbol",
    "pull": "$pull removes equal elements only: a condition ($gte, a regex, a document) pulls"
    " nothing",
}

# Where a test server departs from MongoDB's documented behaviour the fake follows
# MongoDB; each test asserts what the server answers instead (ids, or an error code),
# so a server that catches up fails the test and its line is removed.
SERVER_ANSWERS: dict[str, dict[str, Any]] = {
    "secantusdb": {
        # $all is an $and of equalities: on a path through an array each may hold for a
        # different element.
        str({"kids.n": {"$all": ["x", "y"]}}): [],
        # $mod truncates its numbers toward zero (MongoDB's "Floating Point Arguments").
        str({"age": {"$mod": [10.9, 6.2]}}): [],
        # A server parses the whole filter before it reads a document: a malformed
        # operator is refused even where no document reaches it.
        str({"age": {"$mod": [2, "x"]}}): [],
        str({"name": "nobody", "age": {"$bogus": 1}}): [],
    },
    "ferretdb": {
        str({"kids.n": {"$all": ["x", "y"]}}): [],
        str({"kids": {"$elemMatch": {"n": "x", "a": {"$lt": 5}}}}): ErrorCode.INVALID_REQUEST,
        str({"kids": {"$elemMatch": {"n": "x", "a": {"$gt": 5}}}}): ErrorCode.INVALID_REQUEST,
        str({"name": {"$in": [re.compile("^a"), "Grace"]}}): ErrorCode.QUERY_FAILED,  # regex u
        str({"name": {"$in": [re.compile("^a", re.IGNORECASE), "Grace"]}}): ErrorCode.QUERY_FAILED,
        str({"tags": {"$in": [re.compile("^n")]}}): ErrorCode.QUERY_FAILED,
        str({"name": {"$nin": [re.compile("^A"), "Grace"]}}): ErrorCode.QUERY_FAILED,
        str({"kids.a": {"$gt": 3, "$lt": 9}}): [],  # ranges through arrays
        str({"score": {"$exists": 1}}): [1, 2, 3, 4, 5],  # exists
        str({"tags": {"$all": [{"$gt": 1}]}}): [],  # lax
        str({"name": {"$not": {}}}): [1, 2, 3, 4, 5],
        str({"name": {"$options": "i"}}): [1, 2, 3, 4, 5],
        str({"name": "nobody", "age": {"$bogus": 1}}): [],
    },
}


def answer(call: Any) -> Any:
    """What a query gives: its documents' ids, or the code of its error."""
    try:
        return ids(call())
    except ConnectorError as err:
        return err.code


def expect(backend: str, filter: Any, mongodb: Any) -> Any:
    """What ``backend`` answers ``filter`` with: MongoDB's answer unless listed above."""
    return SERVER_ANSWERS.get(backend, {}).get(str(filter), mongodb)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which of fake / secantusdb / ferretdb this test runs on."""
    params = request.node.callspec.params
    return str(params.get("mongo") or params.get("tx_mongo"))


@pytest.fixture
def people(mongo: MongoDBConnector) -> MongoDBConnector:
    mongo.insert_many("people", copy.deepcopy(PEOPLE))
    return mongo


def ids(docs: list[dict[str, Any]]) -> list[Any]:
    return [d["_id"] for d in docs]


FILTERS = [
    ({}, [1, 2, 3, 4, 5]),
    ({"name": "Ada"}, [1]),
    ({"age": {"$eq": 36}}, [1]),
    ({"age": {"$ne": 36}}, [2, 3, 4, 5]),
    ({"age": {"$gt": 41}}, [2, 4]),
    ({"age": {"$gte": 41}}, [2, 3, 4]),
    ({"age": {"$lt": 36}}, [5]),
    ({"age": {"$lte": 36}}, [1, 5]),
    ({"age": {"$gt": 30, "$lt": 80}}, [1, 3, 4]),
    ({"age": {"$gt": "a"}}, []),
    ({"age": {"$in": [36, 85, 99]}}, [1, 2]),
    ({"age": {"$nin": [36, 85]}}, [3, 4, 5]),
    ({"score": {"$exists": True}}, [4]),
    ({"score": {"$exists": False}}, [1, 2, 3, 5]),
    ({"score": None}, [1, 2, 3, 4, 5]),
    ({"tags": "code"}, [1, 2]),
    ({"tags": ["math"]}, [3]),
    ({"tags": {"$all": ["math", "code"]}}, [1]),
    ({"tags": {"$size": 0}}, [4]),
    ({"address.city": "London"}, [1, 3]),
    ({"kids.n": "y"}, [5]),
    ({"kids.a": {"$gt": 5}}, [5]),
    ({"kids": {"$elemMatch": {"n": "x", "a": {"$lt": 5}}}}, [5]),
    ({"kids": {"$elemMatch": {"n": "x", "a": {"$gt": 5}}}}, []),
    ({"name": {"$regex": "^a"}}, []),
    ({"name": {"$regex": "^a", "$options": "i"}}, [1, 3]),
    ({"name": {"$not": {"$regex": "a"}}}, [4]),
    ({"age": {"$not": {"$gt": 40}}}, [1, 5]),
    ({"$and": [{"age": {"$gt": 30}}, {"tags": "math"}]}, [1, 3]),
    ({"$or": [{"name": "Ada"}, {"age": {"$lt": 10}}]}, [1, 5]),
    ({"$nor": [{"name": "Ada"}, {"age": {"$lt": 10}}]}, [2, 3, 4]),
    ({"age": 36.0}, [1]),
    ({"_id": {"$in": [2, 4]}}, [2, 4]),
    # $in / $nin with regexes (a pattern object, never a {"$regex": ...} document)
    ({"name": {"$in": [re.compile("^a"), "Grace"]}}, [2]),
    ({"name": {"$in": [re.compile("^a", re.IGNORECASE), "Grace"]}}, [1, 2, 3]),
    ({"name": {"$in": [Regex("^B", "i")]}}, [5]),
    ({"tags": {"$in": [re.compile("^n")]}}, [2]),
    ({"name": {"$nin": [re.compile("^A"), "Grace"]}}, [4, 5]),
    ({"name": {"$in": []}}, []),
    ({"name": {"$eq": re.compile("^A")}}, []),  # $eq: a regex is a value, not a pattern
    # arrays: a condition on an array field holds for any element; $ne / $nin for none
    ({"tags": {"$ne": "code"}}, [3, 4, 5]),
    ({"tags": {"$nin": ["code", "navy"]}}, [3, 4, 5]),
    ({"tags": {"$gt": "m"}}, [1, 2, 3]),
    ({"tags": {"$size": 1}}, [3]),
    ({"tags": {"$all": []}}, []),
    ({"tags": {"$elemMatch": {"$eq": "navy"}}}, [2]),
    ({"kids": {"$size": 2}}, [5]),
    ({"kids.n": {"$all": ["x", "y"]}}, [5]),
    ({"kids.0.a": 3}, [5]),
    ({"kids.a": {"$gt": 3, "$lt": 9}}, [5]),  # one element > 3, another < 9
    ({"kids": {"$elemMatch": {"a": {"$gt": 3, "$lt": 9}}}}, []),  # no single one
    ({"kids.a": {"$exists": True}}, [5]),
    ({"kids.z": {"$exists": False}}, [1, 2, 3, 4, 5]),
    # null matches null and missing
    ({"kids.z": None}, [1, 2, 3, 4, 5]),
    ({"score": {"$eq": None}}, [1, 2, 3, 4, 5]),
    ({"score": {"$ne": None}}, []),
    ({"score": {"$in": [None]}}, [1, 2, 3, 4, 5]),
    ({"score": {"$type": "null"}}, [4]),
    ({"score": {"$exists": 1}}, [4]),
    # comparisons: BSON order, within a type only
    ({"address": {"city": "London"}}, [1, 3]),
    ({"address": {"$gt": {"city": "M"}}}, [2]),
    ({"age": {"$lt": "z"}}, []),
    ({"name": {"$gte": "B", "$lt": "b"}}, [2, 4]),
    ({"missing": {"$exists": False}, "age": {"$gte": 72}}, [2, 4]),
    ({"$or": [{"kids.n": "x"}, {"score": {"$exists": True}}]}, [4, 5]),
    # $mod truncates, and its remainder has the dividend's sign
    ({"age": {"$mod": [10, 6]}}, [1]),
    ({"age": {"$mod": [-10, 6]}}, [1]),
    ({"age": {"$mod": [10.9, 6.2]}}, [1]),
    ({"age": {"$type": "int"}}, [1, 2, 3, 4, 5]),
    ({"age": {"$type": ["string", "number"]}}, [1, 2, 3, 4, 5]),
    ({"tags": {"$type": "array"}}, [1, 2, 3, 4]),
    ({"tags": {"$type": 2}}, [1, 2, 3]),
]


@pytest.mark.parametrize(("filter", "expected"), FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_filters(
    people: MongoDBConnector, backend: str, filter: dict[str, Any], expected: list[int]
) -> None:
    wanted = expect(backend, filter, expected)
    assert answer(lambda: people.query("people", filter, sort="_id")) == wanted
    if isinstance(wanted, list):
        assert people.count("people", filter) == len(wanted)


# Filters a server refuses (BadValue, 2: INVALID_REQUEST), and so does the fake.
BAD_FILTERS = [
    {"tags": {"$size": -1}},
    {"tags": {"$size": 1.5}},
    {"tags": {"$size": "1"}},
    {"name": {"$in": [{"$regex": "^a"}]}},
    {"name": {"$in": "Ada"}},
    {"name": {"$nin": [{"$gt": 1}]}},
    {"name": {"$ne": re.compile("a")}},
    {"age": {"$gt": re.compile("a")}},
    {"age": {"$type": "bogus"}},
    {"age": {"$type": 99}},
    {"age": {"$mod": [0, 1]}},
    {"age": {"$mod": [1]}},
    {"age": {"$mod": [2, "x"]}},
    {"tags": {"$all": [{"$gt": 1}]}},
    {"tags": {"$all": "code"}},
    {"name": {"$not": "Ada"}},
    {"name": {"$not": {}}},
    {"$and": []},
    {"$bogus": 1},
    {"name": {"$options": "i"}},
    {"kids": {"$elemMatch": 1}},
    # the bad operator is reached by no document: refused all the same
    {"name": "nobody", "age": {"$bogus": 1}},
]


@pytest.mark.parametrize("filter", BAD_FILTERS, ids=[str(f) for f in BAD_FILTERS])
def test_bad_filters_are_refused(people: MongoDBConnector, backend: str, filter: Any) -> None:
    wanted = expect(backend, filter, ErrorCode.INVALID_REQUEST)
    assert answer(lambda: people.query("people", filter)) == wanted
    # On a collection that does not exist, MongoDB still parses the filter first;
    # both test servers answer 0 without looking at it.
    missing = ErrorCode.INVALID_REQUEST if backend == "fake" else [0]
    assert answer(lambda: [{"_id": people.count("nothere", filter)}]) == missing


UTC = datetime.timezone.utc
TYPED: list[dict[str, Any]] = [
    {"_id": 1, "v": 1},
    {"_id": 2, "v": Int64(1)},
    {"_id": 3, "v": 1.5},
    {"_id": 4, "v": Decimal128("1.5")},
    {"_id": 5, "v": "s"},
    {"_id": 6, "v": {"a": 1}},
    {"_id": 7, "v": [1, "s"]},
    {"_id": 8, "v": b"\x01"},
    {"_id": 9, "v": ObjectId("5f0000000000000000000000")},
    {"_id": 10, "v": True},
    {"_id": 11, "v": datetime.datetime(2020, 1, 1, tzinfo=UTC)},
    {"_id": 12, "v": None},
    {"_id": 13, "v": Regex("^a", "i")},
    {"_id": 14, "v": Timestamp(1, 1)},
    {"_id": 15, "v": MinKey()},
    {"_id": 16, "v": MaxKey()},
    {"_id": 17},
]

TYPES = [
    ("double", [3]),
    (1, [3]),
    ("string", [5, 7]),
    ("object", [6]),
    ("array", [7]),
    ("binData", [8]),
    ("objectId", [9]),
    ("bool", [10]),
    ("date", [11]),
    ("null", [12]),
    ("regex", [13]),
    ("int", [1, 7]),
    (16, [1, 7]),
    ("timestamp", [14]),
    ("long", [2]),
    (18.0, [2]),
    ("decimal", [4]),
    ("minKey", [15]),
    (-1, [15]),
    ("maxKey", [16]),
    ("number", [1, 2, 3, 4, 7]),
    ("javascript", []),
    ("symbol", []),
    (["bool", "null"], [10, 12]),
]


# FERRETDB_GAPS["types"]: the documents and $type names FerretDB 1.24 does not have.
FERRETDB_NO_TYPE = {4, 15, 16}
FERRETDB_NO_ALIAS = {"decimal", "minKey", "maxKey", "javascript", "symbol", "-1"}


@pytest.fixture
def typed(mongo: MongoDBConnector, backend: str) -> MongoDBConnector:
    docs = [d for d in TYPED if backend != "ferretdb" or d["_id"] not in FERRETDB_NO_TYPE]
    mongo.insert_many("typed", copy.deepcopy(docs))
    return mongo


def on(backend: str, expected: list[int]) -> list[int]:
    """``expected`` without the documents ``backend`` cannot store."""
    return [n for n in expected if backend != "ferretdb" or n not in FERRETDB_NO_TYPE]


@pytest.mark.parametrize(("alias", "expected"), TYPES, ids=[str(t) for t, _ in TYPES])
def test_type(typed: MongoDBConnector, backend: str, alias: Any, expected: list[int]) -> None:
    got = answer(lambda: typed.query("typed", {"v": {"$type": alias}}, sort="_id"))
    if backend == "ferretdb" and str(alias) in FERRETDB_NO_ALIAS:
        assert isinstance(got, ErrorCode)  # FERRETDB_GAPS["types"]
        return
    assert got == on(backend, expected)


TYPED_FILTERS = [
    ({"v": {"$gt": 1}}, [3, 4]),
    ({"v": {"$gte": 1}}, [1, 2, 3, 4, 7]),
    ({"v": {"$gte": "a"}}, [5, 7]),
    ({"v": {"$lte": None}}, [12, 17]),
    ({"v": {"$gt": None}}, []),
    ({"v": {"$gte": datetime.datetime(2019, 1, 1, tzinfo=UTC)}}, [11]),
    ({"v": {"$gt": Timestamp(0, 1)}}, [14]),
    ({"v": {"$gt": ObjectId("000000000000000000000000")}}, [9]),
    ({"v": {"$gt": {"a": 0}}}, [6]),
    ({"v": {"$gt": False}}, [10]),
    ({"v": {"$gt": b""}}, [8]),
    ({"v": {"$eq": Regex("^a", "i")}}, [13]),
    ({"v": Regex("^a", "i")}, [13]),
    ({"v": {"$regex": "^a", "$options": "i"}}, [13]),
    ({"v": {"$in": [1.5, "s"]}}, [3, 4, 5, 7]),
    ({"v": Decimal128("1")}, [1, 2, 7]),
    ({"v": MinKey()}, [15]),
    ({"v": {"$lt": MaxKey()}}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17]),
    ({"v": {"$gt": MinKey()}}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17]),
    ({"v": {"$exists": False}}, [17]),
]


@pytest.mark.parametrize(
    ("filter", "expected"), TYPED_FILTERS, ids=[str(f) for f, _ in TYPED_FILTERS]
)
def test_filters_across_types(
    typed: MongoDBConnector, backend: str, filter: Any, expected: list[int]
) -> None:
    got = answer(lambda: typed.query("typed", filter, sort="_id"))
    if backend == "ferretdb" and any(t in str(filter) for t in ("Decimal128", "Key")):
        assert got is ErrorCode.CONNECTION_LOST  # FERRETDB_GAPS["types"]
        return
    assert got == on(backend, expected)


@pytest.mark.parametrize("direction", [1, -1])
def test_sort_across_types(typed: MongoDBConnector, backend: str, direction: int) -> None:
    got = ids(typed.query("typed", sort=[("v", direction), ("_id", 1)]))
    expected = [15, 12, 17, 1, 2, 7, 3, 4, 5, 6, 8, 9, 10, 11, 14, 13, 16]
    if direction == -1:  # an array sorts by its greatest element: "s", after the numbers
        expected = [16, 13, 14, 11, 10, 9, 8, 6, 5, 7, 3, 4, 1, 2, 12, 17, 15]
    assert got == on(backend, expected)


def test_projection_sort_skip_limit(people: MongoDBConnector) -> None:
    got = people.query("people", {}, projection={"name": 1}, sort=[("age", -1)], skip=1, limit=2)
    assert got == [{"_id": 4, "name": "Edsger"}, {"_id": 3, "name": "Alan"}]
    assert people.query("people", {"_id": 1}, projection=["address.city"]) == [
        {"_id": 1, "address": {"city": "London"}}
    ]
    assert people.query("people", {"_id": 1}, projection={"tags": 0, "address": 0, "age": 0}) == [
        {"_id": 1, "name": "Ada"}
    ]
    assert ids(people.query("people", sort="name")) == [1, 3, 4, 2, 5]
    assert ids(people.query("people", sort=[("address.city", 1), ("_id", -1)])) == [5, 4, 3, 1, 2]
    assert people.find_one("people", {}, sort=[("age", 1)])["_id"] == 5  # type: ignore[index]
    assert people.find_one("people", {"name": "nobody"}) is None
    assert sorted(people.distinct("people", "tags")) == ["code", "math", "navy"]


def test_updates_give_the_same_documents(people: MongoDBConnector) -> None:
    result = people.update_one(
        "people",
        {"_id": 1},
        {
            "$set": {"address.zip": "N1", "name": "Ada L."},
            "$inc": {"age": 1, "visits": 2},
            "$push": {"tags": "poetry"},
            "$addToSet": {"langs": {"$each": ["en", "en", "fr"]}},
            "$unset": {"score": ""},
        },
    )
    assert result == UpdateResult(1, 1, None)
    assert people.find_one("people", {"_id": 1}) == {
        "_id": 1,
        "name": "Ada L.",
        "age": 37,
        "tags": ["math", "code", "poetry"],
        "address": {"city": "London", "zip": "N1"},
        "visits": 2,
        "langs": ["en", "fr"],
    }
    assert people.update_many("people", {"tags": "code"}, {"$set": {"c": 1}}) == UpdateResult(
        2, 2, None
    )
    assert people.update_many("people", {"tags": "code"}, {"$set": {"c": 1}}) == UpdateResult(
        2, 0, None
    )
    people.update_one("people", {"_id": 3}, {"$mul": {"age": 2}, "$pull": {"tags": "math"}})
    assert people.find_one("people", {"_id": 3}, projection=["age", "tags"]) == {
        "_id": 3,
        "age": 82,
        "tags": [],
    }
    assert people.replace_one("people", {"_id": 2}, {"name": "G"}) == UpdateResult(1, 1, None)
    assert people.find_one("people", {"_id": 2}) == {"_id": 2, "name": "G"}


def test_update_keeps_the_server_types(people: MongoDBConnector, backend: str) -> None:
    """$inc / $mul type their results as a server does; $currentDate sets what it is asked."""
    values: dict[str, Any] = {"long": Int64(5), "int": 2**31 - 1, "f": 1.5}
    kinds = {"long": "long", "int": "long", "f": "double", "nolong": "long", "nofloat": "double"}
    if backend != "ferretdb":  # FERRETDB_GAPS["types"]
        values["dec"] = Decimal128("1.1")
        kinds["dec"] = "decimal"
    people.update_one("people", {"_id": 1}, {"$set": values})
    people.update_one(
        "people",
        {"_id": 1},
        {"$inc": dict.fromkeys(values, 1), "$mul": {"nolong": Int64(3), "nofloat": 2.0}},
    )
    # 2**31 - 1 + 1 overflows a 32-bit int: a long; a long stays one; $mul on a
    # missing field sets the multiplier's zero.
    types = {
        field: ids(people.query("people", {field: {"$type": kinds[field]}})) for field in kinds
    }
    assert types == {field: [1] for field in kinds}
    doc = people.find_one("people", {"_id": 1})
    assert doc is not None
    got = {field: doc[field] for field in kinds}
    expected = {"long": 6, "int": 2**31, "f": 2.5, "nolong": 0, "nofloat": 0.0}
    if "dec" in kinds:
        expected["dec"] = Decimal128("2.1")
    assert got == expected
    people.update_one(
        "people", {"_id": 2}, {"$currentDate": {"d": True, "t": {"$type": "timestamp"}}}
    )
    assert ids(people.query("people", {"d": {"$type": "date"}, "t": {"$type": "timestamp"}})) == [2]
    with pytest.raises(ConnectorError) as info:
        people.update_one("people", {"_id": 2}, {"$currentDate": {"d": {"$type": "year"}}})
    assert info.value.code is ErrorCode.INVALID_REQUEST


def test_pull_conditions(people: MongoDBConnector, backend: str) -> None:
    people.insert_one(
        "people", {"_id": 9, "a": ["apple", "banana", {"x": 1}, {"x": 2, "y": 1}, 3, 7]}
    )
    if backend == "ferretdb":  # FERRETDB_GAPS["pull"]
        people.update_one("people", {"_id": 9}, {"$pull": {"a": {"$gte": 5}}})
        assert people.find_one("people", {"_id": 9})["a"][-1] == 7  # type: ignore[index]
        return
    people.update_one("people", {"_id": 9}, {"$pull": {"a": re.compile("^b")}})
    people.update_one("people", {"_id": 9}, {"$pull": {"a": {"x": 2}}})
    people.update_one("people", {"_id": 9}, {"$pull": {"a": {"$gte": 5}}})
    assert people.find_one("people", {"_id": 9}) == {"_id": 9, "a": ["apple", {"x": 1}, 3]}
    people.update_one("people", {"_id": 9}, {"$pull": {"a": {}}})  # every document
    assert people.find_one("people", {"_id": 9}) == {"_id": 9, "a": ["apple", 3]}


def test_upsert_seeds_equalities_only(people: MongoDBConnector, backend: str) -> None:
    result = people.update_one(
        "people",
        {"name": Regex("^Z"), "age": {"$gt": 1}, "city": "Oslo"},
        {"$set": {"x": 1}},
        upsert=True,
    )
    doc = people.find_one("people", {"_id": result.upserted_id}, projection={"_id": 0})
    if backend != "fake":  # both seed the regex: MongoDB seeds equalities only
        assert doc == {"name": Regex("^Z"), "city": "Oslo", "x": 1}
        return
    assert doc == {"city": "Oslo", "x": 1}


def test_upserts(people: MongoDBConnector) -> None:
    result = people.update_one(
        "people", {"name": "New"}, {"$set": {"x": 1}, "$setOnInsert": {"y": 2}}, upsert=True
    )
    assert result.matched == 0 and result.modified == 0 and result.upserted_id is not None
    doc = people.find_one("people", {"_id": result.upserted_id}, projection={"_id": 0})
    assert doc == {"name": "New", "x": 1, "y": 2}
    again = people.update_one(
        "people", {"name": "New"}, {"$set": {"x": 1}, "$setOnInsert": {"y": 3}}, upsert=True
    )
    assert again == UpdateResult(1, 0, None)
    assert people.replace_one("people", {"_id": 7}, {"n": 1}, upsert=True) == UpdateResult(0, 0, 7)
    found = people.find_one_and_update(
        "people", {"_id": 7}, {"$inc": {"n": 1}}, return_document="after"
    )
    assert found == {"_id": 7, "n": 2}
    assert people.find_one_and_update("people", {"_id": 8}, {"$set": {"n": 1}}) is None


def test_deletes(people: MongoDBConnector) -> None:
    assert people.delete_one("people", {"_id": 3}) == 1
    assert people.delete_many("people", {"age": {"$gt": 50}}) == 2
    assert ids(people.query("people", sort="_id")) == [1, 5]
    assert people.delete_many("people", {"nothing": 1}) == 0


def test_duplicate_id_gives_the_same_code_and_details(people: MongoDBConnector) -> None:
    with pytest.raises(ConnectorError) as info:
        people.insert_one("people", {"_id": 1, "name": "again"})
    err = info.value
    assert err.code is ErrorCode.CONSTRAINT_VIOLATION and not err.transient
    assert not err.maybe_applied
    assert err.details["code"] == 11000


@pytest.mark.parametrize("ordered", [True, False])
def test_insert_many_duplicates(people: MongoDBConnector, ordered: bool) -> None:
    with pytest.raises(ConnectorError) as info:
        people.insert_many("people", [{"_id": 10}, {"_id": 1}, {"_id": 11}], ordered=ordered)
    err = info.value
    assert err.code is ErrorCode.CONSTRAINT_VIOLATION
    assert [e["index"] for e in err.details["write_errors"]] == [1]
    assert [e["code"] for e in err.details["write_errors"]] == [11000]
    assert err.details["inserted"] == (1 if ordered else 2)
    assert ids(people.query("people", {"_id": {"$gte": 10}}, sort="_id")) == (
        [10] if ordered else [10, 11]
    )


def test_unique_index(people: MongoDBConnector, backend: str) -> None:
    assert people.create_index("people", "name", unique=True) == "name_1"
    assert people.create_index("people", "name", unique=True) == "name_1"
    with pytest.raises(ConnectorError) as info:
        people.insert_one("people", {"name": "Ada"})
    assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
    assert info.value.details["code"] == 11000
    with pytest.raises(ConnectorError) as info:
        people.update_one("people", {"_id": 2}, {"$set": {"name": "Ada"}})
    if backend == "ferretdb":  # FERRETDB_GAPS["unique index"]
        assert info.value.code is ErrorCode.EXEC_FAILED
    else:
        assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
    assert people.find_one("people", {"_id": 2}, projection=["name"]) == {"_id": 2, "name": "Grace"}
    indexes = {ix["name"]: ix for ix in people.list_indexes("people")}
    assert sorted(indexes) == ["_id_", "name_1"]
    assert indexes["name_1"]["key"] == {"name": 1} and indexes["name_1"]["unique"]
    people.drop_index("people", "name_1")
    people.insert_one("people", {"_id": 9, "name": "Ada"})
    with pytest.raises(ConnectorError) as info:
        people.create_index("people", "name", unique=True)
    assert info.value.code is (
        ErrorCode.EXEC_FAILED if backend == "ferretdb" else ErrorCode.CONSTRAINT_VIOLATION
    )
    with pytest.raises(ConnectorError) as info:
        people.drop_index("people", "nope_1")
    assert info.value.code is ErrorCode.NOT_FOUND


def test_bulk_write(people: MongoDBConnector, backend: str) -> None:
    result = people.bulk_write(
        "people",
        [
            ("insert_one", {"_id": 30}),
            ("update_one", ({"_id": 30}, {"$set": {"a": 1}})),
            ("update_many", ({"tags": "math"}, {"$set": {"m": 1}})),
            ("replace_one", ({"_id": 31}, {"b": 2}, {"upsert": True})),
            ("delete_one", {"_id": 4}),
        ],
    )
    upserted_at = 1 if backend == "ferretdb" else 3  # FERRETDB_GAPS["bulk upsert index"]
    assert result == BulkResult(1, 3, 3, 1, 1, {upserted_at: 31})
    assert people.find_one("people", {"_id": 30}) == {"_id": 30, "a": 1}
    assert people.find_one("people", {"_id": 4}) is None


def test_aggregations(people: MongoDBConnector, backend: str) -> None:
    group: dict[str, Any] = {"_id": "$tags", "n": {"$sum": 1}}
    expected = [
        {"_id": "code", "n": 2, "total": 121, "min": 36, "max": 85, "avg": 60.5},
        {"_id": "math", "n": 2, "total": 77, "min": 36, "max": 41, "avg": 38.5},
        {"_id": "navy", "n": 1, "total": 85, "min": 85, "max": 85, "avg": 85.0},
    ]
    if backend == "ferretdb":  # FERRETDB_GAPS["accumulators"]
        for row in expected:
            del row["total"], row["avg"], row["min"], row["max"]
    else:
        group.update(
            total={"$sum": "$age"}, min={"$min": "$age"}, max={"$max": "$age"}, avg={"$avg": "$age"}
        )
    pipeline = [
        {"$match": {"age": {"$gt": 10}}},
        {"$unwind": "$tags"},
        {"$group": group},
        {"$sort": {"_id": 1}},
    ]
    assert people.aggregate("people", pipeline) == expected
    projected = people.aggregate(
        "people",
        [
            {"$project": {"name": 1, "age": 1, "_id": 0}},
            {"$sort": {"age": -1}},
            {"$skip": 1},
            {"$limit": 2},
        ],
    )
    assert projected == [{"name": "Edsger", "age": 72}, {"name": "Alan", "age": 41}]
    if backend != "ferretdb":  # FERRETDB_GAPS["expressions"]
        computed = people.aggregate(
            "people",
            [
                {"$match": {"_id": 3}},
                {"$project": {"d": {"$multiply": ["$age", 2]}, "y": "$age", "_id": 0}},
            ],
        )
        assert computed == [{"d": 82, "y": 41}]
    assert people.aggregate("people", [{"$match": {"tags": "code"}}, {"$count": "n"}]) == [{"n": 2}]
    assert people.aggregate("people", [{"$group": {"_id": None, "n": {"$count": {}}}}]) == [
        {"_id": None, "n": 5}
    ]
    with people.aggregate("people", [{"$sort": {"_id": -1}}], stream=True, batch_size=2) as docs:
        assert ids(list(docs)) == [5, 4, 3, 2, 1]


def test_stream(people: MongoDBConnector) -> None:
    with people.stream("people", {"age": {"$gt": 40}}, sort="_id", batch_size=1) as docs:
        assert ids(list(docs)) == [2, 3, 4]


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda db: db.aggregate("people", [{"$bogus": {}}]), ErrorCode.QUERY_FAILED),
        (lambda db: db.query("people", {"age": {"$bogus": 1}}), ErrorCode.INVALID_REQUEST),
        (
            lambda db: db.update_one("people", {"_id": 1}, {"$inc": {"name": 1}}),
            ErrorCode.INVALID_REQUEST,
        ),
        (
            lambda db: db.update_one("people", {"_id": 1}, {"$set": {"a": 1}, "$inc": {"a": 1}}),
            ErrorCode.INVALID_REQUEST,
        ),
        (
            lambda db: db.update_one("people", {"_id": 1}, {"$set": {"_id": 9}}),
            ErrorCode.EXEC_FAILED,
        ),
    ],
    ids=["unknown stage", "unknown operator", "inc a string", "conflict", "immutable _id"],
)
def test_server_errors_have_the_same_codes(
    people: MongoDBConnector, call: Any, code: ErrorCode
) -> None:
    with pytest.raises(ConnectorError) as info:
        call(people)
    assert info.value.code is code
    assert people.find_one("people", {"_id": 1}) == PEOPLE[0]


def test_transactions_commit_abort_and_isolation(tx_mongo: MongoDBConnector) -> None:
    db = tx_mongo
    db.insert_one("accounts", {"_id": 1, "balance": 100})
    db.insert_one("accounts", {"_id": 2, "balance": 0})
    with db.transaction() as tx:
        tx.update_one("accounts", {"_id": 1}, {"$inc": {"balance": -30}})
        tx.update_one("accounts", {"_id": 2}, {"$inc": {"balance": 30}})
        assert tx.find_one("accounts", {"_id": 2}) == {"_id": 2, "balance": 30}
        assert db.find_one("accounts", {"_id": 2}) == {"_id": 2, "balance": 0}
    assert db.query("accounts", sort="_id") == [
        {"_id": 1, "balance": 70},
        {"_id": 2, "balance": 30},
    ]
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.insert_one("accounts", {"_id": 3, "balance": 5})
        tx.delete_one("accounts", {"_id": 1})
        raise RuntimeError("abort")
    assert ids(db.query("accounts", sort="_id")) == [1, 2]
    assert not tx.is_active
    with pytest.raises(ConnectorError) as info:
        tx.find_one("accounts", {})
    assert info.value.code is ErrorCode.TRANSACTION_FAILED
    assert db.run_in_transaction(lambda t: t.count("accounts")) == 2


# ------------------------------------------- randomized: fake vs SecantusDB

VALUES: list[Any] = [0, 1, 2, 2.5, -1, 10, "a", "b", "ab", "", None, True, False, [], [1, 2]]


def _random_doc(rng: random.Random, n: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": n}
    if rng.random() < 0.8:
        doc["a"] = rng.choice([*VALUES, [rng.randint(0, 3) for _ in range(rng.randint(0, 3))]])
    if rng.random() < 0.7:
        sub = {"c": rng.randint(0, 4), "d": rng.choice(["x", "y", "xy"])}
        doc["b"] = sub if rng.random() < 0.6 else [sub, {"c": rng.randint(0, 4)}]
    if rng.random() < 0.7:
        doc["s"] = rng.choice(["apple", "Apple", "banana", "cherry", "apricot"])
    if rng.random() < 0.6:
        doc["t"] = rng.sample(["red", "green", "blue", "red2"], rng.randint(0, 3))
    return doc


FIELDS = ["a", "b.c", "b.d", "s", "t", "b", "a.0", "missing"]


def _random_condition(rng: random.Random, field: str) -> Any:
    value = rng.choice([*VALUES, 3, "x", "red", "apple"])
    op = rng.choice(["eq", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin",
                     "$exists", "$size", "$all", "$regex", "$not", "$elemMatch"])  # fmt: skip
    if op == "eq":
        return value
    if op in ("$in", "$nin"):
        return {op: rng.sample([*VALUES, "red", "x", 3], rng.randint(1, 3))}
    if op == "$all":
        # Not null: MongoDB documents $all as an $and of equalities (so [null]
        # matches a missing field, as the fake does); SecantusDB matches nothing.
        return {op: rng.sample([*VALUES[:10], "red", "x", 3], rng.randint(1, 3))}
    if op == "$exists":
        return {op: rng.random() < 0.5}
    if op == "$size":
        return {op: rng.randint(0, 3)}
    if op == "$regex":
        return {op: rng.choice(["^a", "an", "^A", "y$", "e"]), "$options": rng.choice(["", "i"])}
    if op == "$not":
        inner, operand = rng.choice(["$gt", "$lt", "$eq", "$in"]), rng.choice([1, 2, "b", [1, 2]])
        if inner == "$in" and not isinstance(operand, list):
            operand = [operand]  # {"$in": 1} is malformed: refused wherever it is
        return {op: {inner: operand}}
    if op == "$elemMatch":
        return {op: rng.choice([{"$gt": 1}, {"$lt": 2, "$gte": 0}, {"c": {"$gte": 2}}])}
    return {op: value}


def _random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and rng.random() < 0.25:
        op = rng.choice(["$and", "$or", "$nor"])
        return {op: [_random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    filt: dict[str, Any] = {}
    for field in rng.sample(FIELDS, rng.randint(1, 2)):
        filt[field] = _random_condition(rng, field)
    return filt


def _outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except ConnectorError as err:
        return ("error", err.code)


def test_random_filters_sorts_and_updates_agree_with_a_real_server(
    request: pytest.FixtureRequest,
) -> None:
    """Seeded random data, filters, sorts and updates: the fake answers as SecantusDB does."""
    rng = random.Random(20261202)
    docs = [_random_doc(rng, n) for n in range(60)]
    filters = [_random_filter(rng) for _ in range(300)]
    with FakeMongoDB() as fake, connected(_server(request, "secantusdb")) as real:
        for db in (fake, real):
            db.insert_many("r", copy.deepcopy(docs))
        for filt in filters:
            expected = _outcome(lambda f=filt: ids(real.query("r", f, sort="_id")))
            assert _outcome(lambda f=filt: ids(fake.query("r", f, sort="_id"))) == expected, filt
        for field in FIELDS:
            for direction in (1, -1):
                spec = [(field, direction), ("_id", 1)]
                assert ids(fake.query("r", sort=spec)) == ids(real.query("r", sort=spec)), spec
        for _ in range(100):
            filt = _random_filter(rng)
            path = rng.choice(["a", "n", "b.c", "t", "s", "z.y", "b.0.c", "t.1"])
            op = rng.choice(
                ["$set", "$inc", "$unset", "$push", "$addToSet", "$min", "$max", "$mul", "$pull"]
            )
            value = rng.choice([1, 2.5, "v", [1], None, {"k": 1}])
            if op in ("$inc", "$mul"):
                value = rng.choice([2, -1, 0.5])
            update = {op: {path: value}}
            expected = _outcome(lambda f=filt, u=update: real.update_many("r", f, u))
            got = _outcome(lambda f=filt, u=update: fake.update_many("r", f, u))
            assert got == expected, (filt, update)
            assert fake.query("r", sort="_id") == real.query("r", sort="_id"), update
