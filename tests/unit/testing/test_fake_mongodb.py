"""FakeMongoDB: the real connector's API, codes and lifecycle on in-memory collections."""

from __future__ import annotations

import copy
import datetime
import pickle
import re
import threading
from typing import Any

import bson
import pytest

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.errors import (
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
    RetryHint,
)
from dictamesh_connectors.mongodb import (
    BulkResult,
    DocumentStream,
    MongoDBConfig,
    MongoDBConnector,
    Transaction,
    UpdateResult,
)
from dictamesh_connectors.testing import fakes
from dictamesh_connectors.testing.fakes import FakeMongoDB
from dictamesh_connectors.testing.fakes.mongodb import FakeTransaction
from tests.forking import run_in_child
from tests.unit.testing.test_api_parity import public_names, shape
from tests.unit.testing.test_fakes_conformance import MARKER, _FakeConformance

FAKE_EXTRAS = {"faults", "fail_next", "set_latency", "reset"}

PEOPLE = [
    {"_id": 1, "name": "Ada", "age": 36, "tags": ["math", "code"], "address": {"city": "London"}},
    {"_id": 2, "name": "Grace", "age": 85, "tags": ["navy", "code"], "address": {"city": "NYC"}},
    {"_id": 3, "name": "Alan", "age": 41, "tags": ["math"], "address": {"city": "London"}},
    {"_id": 4, "name": "Edsger", "age": 72, "tags": [], "score": None},
    {"_id": 5, "name": "barbara", "age": 8.5, "kids": [{"n": "x", "a": 3}, {"n": "y", "a": 9}]},
]


@pytest.fixture
def db():
    fake = FakeMongoDB()
    fake.connect()
    fake.insert_many("people", copy.deepcopy(PEOPLE))
    yield fake
    fake.disconnect()


def ids(docs):
    return [d["_id"] for d in docs]


# --------------------------------------------------------------- API parity


@pytest.mark.parametrize(
    ("fake", "real"),
    [(FakeMongoDB, MongoDBConnector), (FakeTransaction, Transaction)],
    ids=lambda cls: cls.__name__,
)
def test_same_public_api_as_the_real_connector(fake, real):
    assert not public_names(real) - public_names(fake)
    assert public_names(fake) - public_names(real) <= FAKE_EXTRAS
    for name in sorted(public_names(real)):
        real_attr = getattr(real, name)
        if isinstance(inspect_static(real, name), property):
            assert isinstance(inspect_static(fake, name), property), name
            continue
        if callable(real_attr) and not isinstance(real_attr, type):
            assert shape(getattr(fake, name)) == shape(real_attr), f"{fake.__name__}.{name}"


def inspect_static(cls, name):
    import inspect

    return inspect.getattr_static(cls, name)


def test_identity_and_docstrings():
    assert FakeMongoDB.name == MongoDBConnector.name == "mongodb"
    assert FakeMongoDB.config_class is MongoDBConfig
    assert issubclass(FakeTransaction, Transaction)
    for name in public_names(FakeMongoDB):
        assert (getattr(FakeMongoDB, name).__doc__ or "").strip(), name
    assert fakes.FakeMongoDB is FakeMongoDB
    assert "FakeMongoDB" in fakes.__all__


def test_takes_a_config_a_url_or_nothing():
    assert FakeMongoDB().config.database == "test"
    assert FakeMongoDB("mongodb://h:1/app").config.database == "app"
    assert FakeMongoDB(MongoDBConfig(database="x")).config.database == "x"
    with pytest.raises(InvalidConfigError):
        FakeMongoDB("mongodb://h/bad db")


# ---------------------------------------------------------------- lifecycle


def test_not_connected_raises_not_connected():
    fake = FakeMongoDB()
    with pytest.raises(NotConnectedError):
        fake.insert_one("c", {"a": 1})
    with fake:
        fake.insert_one("c", {"_id": 1})
    with pytest.raises(NotConnectedError):
        fake.query("c")
    with fake:  # data outlives the connection, as on a server
        assert fake.query("c") == [{"_id": 1}]
        fake.reset()
        assert fake.query("c") == []


def test_connect_and_ping_faults():
    fake = FakeMongoDB()
    fake.fail_next("connect", code=ErrorCode.AUTH_FAILED)
    with pytest.raises(ConnectorError) as info:
        fake.connect()
    assert info.value.code is ErrorCode.AUTH_FAILED and not fake.is_connected
    fake.connect()
    fake.ping()
    fake.fail_next("ping", code=ErrorCode.UNAVAILABLE)
    with pytest.raises(ConnectorError):
        fake.ping()
    fake.disconnect()


def test_stats_and_listeners_see_operations_and_errors(db):
    seen = []

    class Listener:
        def on_operation(self, connector, operation, duration, error):
            seen.append((operation, None if error is None else error.code))

    db.add_listener(Listener())
    db.find_one("people", {"_id": 1})
    with pytest.raises(ConnectorError):
        db.insert_one("people", {"_id": 1})
    assert seen == [("find_one", None), ("insert_one", ErrorCode.CONSTRAINT_VIOLATION)]
    assert db.stats().errors == {"CONSTRAINT_VIOLATION": 1}


# ------------------------------------------------------------------ copying


def test_documents_are_copied_in_and_out(db):
    doc = {"name": "Linus", "langs": ["c"]}
    new_id = db.insert_one("people", doc)
    assert isinstance(new_id, bson.ObjectId) and doc["_id"] == new_id  # as pymongo
    doc["langs"].append("rust")
    stored = db.find_one("people", {"_id": new_id})
    assert stored == {"_id": new_id, "name": "Linus", "langs": ["c"]}
    stored["langs"].append("go")
    assert db.find_one("people", {"_id": new_id})["langs"] == ["c"]
    assert list(db.find_one("people", {"_id": new_id})) == ["_id", "name", "langs"]


def test_values_go_through_bson(db):
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc)
    db.insert_one("t", {"_id": 1, "when": when, "pair": (1, 2)})
    got = db.find_one("t", {"_id": 1})
    assert got["pair"] == [1, 2]
    assert got["when"] == when.replace(microsecond=678000)
    with pytest.raises(ConnectorError) as info:
        db.insert_one("t", {"big": 2**70})
    assert info.value.code is ErrorCode.SERIALIZATION_ERROR
    with pytest.raises(ConnectorError) as info:
        db.insert_one("t", {"set": {1, 2}})
    assert info.value.code is ErrorCode.SERIALIZATION_ERROR


def test_argument_checks_are_the_real_ones(db):
    with pytest.raises(TypeError):
        db.query("people", "not a filter")
    with pytest.raises(ConnectorError) as info:
        db.insert_one("people", {"$bad": 1})
    assert info.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(ConnectorError) as info:
        db.update_one("people", {}, {"name": "x"})
    assert info.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(ConnectorError) as info:
        db.query("bad$name")
    assert info.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(TypeError):
        db.delete_many("people", None)
    with pytest.raises(InvalidConfigError):
        db.query("people", limit=-1)


# ------------------------------------------------------------------ filters

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
    ({"age": {"$gt": "a"}}, []),  # type bracketing: numbers never compare with strings
    ({"age": {"$in": [36, 85, 99]}}, [1, 2]),
    ({"age": {"$nin": [36, 85]}}, [3, 4, 5]),
    ({"score": {"$exists": True}}, [4]),
    ({"score": {"$exists": False}}, [1, 2, 3, 5]),
    ({"score": None}, [1, 2, 3, 4, 5]),  # null matches missing too
    ({"tags": "code"}, [1, 2]),  # an array matches by its elements
    ({"tags": ["math"]}, [3]),  # or as a whole
    ({"tags": {"$all": ["math", "code"]}}, [1]),
    ({"tags": {"$size": 0}}, [4]),
    ({"address.city": "London"}, [1, 3]),
    ({"kids.n": "y"}, [5]),  # a path through an array of sub-documents
    ({"kids.a": {"$gt": 5}}, [5]),
    ({"kids": {"$elemMatch": {"n": "x", "a": {"$lt": 5}}}}, [5]),
    ({"kids": {"$elemMatch": {"n": "x", "a": {"$gt": 5}}}}, []),
    ({"kids.1.n": "y"}, [5]),
    ({"name": {"$regex": "^a"}}, []),
    ({"name": {"$regex": "^a", "$options": "i"}}, [1, 3]),
    ({"name": re.compile("^B", re.IGNORECASE)}, [5]),
    ({"name": {"$not": {"$regex": "a"}}}, [4]),
    ({"age": {"$not": {"$gt": 40}}}, [1, 5]),
    ({"$and": [{"age": {"$gt": 30}}, {"tags": "math"}]}, [1, 3]),
    ({"$or": [{"name": "Ada"}, {"age": {"$lt": 10}}]}, [1, 5]),
    ({"$nor": [{"name": "Ada"}, {"age": {"$lt": 10}}]}, [2, 3, 4]),
    ({"age": 36.0}, [1]),  # 36 == 36.0
    ({"age": {"$mod": [2, 0]}}, [1, 4, 5]),
    ({"_id": {"$in": [2, 4]}}, [2, 4]),
]


@pytest.mark.parametrize(("filter", "expected"), FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_filters(db, filter, expected):
    assert ids(db.query("people", filter)) == expected
    assert db.count("people", filter) == len(expected)


def test_booleans_are_not_numbers(db):
    db.insert_many("b", [{"_id": 1, "v": True}, {"_id": 2, "v": 1}])
    assert ids(db.query("b", {"v": 1})) == [2]
    assert ids(db.query("b", {"v": True})) == [1]


def test_unknown_operators_are_refused_like_a_server(db):
    with pytest.raises(ConnectorError) as info:
        db.query("people", {"age": {"$bogus": 1}})
    assert info.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(ConnectorError) as info:
        db.query("people", {"$where": "1"})
    assert info.value.code is ErrorCode.UNSUPPORTED


def test_projection_sort_skip_limit(db):
    got = db.query("people", {}, projection={"name": 1}, sort=[("age", -1)], skip=1, limit=2)
    assert got == [{"_id": 4, "name": "Edsger"}, {"_id": 3, "name": "Alan"}]
    assert db.query("people", {"_id": 1}, projection=["address.city"]) == [
        {"_id": 1, "address": {"city": "London"}}
    ]
    assert db.query("people", {"_id": 5}, projection={"kids.n": 1, "_id": 0}) == [
        {"kids": [{"n": "x"}, {"n": "y"}]}
    ]
    assert db.query("people", {"_id": 1}, projection={"tags": 0, "address": 0, "age": 0}) == [
        {"_id": 1, "name": "Ada"}
    ]
    assert ids(db.query("people", sort="name")) == [1, 3, 4, 2, 5]  # binary order
    # An array sorts by its least element: "code" for 1 and 2, then "math".
    by_tags = db.query("people", {"_id": {"$lt": 4}}, sort=[("tags", 1), ("_id", -1)])
    assert ids(by_tags) == [2, 1, 3]
    assert db.find_one("people", {}, sort=[("age", 1)])["_id"] == 5
    assert db.find_one("people", {"name": "nobody"}) is None
    with pytest.raises(ConnectorError):
        db.query("people", projection={"name": 1, "age": 0})


def test_distinct(db):
    assert db.distinct("people", "tags") == ["code", "math", "navy"]
    assert db.distinct("people", "address.city", {"age": {"$gt": 40}}) == ["London", "NYC"]


# ------------------------------------------------------------------ updates


def test_update_operators(db):
    result = db.update_one(
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
    assert db.find_one("people", {"_id": 1}) == {
        "_id": 1,
        "name": "Ada L.",
        "age": 37,
        "tags": ["math", "code", "poetry"],
        "address": {"city": "London", "zip": "N1"},
        "visits": 2,
        "langs": ["en", "fr"],
    }
    db.update_one("people", {"_id": 1}, {"$addToSet": {"tags": "math"}, "$unset": {"address": 1}})
    assert db.find_one("people", {"_id": 1}, projection={"tags": 1, "address": 1}) == {
        "_id": 1,
        "tags": ["math", "code", "poetry"],
    }
    db.update_one(
        "people",
        {"_id": 3},
        {"$mul": {"age": 2}, "$min": {"low": 5}, "$max": {"high": 10}, "$pull": {"tags": "math"}},
    )
    got = db.find_one("people", {"_id": 3}, projection=["age", "low", "high", "tags"])
    assert got == {"_id": 3, "age": 82, "tags": [], "low": 5, "high": 10}


def test_update_counts_and_upserts(db):
    assert db.update_many("people", {"tags": "code"}, {"$set": {"coder": True}}) == UpdateResult(
        2, 2, None
    )
    assert db.update_many("people", {"tags": "code"}, {"$set": {"coder": True}}) == UpdateResult(
        2, 0, None
    )
    assert db.update_one("people", {"_id": 99}, {"$set": {"x": 1}}) == UpdateResult(0, 0, None)
    result = db.update_one(
        "people", {"name": "New", "age": {"$gt": 1}}, {"$set": {"x": 1}, "$setOnInsert": {"y": 2}},
        upsert=True,
    )  # fmt: skip
    assert result.matched == 0 and isinstance(result.upserted_id, bson.ObjectId)
    assert db.find_one("people", {"_id": result.upserted_id}) == {
        "_id": result.upserted_id,
        "name": "New",
        "x": 1,
        "y": 2,
    }
    assert db.replace_one("people", {"_id": 2}, {"name": "G"}) == UpdateResult(1, 1, None)
    assert db.find_one("people", {"_id": 2}) == {"_id": 2, "name": "G"}
    assert db.replace_one("people", {"_id": 7}, {"name": "S"}, upsert=True) == UpdateResult(0, 0, 7)
    assert db.find_one("people", {"_id": 7}) == {"_id": 7, "name": "S"}
    doc = db.find_one_and_update("people", {"_id": 7}, {"$inc": {"v": 1}}, return_document="after")
    assert doc == {"_id": 7, "name": "S", "v": 1}
    assert db.find_one_and_update("people", {"_id": 7}, {"$inc": {"v": 1}}) == doc


@pytest.mark.parametrize(
    ("update", "code"),
    [
        ({"$set": {"_id": 9}}, ErrorCode.EXEC_FAILED),  # 66 ImmutableField
        ({"$inc": {"name": 1}}, ErrorCode.INVALID_REQUEST),  # 14 TypeMismatch
        ({"$set": {"a": 1}, "$inc": {"a": 1}}, ErrorCode.INVALID_REQUEST),  # 40 conflict
        ({"$push": {"name": 1}}, ErrorCode.INVALID_REQUEST),  # 2 BadValue
        ({"$set": {"tags.$": 1}}, ErrorCode.UNSUPPORTED),
    ],
)
def test_update_errors(db, update, code):
    with pytest.raises(ConnectorError) as info:
        db.update_one("people", {"_id": 1}, update)
    assert info.value.code is code
    assert db.find_one("people", {"_id": 1}) == PEOPLE[0]


def test_deletes(db):
    assert db.delete_one("people", {"tags": "math"}) == 1
    assert ids(db.query("people")) == [2, 3, 4, 5]
    assert db.delete_many("people", {"age": {"$gt": 50}}) == 2
    assert db.delete_many("people", {}) == 2
    assert db.count("people") == 0


# ------------------------------------------------------ duplicates, indexes


def test_duplicate_id_is_the_real_code_and_details(db):
    with pytest.raises(ConnectorError) as info:
        db.insert_one("people", {"_id": 1})
    err = info.value
    assert err.code is ErrorCode.CONSTRAINT_VIOLATION and not err.transient
    assert err.details["code"] == 11000 and err.details["key_pattern"] == {"_id": 1}
    assert err.details["index"] == "_id_"
    assert not err.maybe_applied
    pickle.loads(pickle.dumps(err))


@pytest.mark.parametrize("ordered", [True, False])
def test_insert_many_duplicates(db, ordered):
    with pytest.raises(ConnectorError) as info:
        db.insert_many("people", [{"_id": 10}, {"_id": 1}, {"_id": 11}], ordered=ordered)
    err = info.value
    assert err.code is ErrorCode.CONSTRAINT_VIOLATION
    assert [e["index"] for e in err.details["write_errors"]] == [1]
    assert err.details["inserted"] == (1 if ordered else 2)
    assert ids(db.query("people", {"_id": {"$gte": 10}})) == ([10] if ordered else [10, 11])


def test_unique_index(db):
    assert db.create_index("people", "name", unique=True) == "name_1"
    assert db.create_index("people", "name", unique=True) == "name_1"  # the same one: no-op
    with pytest.raises(ConnectorError) as info:
        db.insert_one("people", {"name": "Ada"})
    assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
    assert info.value.details["key_pattern"] == {"name": 1}
    with pytest.raises(ConnectorError) as info:
        db.update_one("people", {"_id": 2}, {"$set": {"name": "Ada"}})
    assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
    db.update_one("people", {"_id": 1}, {"$set": {"name": "Ada2"}})
    db.insert_one("people", {"name": "Ada"})  # the old key is free again
    with pytest.raises(ConnectorError) as info:
        db.create_index("people", "name", name="name_1", unique=False)
    assert info.value.code is ErrorCode.CONFLICT
    with pytest.raises(ConnectorError) as info:
        db.create_index("people", "age", unique=True, name="x") and db.insert_one(
            "people", {"age": 36}
        )
    assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
    assert [ix["name"] for ix in db.list_indexes("people")] == ["_id_", "name_1", "x"]
    db.drop_index("people", "x")
    with pytest.raises(ConnectorError) as info:
        db.drop_index("people", "x")
    assert info.value.code is ErrorCode.NOT_FOUND


def test_unique_index_on_existing_duplicates_and_sparse(db):
    db.insert_one("people", {"_id": 6, "name": "Ada"})
    with pytest.raises(ConnectorError) as info:
        db.create_index("people", [("name", 1)], unique=True)
    assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
    assert [ix["name"] for ix in db.list_indexes("people")] == ["_id_"]
    db.create_index("people", "score2", unique=True, sparse=True)
    db.insert_many("people", [{"_id": 20}, {"_id": 21}])  # both lack the field: skipped


def test_drop_collection(db):
    db.drop_collection("people")
    db.drop_collection("people")
    assert db.query("people") == []
    assert db.list_indexes("people") == []


def test_bulk_write(db):
    result = db.bulk_write(
        "people",
        [
            ("insert_one", {"_id": 30}),
            ("update_one", ({"_id": 30}, {"$set": {"a": 1}})),
            ("update_many", ({"tags": "math"}, {"$set": {"m": 1}})),
            ("replace_one", ({"_id": 31}, {"b": 2}, {"upsert": True})),
            ("delete_one", {"_id": 4}),
        ],
    )
    assert result == BulkResult(1, 3, 3, 1, 1, {3: 31})
    with pytest.raises(ConnectorError) as info:
        db.bulk_write("people", [("insert_one", {"_id": 40}), ("insert_one", {"_id": 1})])
    assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
    assert info.value.details["inserted"] == 1


# -------------------------------------------------------------- aggregation


def test_aggregate(db):
    pipeline = [
        {"$match": {"age": {"$gt": 10}}},
        {"$unwind": "$tags"},
        {"$group": {
            "_id": "$tags", "n": {"$sum": 1}, "total": {"$sum": "$age"}, "avg": {"$avg": "$age"},
            "min": {"$min": "$age"}, "max": {"$max": "$age"}, "c": {"$count": {}},
            "names": {"$push": "$name"},
        }},
        {"$sort": {"_id": 1}},
    ]  # fmt: skip
    assert db.aggregate("people", pipeline) == [
        {"_id": "code", "n": 2, "total": 121, "avg": 60.5, "min": 36, "max": 85, "c": 2,
         "names": ["Ada", "Grace"]},
        {"_id": "math", "n": 2, "total": 77, "avg": 38.5, "min": 36, "max": 41, "c": 2,
         "names": ["Ada", "Alan"]},
        {"_id": "navy", "n": 1, "total": 85, "avg": 85.0, "min": 85, "max": 85, "c": 1,
         "names": ["Grace"]},
    ]  # fmt: skip
    assert db.aggregate(
        "people",
        [
            {"$project": {"name": 1, "decade": {"$multiply": ["$age", 2]}, "_id": 0}},
            {"$sort": {"decade": -1}},
            {"$skip": 1},
            {"$limit": 2},
        ],
    ) == [{"name": "Edsger", "decade": 144}, {"name": "Alan", "decade": 82}]
    assert db.aggregate("people", [{"$match": {"tags": "code"}}, {"$count": "n"}]) == [{"n": 2}]
    assert db.aggregate("people", [{"$group": {"_id": None, "n": {"$sum": 1}}}]) == [
        {"_id": None, "n": 5}
    ]
    with db.aggregate("people", [{"$match": {"_id": 1}}], stream=True) as docs:
        assert isinstance(docs, DocumentStream) and ids(list(docs)) == [1]


def test_aggregate_errors(db):
    with pytest.raises(ConnectorError) as info:
        db.aggregate("people", [{"$bogus": {}}])
    assert info.value.code is ErrorCode.QUERY_FAILED and info.value.details["code"] == 40324
    with pytest.raises(ConnectorError) as info:
        db.aggregate("people", [{"$out": "x"}])
    assert info.value.code is ErrorCode.UNSUPPORTED


# ------------------------------------------------------------------ streams


def test_stream_is_in_flight_until_closed(db):
    docs = db.stream("people", {"age": {"$gt": 40}}, sort="_id", batch_size=1)
    assert db.stats().in_flight == 0
    assert next(docs)["_id"] == 2
    assert db.stats().in_flight == 1
    docs.close()
    assert db.stats().in_flight == 0
    with db.stream("people") as docs:
        assert len(list(docs)) == 5


# ------------------------------------------------------------- transactions


def test_transaction_commit_rollback_isolation(db):
    with db.transaction() as tx:
        assert tx.is_active
        tx.insert_one("people", {"_id": 50})
        tx.update_one("people", {"_id": 1}, {"$set": {"age": 1}})
        assert tx.find_one("people", {"_id": 50}) == {"_id": 50}
        assert db.find_one("people", {"_id": 50}) is None
        assert db.find_one("people", {"_id": 1})["age"] == 36
        assert db.count("people", session=tx) == 6
    assert not tx.is_active
    assert db.find_one("people", {"_id": 50}) == {"_id": 50}
    assert db.find_one("people", {"_id": 1})["age"] == 1
    with pytest.raises(ConnectorError) as info:
        tx.insert_one("people", {"_id": 51})
    assert info.value.code is ErrorCode.TRANSACTION_FAILED

    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.delete_many("people", {})
        raise RuntimeError
    assert db.count("people") == 6


def test_write_conflict_is_transient_and_run_in_transaction_reruns(db):
    with pytest.raises(ConnectorError) as info, db.transaction() as tx:
        tx.update_one("people", {"_id": 1}, {"$inc": {"age": 1}})
        db.update_one("people", {"_id": 1}, {"$inc": {"age": 100}})
    err = info.value
    assert err.code is ErrorCode.SERIALIZATION_FAILURE
    assert err.retry_hint is RetryHint.RETRY_TRANSACTION
    assert "TransientTransactionError" in err.details["labels"]
    assert db.find_one("people", {"_id": 1})["age"] == 136

    db._sleep = lambda seconds: None
    runs = []

    def transfer(tx):
        runs.append(1)
        tx.update_one("people", {"_id": 2}, {"$inc": {"age": -5}})
        if len(runs) == 1:  # someone else writes the same document meanwhile
            db.update_one("people", {"_id": 2}, {"$set": {"age": 100}})
        return "done"

    assert db.run_in_transaction(transfer) == "done"
    assert len(runs) == 2 and db.find_one("people", {"_id": 2})["age"] == 95


def test_a_fake_transaction_cannot_serve_a_real_session(db):
    with pytest.raises(TypeError):
        db.insert_one("people", {"_id": 9}, session=object())
    with db.transaction() as tx:
        with pytest.raises(ConnectorError) as info:
            tx.create_index("people", "x")
        assert info.value.code is ErrorCode.TRANSACTION_FAILED


def test_execute(db):
    assert db.execute("ping") == {"ok": 1.0}
    assert db.execute({"count": "people", "query": {"age": {"$gt": 40}}})["n"] == 3
    names = db.execute("listCollections")["cursor"]["firstBatch"]
    assert [c["name"] for c in names] == ["people"]
    db.execute({"create": "other"})
    with pytest.raises(ConnectorError) as info:
        db.execute({"create": "other"})
    assert info.value.code is ErrorCode.CONFLICT
    with pytest.raises(ConnectorError) as info:
        db.execute("replSetGetStatus")
    assert info.value.code is ErrorCode.UNSUPPORTED


# ------------------------------------------------------------------- faults


def test_fail_next_on_a_verb(db):
    db.fail_next("insert_one", code=ErrorCode.TIMEOUT, maybe_applied=True)
    with pytest.raises(ConnectorTimeoutError) as info:
        db.insert_one("people", {"_id": 60})
    assert info.value.maybe_applied and info.value.connector == "mongodb"
    assert db.find_one("people", {"_id": 60}) is None
    db.insert_one("people", {"_id": 60})
    assert db.faults.call_count("insert_one") == 2


def test_partial_failures(db):
    db.fail_next("insert_many", partial=2, code=ErrorCode.CONNECTION_LOST)
    with pytest.raises(ConnectorError) as info:
        db.insert_many("people", [{"_id": i} for i in range(100, 105)])
    err = info.value
    assert err.maybe_applied and err.details["applied"] == 2 and err.details["total"] == 5
    assert ids(db.query("people", {"_id": {"$gte": 100}})) == [100, 101]
    db.fail_next("bulk_write", partial=True)
    with pytest.raises(ConnectorError):
        db.bulk_write("people", [("delete_one", {"_id": 100}), ("delete_one", {"_id": 101})])
    assert ids(db.query("people", {"_id": {"$gte": 100}})) == [101]


def test_latency_sleeps_outside_every_lock(db):
    slept = []

    def sleep(seconds):
        # Another thread can use the fake meanwhile: no lock is held.
        worker = threading.Thread(target=lambda: db.count("people"))
        worker.start()
        worker.join(10)
        slept.append((seconds, worker.is_alive()))

    db.faults._sleep = sleep
    db.set_latency("query", 0.25)
    db.query("people")
    assert slept == [(0.25, False)]


# --------------------------------------------------------- threads and fork


def test_thirty_two_threads(db):
    errors = []

    def work(n):
        try:
            for i in range(25):
                db.insert_one("load", {"t": n, "i": i})
                db.update_many("load", {"t": n}, {"$inc": {"hits": 1}})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert db.count("load") == 32 * 25
    assert len({d["_id"] for d in db.query("load")}) == 32 * 25
    assert db.aggregate("load", [{"$group": {"_id": None, "n": {"$sum": "$hits"}}}]) == [
        {"_id": None, "n": 32 * sum(range(1, 26))}
    ]
    assert db.stats().in_flight == 0


def test_fork_child_has_its_own_copy(db):
    def child():
        assert db.count("people") == 5
        db.insert_one("people", {"_id": 77})
        return db.count("people") == 6

    assert run_in_child(child) == 0
    assert db.count("people") == 5


def test_sort_keys_of_arrays_as_a_server(db):
    db.insert_many(
        "s",
        [
            {"_id": 1, "a": []},
            {"_id": 2},
            {"_id": 3, "a": [5, 1]},
            {"_id": 4, "a": 3, "b": [{"d": "x"}, {"c": 1}]},
            {"_id": 5, "b": {"d": "w"}},
        ],
    )
    # An empty array sorts below null (a missing field) in both directions.
    assert ids(db.query("s", sort=[("a", 1), ("_id", 1)])) == [1, 2, 5, 3, 4]
    assert ids(db.query("s", sort=[("a", -1), ("_id", 1)])) == [3, 4, 2, 5, 1]
    # Array elements without the field are left out of the key.
    assert ids(db.query("s", sort=[("b.d", 1), ("_id", 1)])) == [1, 2, 3, 5, 4]


def test_group_sum_skips_arrays_and_field_paths_through_arrays(db):
    got = db.aggregate("people", [{"$group": {"_id": None, "s": {"$sum": "$tags"}}}])
    assert got == [{"_id": None, "s": 0}]
    kids = db.aggregate("people", [{"$match": {"_id": 5}}, {"$project": {"k": "$kids.n"}}])
    assert kids == [{"_id": 5, "k": ["x", "y"]}]


@pytest.mark.parametrize(
    ("update", "code"),
    [
        ({"$pop": {"nothing": 2}}, ErrorCode.INVALID_REQUEST),
        ({"$rename": {"tags.0": "t"}}, ErrorCode.INVALID_REQUEST),
        ({"$rename": {"name": "name"}}, ErrorCode.INVALID_REQUEST),
        ({"$rename": {"name": "name.x"}}, ErrorCode.INVALID_REQUEST),
    ],
)
def test_more_update_errors(db, update, code):
    with pytest.raises(ConnectorError) as info:
        db.update_one("people", {"_id": 1}, update)
    assert info.value.code is code


def test_pull_and_pop_on_a_missing_field_change_nothing(db):
    result = db.update_one("people", {"_id": 4}, {"$pull": {"x.y": 1}, "$pop": {"z": 1}})
    assert result == UpdateResult(1, 0, None)
    assert db.find_one("people", {"_id": 4}) == PEOPLE[3]
    db.update_one("people", {"_id": 1}, {"$rename": {"address.city": "town"}, "$pop": {"tags": -1}})
    assert db.find_one("people", {"_id": 1}, projection=["town", "tags", "address"]) == {
        "_id": 1, "tags": ["code"], "address": {}, "town": "London",
    }  # fmt: skip


def test_concurrent_transactions_lose_no_update(db):
    """8 threads increment one counter in transactions: conflicts rerun, none is lost."""
    db._sleep = lambda seconds: None
    db.insert_one("counters", {"_id": "c", "n": 0})
    errors = []

    def work():
        try:
            for _ in range(20):

                def bump(tx):
                    doc = tx.find_one("counters", {"_id": "c"})
                    tx.update_one("counters", {"_id": "c"}, {"$set": {"n": doc["n"] + 1}})

                db.run_in_transaction(bump, deadline=600)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert db.find_one("counters", {"_id": "c"}) == {"_id": "c", "n": 160}


def test_where_test_servers_differ_the_fake_follows_mongodb(db):
    # $all is an $and of equalities: [None] matches a missing field.
    assert ids(db.query("people", {"score": {"$all": [None]}})) == [1, 2, 3, 4, 5]
    db.insert_many("d", [{"v": True}, {"v": 1}, {"v": 1.0}, {"v": False}, {"v": 0}])
    assert db.distinct("d", "v") == [0, 1, False, True]  # numbers before booleans


def test_a_stream_can_fail_between_batches(db):
    db.fail_next("getMore", code=ErrorCode.CONNECTION_LOST)
    got = []
    with pytest.raises(ConnectorError) as info:
        for doc in db.stream("people", sort="_id", batch_size=2):
            got.append(doc["_id"])
    assert got == [1, 2] and info.value.code is ErrorCode.CONNECTION_LOST
    assert db.stats().in_flight == 0
    assert ids(list(db.stream("people", sort="_id", batch_size=2))) == [1, 2, 3, 4, 5]
    assert len(db.query("people")) == 5  # a list read has no getMore


class TestFakeMongoDBConformance(_FakeConformance):
    """The fake keeps the connector contract (lifecycle, drain, fork, secrets...)."""

    connector_class = FakeMongoDB
    config = MongoDBConfig(hosts=("db.test:27017",), username="u", password=MARKER)
    secret_marker = MARKER
    slow_verb = "query"

    def slow(self, connector: Any) -> object:
        return connector.query("slow")

    def is_unreachable(self, config: Any) -> bool:
        return bool(config.hosts == ("unreachable.test:1",))

    def unreachable_config(self, config: BaseConfig) -> BaseConfig | None:
        return config.evolve(hosts=("unreachable.test:1",))

    def operation(self, connector: Any) -> object:
        return connector.count("ok")

    def failing_operation(self, connector: Any) -> object:
        if connector.find_one("dup", {"_id": 1}) is None:
            connector.insert_one("dup", {"_id": 1})
        return connector.insert_one("dup", {"_id": 1})


# Filters the fake once answered wrongly (an empty or partial result instead of
# the server's answer or its BadValue); each is now what MongoDB gives.
MONGODB_SEMANTICS = [
    ({"name": {"$in": [re.compile("^a", re.IGNORECASE), "Grace"]}}, [1, 2, 3]),
    ({"name": {"$in": [bson.Regex("^B", "i")]}}, [5]),
    ({"name": {"$nin": [re.compile("^A")]}}, [2, 4, 5]),
    ({"name": {"$eq": re.compile("^A")}}, []),  # a regex value, not a pattern
    ({"tags": {"$type": "array"}}, [1, 2, 3, 4]),
    ({"tags": {"$type": "string"}}, [1, 2, 3]),
    ({"age": {"$type": "double"}}, [5]),
    ({"age": {"$type": ["int", "long"]}}, [1, 2, 3, 4]),
    ({"age": {"$type": 16}}, [1, 2, 3, 4]),
    ({"score": {"$type": "null"}}, [4]),
    ({"kids": {"$all": [{"$elemMatch": {"n": "x"}}, {"$elemMatch": {"a": 9}}]}}, [5]),
    ({"kids": {"$all": [{"$elemMatch": {"n": "x", "a": 9}}]}}, []),
    ({"age": {"$mod": [-10, 6]}}, [1]),
    ({"age": {"$mod": [4.9, 0.5]}}, [1, 4, 5]),  # truncated: [4, 0]
    ({"tags": {"$exists": ""}}, [1, 2, 3, 4]),  # BSON truth: a string is true
    ({"kids": {"$elemMatch": {}}}, [5]),
    ({"$comment": "x", "name": "Ada"}, [1]),
]


@pytest.mark.parametrize(
    ("filter", "expected"), MONGODB_SEMANTICS, ids=[str(f) for f, _ in MONGODB_SEMANTICS]
)
def test_filters_follow_mongodb(db, filter, expected):
    assert ids(db.query("people", filter)) == expected


BAD_FILTERS = [
    {"tags": {"$size": -1}},
    {"tags": {"$size": 1.5}},
    {"name": {"$in": [{"$regex": "^a"}]}},
    {"name": {"$nin": [{"$gt": "a"}]}},
    {"name": {"$ne": re.compile("a")}},
    {"name": {"$gt": re.compile("a")}},
    {"tags": {"$all": [{"$size": 1}]}},
    {"tags": {"$all": [{"$elemMatch": {"$eq": 1}}, "code"]}},
    {"age": {"$type": "bogus"}},
    {"age": {"$type": 99}},
    {"age": {"$type": []}},
    {"age": {"$mod": [2, "x"]}},
    {"age": {"$mod": [0.5, 0]}},
    {"name": {"$not": {}}},
    {"name": {"$options": "i"}},
    {"name": "nobody", "age": {"$bogus": 1}},  # reached by no document
]


@pytest.mark.parametrize("filter", BAD_FILTERS, ids=[str(f) for f in BAD_FILTERS])
def test_bad_filters_are_refused_as_a_server_refuses_them(db, filter):
    for call in (
        lambda: db.query("people", filter),
        lambda: db.count("nothere", filter),  # a collection that does not exist
        lambda: db.aggregate("people", [{"$match": filter}]),
    ):
        with pytest.raises(ConnectorError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_REQUEST
        assert info.value.details["code"] in (2, 14)


@pytest.mark.parametrize("operator", ["$bitsAllSet", "$geoWithin", "$near"])
def test_operators_the_fake_lacks_are_unsupported(db, operator):
    with pytest.raises(ConnectorError) as info:
        db.query("people", {"age": {operator: 1}})
    assert info.value.code is ErrorCode.UNSUPPORTED


def test_every_bson_type_has_its_type_code(db):
    values = [
        1.5, "s", {"a": 1}, [1], b"x", bson.ObjectId(), True,
        datetime.datetime(2020, 1, 1), None, bson.Regex("a"), 1, bson.Timestamp(1, 1),
        bson.Int64(1), bson.Decimal128("1"), bson.MinKey(), bson.MaxKey(),
    ]  # fmt: skip
    db.insert_many("typed", [{"_id": n, "v": v} for n, v in enumerate(values)])
    codes = [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 16, 17, 18, 19, -1, 127]
    got = [ids(db.query("typed", {"v": {"$type": code}})) for code in codes]
    assert got == [[0], [1], [2], [3], [4], [5], [6], [7], [8], [9], [3, 10], [11], [12], [13],
                   [14], [15]]  # fmt: skip
    assert ids(db.query("typed", {"v": {"$type": "number"}})) == [0, 3, 10, 12, 13]


def test_id_lookup_with_a_regex_is_a_match_not_a_key(db):
    db.insert_many("s", [{"_id": "apple"}, {"_id": "banana"}])
    assert ids(db.query("s", {"_id": re.compile("^b")})) == ["banana"]


def test_updates_keep_the_server_types(db):
    db.insert_one("n", {"_id": 1, "l": bson.Int64(5), "i": 2**31 - 1, "d": bson.Decimal128("1.5")})
    db.update_one("n", {"_id": 1}, {"$inc": {"l": 1, "i": 1, "d": 1}, "$mul": {"m": bson.Int64(2)}})
    doc = db.find_one("n", {"_id": 1})
    assert [type(doc[k]) for k in ("l", "i", "d", "m")] == [
        bson.Int64, bson.Int64, bson.Decimal128, bson.Int64
    ]  # fmt: skip
    assert (doc["l"], doc["i"], doc["d"], doc["m"]) == (6, 2**31, bson.Decimal128("2.5"), 0)
    with pytest.raises(ConnectorError) as info:
        db.update_one("n", {"_id": 1}, {"$inc": {"l": bson.Int64(2**63 - 1)}})
    assert info.value.code is ErrorCode.INVALID_REQUEST
    db.update_one("n", {"_id": 1}, {"$currentDate": {"t": {"$type": "timestamp"}, "c": True}})
    doc = db.find_one("n", {"_id": 1})
    assert isinstance(doc["t"], bson.Timestamp) and isinstance(doc["c"], datetime.datetime)
    for bad in ({"$currentDate": {"t": 1}}, {"$set": {"a..b": 1}}):
        with pytest.raises(ConnectorError):
            db.update_one("n", {"_id": 1}, bad)


def test_pull_with_a_regex_or_an_empty_document(db):
    db.insert_one("p", {"_id": 1, "a": ["apple", "banana", {"x": 1}, [1], 3]})
    db.update_one("p", {"_id": 1}, {"$pull": {"a": re.compile("^b")}})
    assert db.find_one("p", {})["a"] == ["apple", {"x": 1}, [1], 3]
    db.update_one("p", {"_id": 1}, {"$pull": {"a": {}}})
    assert db.find_one("p", {})["a"] == ["apple", [1], 3]


def test_an_upsert_does_not_seed_a_regex(db):
    result = db.update_one("u", {"name": re.compile("^Z"), "c": 1}, {"$set": {"x": 1}}, upsert=True)
    assert db.find_one("u", {"_id": result.upserted_id}, projection={"_id": 0}) == {"c": 1, "x": 1}
