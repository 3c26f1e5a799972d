"""Every verb against both real servers, over real sockets: plain values back, errors classified."""

import datetime
import uuid

import bson
import pytest
from bson import Binary, Decimal128, ObjectId

import dictamesh_connectors
from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.mongodb import BulkResult, UpdateResult

from .conftest import connected

pytestmark = pytest.mark.integration


def test_connect_from_a_url_through_the_registry(server):
    db = dictamesh_connectors.connect(server.uri)
    try:
        assert type(db).__name__ == "MongoDBConnector" and db.is_connected
        db.ping()
        db.ping(timeout=5)
    finally:
        db.disconnect()


def test_crud_verbs_return_plain_values(db):
    first = db.insert_one("users", {"name": "Ada", "age": 36})
    assert isinstance(first, ObjectId)
    ids = db.insert_many("users", [{"name": n, "age": a} for n, a in [("Bob", 20), ("Cy", 30)]])
    assert len(ids) == 2 and all(isinstance(i, ObjectId) for i in ids)
    assert db.count("users") == 3 and db.count("users", {"age": {"$gte": 30}}) == 2
    assert db.find_one("users", {"_id": first})["name"] == "Ada"
    assert db.find_one("users", {"name": "nobody"}) is None
    names = [d["name"] for d in db.query("users", {}, sort=[("age", -1)], projection=["name"])]
    assert names == ["Ada", "Cy", "Bob"]
    assert [d["name"] for d in db.query("users", sort="age", skip=1, limit=1)] == ["Cy"]
    assert sorted(db.distinct("users", "age")) == [20, 30, 36]
    assert db.update_one("users", {"name": "Bob"}, {"$inc": {"age": 1}}) == UpdateResult(1, 1, None)
    assert db.update_many("users", {"age": {"$lt": 35}}, {"$set": {"young": True}}) == (2, 2, None)
    up = db.update_one("users", {"name": "Dee"}, {"$set": {"age": 5}}, upsert=True)
    assert up.matched == 0 and isinstance(up.upserted_id, ObjectId)
    assert db.replace_one("users", {"name": "Dee"}, {"name": "Dee", "age": 6}).modified == 1
    rep = db.replace_one("users", {"name": "Eve"}, {"name": "Eve"}, upsert=True)
    assert rep.upserted_id is not None
    after = db.find_one_and_update(
        "users", {"name": "Ada"}, {"$set": {"age": 37}}, return_document="after"
    )
    assert after["age"] == 37
    before = db.find_one_and_update("users", {"name": "Ada"}, {"$set": {"age": 38}})
    assert before["age"] == 37
    assert db.delete_one("users", {"name": "Eve"}) == 1
    assert db.delete_many("users", {"young": True}) == 2
    assert db.delete_many("users", {"name": "nobody"}) == 0
    assert db.count("users") == 2


def test_aggregate_bulk_write_indexes_and_commands(db):
    db.insert_many("events", [{"kind": k, "n": i} for i, k in enumerate("aabbbc")])
    groups = db.aggregate(
        "events", [{"$group": {"_id": "$kind", "total": {"$sum": 1}}}, {"$sort": {"_id": 1}}]
    )
    assert groups == [{"_id": "a", "total": 2}, {"_id": "b", "total": 3}, {"_id": "c", "total": 1}]
    with db.aggregate("events", [{"$match": {"kind": "b"}}], stream=True, batch_size=1) as docs:
        assert sorted(d["n"] for d in docs) == [2, 3, 4]
    result = db.bulk_write(
        "events",
        [
            ("insert_one", {"kind": "d", "n": 9}),
            ("update_one", ({"kind": "a"}, {"$set": {"seen": True}})),
            ("update_many", ({"kind": "b"}, {"$set": {"seen": True}})),
            ("replace_one", ({"kind": "zz"}, {"kind": "zz", "n": 0}, {"upsert": True})),
            ("delete_many", {"kind": "c"}),
        ],
    )
    assert result[:5] == (1, 4, 4, 1, 1) and isinstance(result, BulkResult)
    assert list(result.upserted_ids.values()) == [db.find_one("events", {"kind": "zz"})["_id"]]
    assert db.create_index("events", [("kind", 1), ("n", -1)], name="kind_n") == "kind_n"
    assert "kind_n" in [ix["name"] for ix in db.list_indexes("events")]
    db.drop_index("events", "kind_n")
    assert "kind_n" not in [ix["name"] for ix in db.list_indexes("events")]
    assert db.execute({"ping": 1})["ok"] == 1.0
    assert db.execute("ping", database="admin")["ok"] == 1.0
    db.drop_collection("events")
    assert db.count("events") == 0


def test_a_real_duplicate_key_is_a_constraint_violation_with_its_key_pattern(server, db):
    db.create_index("users", "email", unique=True)
    db.insert_one("users", {"email": "ada@example.org"})
    with pytest.raises(ConnectorError) as info:
        db.insert_one("users", {"email": "ada@example.org"})
    err = info.value
    assert (err.code, err.transient, err.maybe_applied) == (
        ErrorCode.CONSTRAINT_VIOLATION, False, False,
    )  # fmt: skip
    assert err.details["code"] == 11000 and "ada@example.org" not in str(err)
    if server.name == "secantusdb":  # like mongod; FerretDB sends neither
        assert err.details["key_pattern"] == {"email": 1}
        assert err.details["index"] == "email_1"
    with pytest.raises(ConnectorError) as info:
        db.insert_many("users", [{"email": "b@x"}, {"email": "ada@example.org"}, {"email": "c@x"}],
                       ordered=False)  # fmt: skip
    err = info.value
    assert err.code is ErrorCode.CONSTRAINT_VIOLATION
    assert [(e["index"], e["code"]) for e in err.details["write_errors"]] == [(1, 11000)]
    assert err.details["inserted"] == 2 and db.count("users") == 3


def test_a_document_over_16_mib_is_refused_and_nothing_is_written(db):
    big = {"blob": b"x" * (16 * 1024 * 1024 + 1)}
    calls = [
        lambda: db.insert_one("big", big),
        # The large one second: the first is not sent either (pymongo alone
        # sends both in one batch and leaves the large one to the server:
        # SecantusDB writes the first, FerretDB stores both).
        lambda: db.insert_many("big", [{"n": 1}, big, {"n": 3}]),
        lambda: db.insert_many("big", [{"n": 1}, big], ordered=False),
        lambda: db.bulk_write("big", [("insert_one", {"n": 1}), ("insert_one", big)]),
        lambda: db.bulk_write("big", [("insert_one", {"n": 1}), ("replace_one", ({}, big))]),
        lambda: db.replace_one("big", {}, big, upsert=True),
    ]
    for call in calls:
        with pytest.raises(ConnectorError) as info:
            call()
        assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE and not info.value.maybe_applied
        assert db.count("big") == 0


def test_inserts_return_ids_and_store_what_pymongo_would(server, db):
    import types

    frozen = types.MappingProxyType({"kind": "frozen"})
    frozen_id = db.insert_one("c", frozen)  # pymongo itself refuses an immutable mapping
    assert isinstance(frozen_id, ObjectId) and "_id" not in frozen
    given = {"kind": "plain"}
    plain_id = db.insert_one("c", given)
    assert given["_id"] == plain_id  # as pymongo does: the caller's dict gets its _id
    many = [{"kind": "m", "n": 1}, {"_id": "own", "kind": "m", "n": 2}, frozen]
    ids = db.insert_many("c", many)
    assert ids[1] == "own" and ids[0] == many[0]["_id"] and isinstance(ids[2], ObjectId)
    result = db.bulk_write("c", [("insert_one", {"kind": "b"}), ("insert_one", frozen)])
    assert result.inserted == 2
    raw = server.raw()
    try:
        stored = list(raw[db.config.database]["c"].find({}, sort=[("_id", 1)]))
    finally:
        raw.close()
    assert len(stored) == 7 and all(next(iter(d)) == "_id" for d in stored)
    by_id = {d["_id"]: d for d in stored}
    assert by_id[frozen_id] == {"_id": frozen_id, "kind": "frozen"}
    assert by_id["own"] == {"_id": "own", "kind": "m", "n": 2}
    assert by_id[ids[0]] == {"_id": ids[0], "kind": "m", "n": 1}


def test_a_server_side_error_is_classified_and_masks_values(db):
    db.insert_one("c", {"a": "SECRET-VALUE"})
    with pytest.raises(ConnectorError) as info:
        db.update_one("c", {}, {"$inc": {"a": 1}})
    assert info.value.code in (ErrorCode.EXEC_FAILED, ErrorCode.INVALID_REQUEST)
    assert "SECRET-VALUE" not in str(info.value) and info.value.details["code"]


def test_every_claimed_bson_type_round_trips_and_pymongo_reads_it(server, db):
    when = datetime.datetime(2024, 2, 29, 23, 59, 58, 123000, tzinfo=datetime.timezone.utc)
    doc = {
        "when": when,
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "oid": ObjectId(),
        "blob": Binary(b"\x00\xff", 5),
        "raw": b"\x00\x01",
        "big": bson.Int64(2**40),
        "f": 1.25,
        "text": "zażółć",
        "nested": {"list": [1, "two", {"three": [None, True]}]},
    }
    if server.name == "secantusdb":
        doc["money"] = Decimal128("12.10")  # FerretDB 1.x has no Decimal128
        doc["matrix"] = [[1, [2, 3]], [4]]  # ... nor nested arrays
    inserted = db.insert_one("types", dict(doc))
    back = db.find_one("types", {"_id": inserted})
    back.pop("_id")
    assert back == doc and back["when"].tzinfo is not None
    # The control: a plain pymongo client reads what the connector wrote.
    raw = server.raw()
    try:
        control = raw[db.config.database]["types"].find_one({"_id": inserted})
        control.pop("_id")
        assert control == doc
        assert raw[db.config.database]["types"].find_one({"id": doc["id"]}) is not None
    finally:
        raw.close()


def test_operation_timeouts_are_enforced_by_the_server_or_the_client(db):
    db.insert_many("c", [{"i": i} for i in range(10)])
    assert len(db.query("c", timeout=5, max_time=5)) == 10
    assert db.count("c", timeout=5) == 10


def test_unreachable_server_is_unavailable_and_never_shows_the_password(server):
    config = server.config(hosts=["127.0.0.1:9"], server_selection_timeout=0.3, username="u",
                           password="Unreachable-Secret-Pw")  # fmt: skip
    from dictamesh_connectors.mongodb import MongoDBConnector

    db = MongoDBConnector(config)
    with pytest.raises(ConnectorError) as info:
        db.connect()
    assert (info.value.code, info.value.transient) == (ErrorCode.UNAVAILABLE, True)
    assert "Unreachable-Secret-Pw" not in str(info.value) and not db.is_connected


def test_reconnects_after_disconnect(server):
    with connected(server) as db:
        db.insert_one("c", {})
        db.disconnect()
        db.connect()
        assert db.count("c") == 1


@pytest.mark.parametrize("representation", ["pythonLegacy", "javaLegacy", "csharpLegacy"])
def test_uuids_are_stored_with_the_configured_representation(server, representation):
    from bson.binary import UuidRepresentation

    value = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
    with connected(server, uuid_representation=representation) as db:
        inserted = db.insert_one("u", {"id": value})
        assert db.find_one("u", {"id": value})["_id"] == inserted  # queries encode it alike
        raw = server.raw()
        try:
            stored = (
                raw[db.config.database]
                .get_collection(
                    "u",
                    codec_options=raw.codec_options.with_options(
                        uuid_representation=UuidRepresentation.UNSPECIFIED
                    ),
                )
                .find_one({"_id": inserted})["id"]
            )
        finally:
            raw.close()
    # The legacy representations are binary subtype 3, each with its byte order.
    assert isinstance(stored, Binary) and stored.subtype == 3
    expected = Binary.from_uuid(
        value,
        getattr(
            UuidRepresentation,
            {
                "pythonLegacy": "PYTHON_LEGACY",
                "javaLegacy": "JAVA_LEGACY",
                "csharpLegacy": "CSHARP_LEGACY",
            }[representation],
        ),
    )
    assert bytes(stored) == bytes(expected)
