"""MongoDBConnector without a server: arguments, state, client options, transaction rules."""

import logging
import types

import bson
import bson.binary
import bson.codec_options
import pymongo
import pymongo.errors
import pytest
from bson.raw_bson import RawBSONDocument

import dictamesh_connectors.mongodb as mongo_package
from dictamesh_connectors import registry
from dictamesh_connectors.base import Connector, State
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from dictamesh_connectors.mongodb import (
    ArgumentTypeError,
    MongoDBConfig,
    MongoDBConnector,
    Transaction,
)
from dictamesh_connectors.mongodb.connector import _Handle
from dictamesh_connectors.mongodb.documents import check_collection, max_time_ms, seconds

PASSWORD = "Sup3r-Secret-Pa55"


def make(**fields):
    return MongoDBConnector(MongoDBConfig(**fields))


def test_package_exports():
    assert mongo_package.__all__ == sorted(mongo_package.__all__)
    for name in mongo_package.__all__:
        assert (getattr(mongo_package, name).__doc__ or "").strip(), name
    assert MongoDBConnector.name == "mongodb" and MongoDBConnector.config_class is MongoDBConfig
    with pytest.raises(AttributeError):
        mongo_package.NoSuchThing  # noqa: B018


def test_both_schemes_are_registered():
    assert registry.connector_class("mongodb") is MongoDBConnector
    assert registry.connector_class("mongodb+srv") is MongoDBConnector
    assert {"mongodb", "mongodb+srv"} <= set(registry.known_schemes())


def test_wrong_config_type_is_rejected():
    with pytest.raises(InvalidConfigError):
        MongoDBConnector(object())


def test_operations_before_connect_raise_not_connected():
    db = make()
    for call in (
        lambda: db.query("c"),
        lambda: db.find_one("c"),
        lambda: db.insert_one("c", {}),
        lambda: db.count("c"),
        lambda: db.execute("ping"),
        lambda: next(iter(db.stream("c"))),
        lambda: db.ping(),
    ):
        with pytest.raises(NotConnectedError):
            call()
    with pytest.raises(NotConnectedError), db.transaction():
        pass


@pytest.fixture
def offline():
    """A connector marked connected, on a client whose server does not exist.

    Any request that reaches pymongo fails with UNAVAILABLE after 50 ms, so
    a test expecting another error proves the check ran before any I/O.
    """
    db = make(hosts=["127.0.0.1:9"], server_selection_timeout=0.05, direct_connection=True)
    client = pymongo.MongoClient(**db._client_kwargs())
    db._handle, db._state = _Handle(client, "test"), State.CONNECTED
    yield db
    client.close()


@pytest.mark.parametrize(
    "call, exc, code",
    [
        (lambda db: db.insert_one("c", ["not", "a", "mapping"]), TypeError, None),
        (lambda db: db.insert_one("c", {"$set": 1}), ConnectorError, ErrorCode.INVALID_REQUEST),
        (lambda db: db.insert_one("c", {1: "x"}), ConnectorError, ErrorCode.INVALID_REQUEST),
        (lambda db: db.insert_many("c", [{}, 5]), TypeError, None),
        (lambda db: db.insert_many("c", {"a": 1}), TypeError, None),
        (lambda db: db.update_one("c", {}, {"a": 1}), ConnectorError, ErrorCode.INVALID_REQUEST),
        (lambda db: db.update_many("c", {}, {}), ConnectorError, ErrorCode.INVALID_REQUEST),
        (lambda db: db.update_one("c", [], {"$set": {}}), TypeError, None),
        (
            lambda db: db.replace_one("c", {}, {"$set": {}}),
            ConnectorError,
            ErrorCode.INVALID_REQUEST,
        ),
        (lambda db: db.delete_many("c", None), TypeError, None),
        (lambda db: db.query("", {}), ConnectorError, ErrorCode.INVALID_REQUEST),
        (lambda db: db.query("a$b"), ConnectorError, ErrorCode.INVALID_REQUEST),
        (lambda db: db.query("a\x00b"), ConnectorError, ErrorCode.INVALID_REQUEST),
        (lambda db: db.query(".c"), ConnectorError, ErrorCode.INVALID_REQUEST),
        (lambda db: db.query("\ud800"), ConnectorError, ErrorCode.INVALID_REQUEST),
        (lambda db: db.query(42), TypeError, None),
        (lambda db: db.query("c", "name"), TypeError, None),
        (lambda db: db.query("c", sort=5), TypeError, None),
        (lambda db: db.query("c", limit=-1), InvalidConfigError, None),
        (lambda db: db.query("c", max_time=0), InvalidConfigError, None),
        (lambda db: db.query("c", timeout=float("nan")), InvalidConfigError, None),
        (lambda db: db.query("c", timeout=0), InvalidConfigError, None),
        (lambda db: db.query("c", timeout=-1), InvalidConfigError, None),
        (lambda db: db.query("c", timeout="1"), TypeError, None),
        (lambda db: db.execute("ping", timeout=-1), InvalidConfigError, None),
        (lambda db: db.stream("c", batch_size=0), InvalidConfigError, None),
        (lambda db: db.aggregate("c", {"$match": {}}), TypeError, None),
        (
            lambda db: db.find_one_and_update("c", {}, {"$set": {}}, return_document="x"),
            InvalidConfigError,
            None,
        ),
        (
            lambda db: db.bulk_write("c", [("upsert", {})]),
            ConnectorError,
            ErrorCode.INVALID_REQUEST,
        ),
        (lambda db: db.bulk_write("c", [("update_one", {})]), TypeError, None),
        (lambda db: db.execute(5), TypeError, None),
        (
            lambda db: db.insert_one("c", {"b": b"x" * (16 << 20)}),
            ConnectorError,
            ErrorCode.PAYLOAD_TOO_LARGE,
        ),
        (
            lambda db: db.replace_one("c", {}, {"b": b"x" * (16 << 20)}),
            ConnectorError,
            ErrorCode.PAYLOAD_TOO_LARGE,
        ),
        (
            lambda db: db.insert_many("c", [{}, {"b": b"x" * (16 << 20)}, {}]),
            ConnectorError,
            ErrorCode.PAYLOAD_TOO_LARGE,
        ),
        (
            lambda db: db.bulk_write("c", [("insert_one", {"b": b"x" * (16 << 20)})]),
            ConnectorError,
            ErrorCode.PAYLOAD_TOO_LARGE,
        ),
        (
            lambda db: db.bulk_write("c", [("replace_one", ({}, {"b": b"x" * (16 << 20)}))]),
            ConnectorError,
            ErrorCode.PAYLOAD_TOO_LARGE,
        ),
        (
            lambda db: db.insert_many("c", [{}, {"o": object()}]),
            ConnectorError,
            ErrorCode.SERIALIZATION_ERROR,
        ),
        (
            lambda db: db.insert_one("c", {"o": object()}),
            ConnectorError,
            ErrorCode.SERIALIZATION_ERROR,
        ),
        (lambda db: db.insert_one("c", {}, session=object()), TypeError, None),
    ],
)
def test_bad_input_fails_before_any_io(offline, call, exc, code):
    with pytest.raises(exc) as info:
        call(offline)
    # Never a bare builtin: a wrong type is an ArgumentTypeError, both a
    # ConnectorError (INVALID_REQUEST) and a TypeError.
    assert isinstance(info.value, ConnectorError), repr(info.value)
    if code is not None:
        assert info.value.code is code
    if isinstance(info.value, TypeError):
        assert isinstance(info.value, ArgumentTypeError)
        assert info.value.code is ErrorCode.INVALID_REQUEST and not info.value.transient
    assert "SECRET" not in str(info.value)


def _tx_execute(db):
    # A finished transaction is enough: the argument checks run first.
    tx = Transaction(db._handle, None, db._target)
    tx._active = False
    return tx.execute(5)


GARBAGE = [
    ("filter a list", lambda db: db.query("c", ["a"])),
    ("filter a str", lambda db: db.find_one("c", "name")),
    ("filter an int", lambda db: db.count("c", 5)),
    ("sort a number", lambda db: db.query("c", sort=5)),
    ("sort bytes", lambda db: db.query("c", sort=b"a")),
    ("sort direction an object", lambda db: db.query("c", sort=[("a", object())])),
    ("sort direction a float", lambda db: db.find_one("c", sort={"a": 1.5})),
    ("sort direction a bool", lambda db: db.query("c", sort=[("a", True)])),
    ("sort direction too big", lambda db: db.query("c", sort=[("a", 10**30)])),
    ("sort field not a str", lambda db: db.query("c", sort={1: 1})),
    ("sort field empty", lambda db: db.query("c", sort="")),
    ("sort triple", lambda db: db.query("c", sort=[("a", 1, 2)])),
    ("hint a number", lambda db: db.query("c", hint=5)),
    ("hint direction a float", lambda db: db.count("c", hint=[("a", 1.5)])),
    ("hint empty", lambda db: db.find_one("c", hint="")),
    ("hint no keys", lambda db: db.query("c", hint=[])),
    ("update hint", lambda db: db.update_one("c", {}, {"$set": {"a": 1}}, hint=5.0)),
    ("delete hint", lambda db: db.delete_many("c", {}, hint=object())),
    ("replace hint", lambda db: db.replace_one("c", {}, {"a": 1}, hint=[("a", None)])),
    ("array_filters an int", lambda db: db.update_many("c", {}, {"$set": {}}, array_filters=5)),
    ("array_filters items", lambda db: db.update_one("c", {}, {"$set": {}}, array_filters=[1])),
    ("upsert a str", lambda db: db.update_one("c", {}, {"$set": {}}, upsert="yes")),
    ("ordered None", lambda db: db.insert_many("c", [{}], ordered=None)),
    ("stream flag", lambda db: db.aggregate("c", [], stream="no")),
    ("allow_disk_use", lambda db: db.aggregate("c", [], allow_disk_use=1)),
    ("batch_size huge", lambda db: db.stream("c", batch_size=10**12)),
    ("batch_size float", lambda db: db.aggregate("c", [], stream=True, batch_size=2.5)),
    ("limit float", lambda db: db.query("c", limit=1.5)),
    ("limit an empty str", lambda db: db.query("c", limit="")),
    ("limit an empty list", lambda db: db.stream("c", limit=[])),
    ("limit 0.0", lambda db: db.count("c", limit=0.0)),
    ("skip None", lambda db: db.find_one("c", skip=None)),
    ("skip False", lambda db: db.query("c", skip=False)),
    ("skip huge", lambda db: db.count("c", skip=10**30)),
    ("max_time a str", lambda db: db.query("c", max_time="1")),
    ("timeout a str", lambda db: db.find_one("c", timeout="1")),
    ("timeout a list", lambda db: db.insert_one("c", {}, timeout=[1])),
    ("return_document unhashable", lambda db: db.find_one_and_update(
        "c", {}, {"$set": {}}, return_document=["after"])),
    ("read_concern unhashable", lambda db: db.transaction(read_concern=["x"]).__enter__()),
    ("read_preference unhashable", lambda db: db.transaction(read_preference={}).__enter__()),
    ("write_concern a list", lambda db: db.transaction(write_concern=["w"]).__enter__()),
    ("write_concern wtimeout", lambda db: db.run_in_transaction(
        lambda tx: None, write_concern={"wtimeout": "x"})),
    ("fn not callable", lambda db: db.run_in_transaction(5)),
    ("deadline a str", lambda db: db.run_in_transaction(lambda tx: None, deadline="1")),
    ("insert a list", lambda db: db.insert_one("c", [])),
    ("insert_many a generator", lambda db: db.insert_many("c", ({} for _ in range(1)))),
    ("bulk_write an int", lambda db: db.bulk_write("c", 5)),
    ("bulk_write a dict", lambda db: db.bulk_write("c", {"insert_one": {}})),
    ("bulk_write options a list", lambda db: db.bulk_write(
        "c", [("update_one", ({}, {"$set": {}}, ["upsert"]))])),
    ("bulk_write option unknown", lambda db: db.bulk_write(
        "c", [("update_one", ({}, {"$set": {}}, {"multi": True}))])),
    ("bulk_write upsert a str", lambda db: db.bulk_write(
        "c", [("update_one", ({}, {"$set": {}}, {"upsert": "y"}))])),
    ("bulk_write hint", lambda db: db.bulk_write(
        "c", [("replace_one", ({}, {}, {"hint": 5}))])),
    ("bulk_write unhashable option", lambda db: db.bulk_write(
        "c", [("update_one", ({}, {"$set": {}}, {("x",): 1}))])),
    ("create_index direction float", lambda db: db.create_index("c", [("a", 1.5)])),
    ("create_index direction object", lambda db: db.create_index("c", {"a": object()})),
    ("create_index no keys", lambda db: db.create_index("c", [])),
    ("create_index name int", lambda db: db.create_index("c", "a", name=5)),
    ("create_index unique a str", lambda db: db.create_index("c", "a", unique="no")),
    ("drop_index int", lambda db: db.drop_index("c", 5)),
    ("distinct key int", lambda db: db.distinct("c", 5)),
    ("distinct key empty", lambda db: db.distinct("c", "")),
    ("execute database int", lambda db: db.execute("ping", database=5)),
    ("execute database bad", lambda db: db.execute("ping", database="a/b")),
    ("execute empty", lambda db: db.execute("")),
    ("execute empty mapping", lambda db: db.execute({})),
    ("execute session", lambda db: db.execute("ping", session="tx")),
    ("tx execute", _tx_execute),
    ("projection items", lambda db: db.query("c", projection=[1])),
    ("projection int", lambda db: db.find_one("c", projection=5)),
    ("pipeline a dict", lambda db: db.aggregate("c", {"$match": {}})),
    ("pipeline stage int", lambda db: db.aggregate("c", [5])),
    ("collection bytes", lambda db: db.insert_one(b"c", {})),
    ("collection a list", lambda db: db.count([], None)),
    ("collection a dict", lambda db: db.query({}, {})),
    ("session an object", lambda db: db.delete_one("c", {}, session=object())),
]  # fmt: skip


@pytest.mark.parametrize("call", [c for _, c in GARBAGE], ids=[name for name, _ in GARBAGE])
def test_garbage_arguments_are_connector_errors_with_a_code_before_any_io(offline, call):
    # Any I/O would fail with UNAVAILABLE (no server): another code proves
    # the check ran first; a bare TypeError/ValueError from pymongo, bson or
    # a builtin fails the test.
    with pytest.raises(ConnectorError) as info:
        call(offline)
    err = info.value
    assert err.code in (ErrorCode.INVALID_CONFIG, ErrorCode.INVALID_REQUEST), repr(err)
    assert not err.transient and err.connector == "mongodb"


def test_an_unreachable_server_is_unavailable_and_transient(offline):
    with pytest.raises(ConnectorError) as info:
        offline.find_one("c")
    assert (info.value.code, info.value.transient) == (ErrorCode.UNAVAILABLE, True)
    assert not info.value.maybe_applied


def test_values_never_appear_in_input_errors(offline):
    with pytest.raises(ConnectorError) as info:
        offline.insert_one("c", {"$SECRET-VALUE": 1})
    assert "SECRET-VALUE" not in str(info.value)


def test_client_options_come_from_the_config():
    db = make(
        hosts=["a:1", "b:2"], replica_set="rs", username="u", password=PASSWORD,
        auth_source="admin", w="majority", journal=True, wtimeout=2.5, read_concern="majority",
        read_preference="nearest", socket_timeout=30, max_idle_time=60, retry_writes=False,
    )  # fmt: skip
    kwargs = db._client_kwargs()
    assert kwargs["host"] == ["a:1", "b:2"] and kwargs["connect"] is False
    assert kwargs["password"] == PASSWORD and kwargs["username"] == "u"
    assert (kwargs["w"], kwargs["journal"], kwargs["wTimeoutMS"]) == ("majority", True, 2500)
    assert (kwargs["socketTimeoutMS"], kwargs["maxIdleTimeMS"]) == (30000, 60000)
    assert kwargs["retryWrites"] is False and kwargs["readPreference"] == "nearest"
    assert kwargs["uuidRepresentation"] == "standard" and kwargs["tz_aware"] is True
    client = pymongo.MongoClient(**kwargs)  # pymongo accepts every one of them
    try:
        assert client.write_concern.document == {"w": "majority", "j": True, "wtimeout": 2500}
    finally:
        client.close()
    srv = make(hosts=["cluster.example.net"], srv=True)._client_kwargs()
    assert srv["host"] == "mongodb+srv://cluster.example.net/"
    assert PASSWORD not in repr(db) and PASSWORD not in repr(db.config)


def test_timeouts_and_names():
    assert seconds(1) == 1.0 and max_time_ms(0.0001) == 1 and max_time_ms(2.5) == 2500
    assert max_time_ms(None) is None
    for bad in (0, -1, float("nan"), float("inf"), True, "1", 10**20):
        with pytest.raises(InvalidConfigError):
            seconds(bad)
    assert check_collection("a.b") == "a.b"
    with pytest.raises(ConnectorError):
        check_collection("x" * 256)


def test_collections_are_cached_per_handle_and_dropped_after_fork():
    client = pymongo.MongoClient("127.0.0.1:9", connect=False)
    try:
        handle = _Handle(client, "test")
        assert handle.collection("c") is handle.collection("c")
        db = make()
        db._discard_after_fork(handle)
        assert handle.collections == {}
    finally:
        client.close()


# ------------------------------------------------------- transaction rules


class FakeSession:
    def __init__(self, log, commit_errors):
        self.log, self.commit_errors, self.in_transaction = log, commit_errors, False

    def start_transaction(self, **options):
        self.log.append(("start", options))
        self.in_transaction = True

    def commit_transaction(self):
        self.log.append("commit")
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.in_transaction = False

    def abort_transaction(self):
        self.log.append("abort")
        self.in_transaction = False

    def end_session(self):
        self.log.append("end")


class FakeCollection:
    codec_options = bson.CodecOptions(uuid_representation=bson.binary.UuidRepresentation.STANDARD)

    def __init__(self, log, write_errors):
        self.log, self.write_errors = log, write_errors

    def insert_one(self, doc, session=None):
        self.log.append(("insert", session is not None))
        if self.write_errors:
            raise self.write_errors.pop(0)
        return types.SimpleNamespace(inserted_id=len(self.log))


def fake_connector(commit_errors=(), write_errors=()):
    db = make()
    log = []
    commit_errors, write_errors = list(commit_errors), list(write_errors)
    handle = types.SimpleNamespace(
        client=types.SimpleNamespace(start_session=lambda: FakeSession(log, commit_errors)),
        collection=lambda name: FakeCollection(log, write_errors),
    )
    db._handle, db._state = handle, State.CONNECTED
    now = [1000.0]
    db._clock = lambda: now[0]
    db._sleep = lambda s: now.__setitem__(0, now[0] + s)
    db._rand = lambda: 0.5
    return db, log, now


def labelled(cls, code, label, message="x"):
    if cls is pymongo.errors.AutoReconnect:
        exc = cls(message)
        exc._add_error_label(label)
        return exc
    return cls(message, code, {"code": code, "errmsg": message, "errorLabels": [label]})


def test_run_in_transaction_reruns_the_function_on_transient_errors(caplog):
    caplog.set_level(logging.WARNING)
    conflict = labelled(pymongo.errors.OperationFailure, 112, "TransientTransactionError")
    db, log, _ = fake_connector(write_errors=[conflict])
    calls = []
    assert db.run_in_transaction(lambda tx: calls.append(tx.insert_one("c", {})) or "ok") == "ok"
    assert len(calls) == 1  # the first run failed inside insert_one
    assert log.count("abort") == 1 and log.count("commit") == 1 and log.count("end") == 2
    # The core retry loop's WARNING (issue #7: one retry loop), no attempt limit shown.
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 1 and "(attempt 1, SERIALIZATION_FAILURE" in retries[0].getMessage()
    assert retries[0].name == "dictamesh_connectors.retry"


def test_a_transient_commit_reruns_the_whole_function():
    failed = labelled(pymongo.errors.OperationFailure, 251, "TransientTransactionError")
    db, log, _ = fake_connector(commit_errors=[failed])
    runs = []
    db.run_in_transaction(lambda tx: runs.append(1))
    assert len(runs) == 2 and log.count("commit") == 2


def test_an_unknown_commit_result_retries_only_the_commit(caplog):
    caplog.set_level(logging.WARNING)
    unknown = labelled(pymongo.errors.AutoReconnect, None, "UnknownTransactionCommitResult")
    db, log, _ = fake_connector(commit_errors=[unknown, unknown])
    runs = []
    db.run_in_transaction(lambda tx: runs.append(1))
    assert len(runs) == 1 and log.count("commit") == 3
    assert len([r for r in caplog.records if "retrying the commit" in r.getMessage()]) == 2


def test_an_unknown_commit_after_max_time_is_not_retried():
    expired = labelled(pymongo.errors.ExecutionTimeout, 50, "UnknownTransactionCommitResult")
    db, log, _ = fake_connector(commit_errors=[expired])
    with pytest.raises(ConnectorError) as info:
        db.run_in_transaction(lambda tx: None)
    assert info.value.maybe_applied and log.count("commit") == 1


def test_run_in_transaction_stops_at_the_deadline():
    transient = labelled(pymongo.errors.OperationFailure, 112, "TransientTransactionError")
    db, log, now = fake_connector(write_errors=[transient] * 1000)
    with pytest.raises(ConnectorError) as info:
        db.run_in_transaction(lambda tx: tx.insert_one("c", {}), deadline=2)
    assert info.value.code is ErrorCode.SERIALIZATION_FAILURE
    assert now[0] - 1000.0 < 2 and log.count("abort") > 3


@pytest.mark.parametrize(
    "error",
    [
        pymongo.errors.DuplicateKeyError("dup", 11000, {"code": 11000, "errmsg": "dup"}),
        pymongo.errors.OperationFailure("conflict", 112, {"code": 112, "errmsg": "x"}),
    ],
)
def test_errors_without_the_label_propagate_at_once(error):
    db, log, _ = fake_connector(write_errors=[error])
    db._sleep = lambda s: pytest.fail("must not wait")
    with pytest.raises(ConnectorError):
        db.run_in_transaction(lambda tx: tx.insert_one("c", {}))
    assert log.count("abort") == 1 and log.count("commit") == 0


def test_a_bug_in_fn_aborts_and_propagates():
    db, log, _ = fake_connector()

    def fn(tx):
        raise ValueError("bug")

    with pytest.raises(ValueError):
        db.run_in_transaction(fn)
    assert log == [("start", {}), "abort", "end"]


def test_transaction_block_commits_or_aborts_and_is_closed_after():
    db, log, _ = fake_connector()
    with db.transaction(read_concern="snapshot", max_commit_time=2) as tx:
        tx.insert_one("c", {})
    assert log[0][0] == "start" and set(log[0][1]) == {"read_concern", "max_commit_time_ms"}
    assert log[1:] == [("insert", True), "commit", "end"]
    with pytest.raises(ConnectorError) as info:
        tx.insert_one("c", {})
    assert info.value.code is ErrorCode.TRANSACTION_FAILED
    log.clear()
    with pytest.raises(RuntimeError), db.transaction():
        raise RuntimeError
    assert log == [("start", {}), "abort", "end"]


@pytest.mark.parametrize(
    "options",
    [
        {"read_concern": "eventual"},
        {"write_concern": {"w": 1, "x": 2}},
        {"write_concern": 5},
        {"read_preference": "any"},
        {"max_commit_time": -1},
    ],
)
def test_transaction_options_are_checked_before_any_io(options):
    db, log, _ = fake_connector()
    with pytest.raises(InvalidConfigError), db.transaction(**options):
        pass
    assert log == []


def test_a_transaction_has_every_verb_of_the_connector():
    from tests.fuzzing import public_methods

    lifecycle = public_methods(Connector) | {"transaction", "run_in_transaction"}
    verbs = public_methods(MongoDBConnector) - lifecycle
    assert {"execute", "query", "insert_one", "create_index"} <= verbs
    assert not verbs - public_methods(Transaction)


def test_the_chunked_size_check_finds_the_one_large_document_anywhere():
    from dictamesh_connectors.mongodb.verbs import _check_sizes

    coll = types.SimpleNamespace(codec_options=bson.codec_options.DEFAULT_CODEC_OPTIONS)
    small = [{"n": i} for i in range(3000)]
    _check_sizes(small, coll)  # nothing over the limit: no error
    # Many documents that together pass 16 MiB but none alone: no error.
    _check_sizes([{"b": b"x" * (1 << 20)} for _ in range(40)], coll)
    for position in (0, 15, 16, 1500, 2999):
        docs = list(small)
        docs[position] = {"b": b"x" * (16 << 20)}
        with pytest.raises(ConnectorError) as info:
            _check_sizes(docs, coll)
        assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE, position


def test_the_size_check_counts_the_id_a_document_will_get(recorded):
    """Just under 16 MiB without ``_id``, over it with the ObjectId pymongo adds: refused."""
    db, coll = recorded
    limit = 16 << 20
    at_limit = {"b": b"x" * (limit - 13 - 17)}  # 13 bytes of BSON around b; 17 for the _id
    over = {"b": b"x" * (limit - 13 - 5)}
    assert len(bson.encode(at_limit)) + 17 == limit and len(bson.encode(over)) < limit
    for call in (
        lambda doc: db.insert_one("c", doc),
        lambda doc: db.insert_many("c", [doc]),
        lambda doc: db.insert_many("c", [{"n": 1}, doc, {"n": 2}]),
        lambda doc: db.bulk_write("c", [("insert_one", doc)]),
    ):
        with pytest.raises(ConnectorError) as info:
            call(dict(over))
        assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
        assert coll.sent == []
    db.insert_many("c", [dict(at_limit)])
    db.insert_one("c", dict(at_limit))
    sizes = [
        len(d.raw) if isinstance(d, RawBSONDocument) else len(bson.encode(d)) for d in coll.sent
    ]
    assert sizes == [limit, limit]
    # A replacement keeps (or, upserted, gets) an _id too; one of its own counts as it is.
    with pytest.raises(ConnectorError) as info:
        db.replace_one("c", {}, dict(over), upsert=True)
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    from dictamesh_connectors.mongodb.verbs import _check_size

    # An int _id (14 bytes) of its own: at the limit, and nothing added to it.
    _check_size({"_id": 1, "b": b"x" * (limit - 13 - 14)}, coll)


class RecordingCollection:
    """Records what the connector hands pymongo's insert_one/insert_many."""

    codec_options = bson.codec_options.CodecOptions(
        tz_aware=True, uuid_representation=bson.binary.UuidRepresentation.STANDARD
    )

    def __init__(self):
        self.sent = []

    def insert_one(self, document, session=None):
        self.sent.append(document)
        return types.SimpleNamespace(inserted_id=None)  # pymongo's, for a RawBSONDocument

    def insert_many(self, documents, ordered=True, session=None):
        self.sent.extend(documents)
        ids = []
        for document in documents:  # as pymongo: no _id listed for a RawBSONDocument
            if not isinstance(document, RawBSONDocument):
                document.setdefault("_id", bson.ObjectId())
                ids.append(document["_id"])
        return types.SimpleNamespace(inserted_ids=ids)


@pytest.fixture
def recorded(offline):
    coll = RecordingCollection()
    offline._handle.collections["c"] = coll
    return offline, coll


def test_insert_one_encodes_once_and_sets_the_id_as_pymongo_does(recorded):
    import collections
    import uuid

    db, coll = recorded
    given = {"n": 1, "id": uuid.UUID(int=5)}
    inserted = db.insert_one("c", given)
    assert isinstance(inserted, bson.ObjectId) and given["_id"] == inserted  # the caller's dict
    sent = coll.sent[-1]
    assert isinstance(sent, RawBSONDocument)  # bytes pymongo copies, not a second encode
    assert sent.raw == bson.encode(given, codec_options=coll.codec_options)
    assert list(bson.decode(sent.raw)) == ["_id", "n", "id"]  # _id first, as pymongo sends it
    own = {"_id": "mine", "n": 2}
    assert db.insert_one("c", own) == "mine" and own == {"_id": "mine", "n": 2}
    assert bson.decode(coll.sent[-1].raw) == own
    # A mutable mapping other than a dict gets its _id too; an immutable one is copied.
    user = collections.UserDict({"n": 3})
    assert db.insert_one("c", user) == user["_id"]
    frozen = types.MappingProxyType({"n": 4})
    frozen_id = db.insert_one("c", frozen)
    assert "_id" not in frozen and bson.decode(coll.sent[-1].raw) == {"_id": frozen_id, "n": 4}


def test_a_raw_bson_document_with_an_id_passes_through_unchanged(recorded):
    db, coll = recorded
    raw = RawBSONDocument(bson.encode({"_id": 7, "big": bson.Int64(1)}))
    assert db.insert_one("c", raw) == 7 and coll.sent[-1] is raw  # not decoded, not re-encoded
    no_id = RawBSONDocument(bson.encode({"n": 1}))
    new_id = db.insert_one("c", no_id)  # copied (as before) so that its new _id is returned
    assert isinstance(new_id, bson.ObjectId)
    assert bson.decode(coll.sent[-1].raw) == {"_id": new_id, "n": 1}
    ids = db.insert_many("c", [{"n": 1}, raw, no_id])
    assert ids[1] == 7 and all(isinstance(i, bson.ObjectId) for i in (ids[0], ids[2]))
    assert coll.sent[-2] is raw and coll.sent[-1] is not no_id


def test_a_refused_insert_leaves_the_document_as_given(recorded):
    db, coll = recorded
    for document, code in (
        ({"s": {1, 2}}, ErrorCode.SERIALIZATION_ERROR),  # bson cannot encode a set
        ({"o": object()}, ErrorCode.SERIALIZATION_ERROR),
        ({"b": b"x" * (16 << 20)}, ErrorCode.PAYLOAD_TOO_LARGE),
    ):
        before = dict(document)
        with pytest.raises(ConnectorError) as info:
            db.insert_one("c", document)
        assert info.value.code is code and not info.value.maybe_applied
        assert document == before  # no _id added: nothing was sent
        assert "InvalidDocument" not in type(info.value).__name__
    assert coll.sent == []
    raw = RawBSONDocument(bson.encode({"_id": 1, "b": b"x" * (16 << 20)}))
    with pytest.raises(ConnectorError) as info:
        db.insert_one("c", raw)
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE and coll.sent == []


@pytest.mark.parametrize(
    "document, code",
    [
        ({"a$b": 1, "c": {"$d": 1}}, None),  # '$' inside a key, or nested: allowed
        ({"a": 1, "$b": 1}, ErrorCode.INVALID_REQUEST),
        ({"a": 1, 2: "x"}, ErrorCode.INVALID_REQUEST),
        ({"a": 1, b"k": "x"}, ErrorCode.INVALID_REQUEST),
    ],
)
def test_the_key_checks_of_an_insert(document, code):
    from dictamesh_connectors.mongodb.documents import check_insert
    from dictamesh_connectors.mongodb.verbs import _insertables

    class Key(str):
        pass

    for docs in ([document], [types.MappingProxyType(document)]):
        if code is None:
            assert check_insert(docs[0]) is docs[0]
            assert _insertables(docs)[0] == document
            continue
        for call, arg in ((check_insert, docs[0]), (_insertables, docs)):
            with pytest.raises(ConnectorError) as info:
                call(arg)
            assert info.value.code is code
    subclassed = {Key("a"): 1}
    assert _insertables([subclassed])[0] is subclassed


@pytest.mark.parametrize("where", [0, 1, 25, 49])
@pytest.mark.parametrize(
    "bad, code",
    [
        ({"$b": 1}, ErrorCode.INVALID_REQUEST),  # a document's first key
        ({"a": 1, "$b": 1}, ErrorCode.INVALID_REQUEST),  # a later one
        ({"a": 1, 2: "x"}, ErrorCode.INVALID_REQUEST),  # not a str: the join refuses it
        ({"a\0$": 1}, None),  # a NUL before the '$' is looked at key by key
        ({"a$": 1, "b$": 2}, None),  # a '$' ending a key, before the next one
    ],
)
def test_the_batch_key_check_of_insert_many_finds_the_one_bad_document(bad, code, where):
    """_insertables settles a batch of plain dicts in C calls: a bad document
    anywhere among good ones (and a key that only looks bad there) still gets
    the document-by-document verdict."""
    from dictamesh_connectors.mongodb.verbs import _insertables

    docs = [{"n": i, "name": "x"} for i in range(49)] + [{}]
    docs.insert(where, bad)
    # The same documents among mappings that are not dicts: the slow way agrees.
    mixed = [types.MappingProxyType(d) for d in docs[:3]] + docs[3:]
    for batch in (docs, mixed):
        if code is None:
            assert _insertables(batch) == docs
            continue
        with pytest.raises(ConnectorError) as info:
            _insertables(batch)
        assert info.value.code is code


def test_call_translates_what_the_body_raises_and_passes_the_rest(offline):
    raising = types.SimpleNamespace(codec_options=RecordingCollection.codec_options)
    offline._handle.collections["c"] = raising
    duplicate = pymongo.errors.DuplicateKeyError("E11000 dup", 11000, {"code": 11000})
    own = ConnectorError("mine", connector="mongodb")
    for raised in (duplicate, own, RuntimeError("a bug"), KeyboardInterrupt()):

        def insert_one(document, session=None, raised=raised):
            raise raised

        raising.insert_one = insert_one
        with pytest.raises(BaseException) as info:
            offline.insert_one("c", {"n": 1})
        if raised is duplicate:
            assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
            assert info.value.__cause__ is duplicate
        else:
            assert info.value is raised  # not a driver error: unchanged
    errors = offline.stats().errors  # the translated error reaches the in-flight exit
    assert errors[ErrorCode.CONSTRAINT_VIOLATION.value] == 1, errors


def test_documents_are_encoded_to_the_same_bytes_with_the_cheaper_codec_options():
    import datetime
    import decimal
    import uuid

    from bson.codec_options import TypeCodec, TypeRegistry

    from dictamesh_connectors.mongodb import verbs

    class Money:
        def __init__(self, cents: int) -> None:
            self.cents = cents

    class MoneyCodec(TypeCodec):
        python_type = Money
        bson_type = int

        def transform_python(self, value):
            return value.cents

        def transform_bson(self, value):
            return Money(value)

    options = bson.codec_options.CodecOptions(
        tz_aware=True,
        uuid_representation=bson.binary.UuidRepresentation.STANDARD,
        type_registry=TypeRegistry([MoneyCodec()]),
    )
    coll = types.SimpleNamespace(codec_options=options)
    document = {
        "_id": bson.ObjectId(),
        "u": uuid.uuid4(),
        "at": datetime.datetime(2026, 12, 3, 18, 0, tzinfo=datetime.timezone.utc),
        "price": Money(1999),
        "d": bson.Decimal128(decimal.Decimal("1.10")),
        "nested": [{"a": [1, 2.5, None, True]}, RawBSONDocument(bson.encode({"r": 1}))],
    }
    encoding = verbs._encoding(coll)  # type: ignore[arg-type]
    assert encoding.document_class is RawBSONDocument
    assert bson.encode(document, codec_options=encoding) == bson.encode(
        document, codec_options=options
    )
    assert verbs._encoding(coll) is encoding  # made once per codec options
    other = types.SimpleNamespace(codec_options=options.with_options(tz_aware=False))
    assert verbs._encoding(other) is not encoding  # type: ignore[arg-type]
    assert verbs._encoding(other).tz_aware is False  # type: ignore[arg-type]
