"""Hostile arguments to every public method of MongoDBConnector (real SecantusDB).

The property (tests/fuzzing.py): a result or a ConnectorError, never another
exception type (TypeError for a wrong argument type excepted).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import strategies as st

from dictamesh_connectors.mongodb import MongoDBConnector
from tests.fuzzing import BASE_CALLS, Call, check_call, check_covers, hostile_text, nested, numbers

from .conftest import Server, unique

pytestmark = pytest.mark.integration

name = st.one_of(hostile_text(12), st.just("fuzz"))
document = st.one_of(st.dictionaries(hostile_text(8), nested(), max_size=3), nested())
filters = st.one_of(st.none(), document, st.just({"a": 1}))
update = st.one_of(document, st.just({"$set": {"a": 1}}), st.lists(document, max_size=2))
timeouts = st.fixed_dictionaries({}, optional={"timeout": numbers()})
read_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "timeout": numbers(),
        "max_time": numbers(),
        "limit": numbers(),
        "skip": numbers(),
        "sort": st.one_of(hostile_text(8), nested()),
        "projection": st.one_of(document, st.lists(hostile_text(8), max_size=2)),
        "hint": st.one_of(hostile_text(8), nested()),
    },
)
stream_kwargs = st.fixed_dictionaries(
    {}, optional={"batch_size": numbers(), "timeout": numbers(), "max_time": numbers()}
)
tx_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "read_concern": st.one_of(hostile_text(8), st.just("snapshot")),
        "write_concern": st.one_of(document, st.just({"w": 1})),
        "max_commit_time": numbers(),
    },
)


def _transaction(db: MongoDBConnector, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    with db.transaction(**kwargs) as tx:
        return tx.insert_one(*args)


def _run_in_transaction(
    db: MongoDBConnector, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> object:
    return db.run_in_transaction(lambda tx: tx.find_one(*args), **kwargs)


def _reconnect(connector: Any) -> None:
    connector.connect()


CALLS = [
    *BASE_CALLS,
    Call("query", st.tuples(name, filters), read_kwargs),
    Call("stream", st.tuples(name, filters), stream_kwargs),
    Call("find_one", st.tuples(name, filters), timeouts),
    Call("count", st.tuples(name, filters),
         st.fixed_dictionaries({}, optional={"limit": numbers(), "skip": numbers()})),
    Call("distinct", st.tuples(name, hostile_text(8), filters), timeouts),
    Call("aggregate", st.tuples(name, st.lists(document, max_size=2)),
         st.fixed_dictionaries({}, optional={"stream": st.booleans(), "batch_size": numbers(),
                                             "max_time": numbers()})),
    Call("insert_one", st.tuples(name, document), timeouts),
    Call("insert_many", st.tuples(name, st.lists(document, max_size=3)),
         st.fixed_dictionaries({}, optional={"ordered": st.booleans()})),
    Call("update_one", st.tuples(name, filters, update), timeouts),
    Call("update_many", st.tuples(name, filters, update), timeouts),
    Call("replace_one", st.tuples(name, filters, document),
         st.fixed_dictionaries({}, optional={"upsert": st.booleans()})),
    Call("delete_one", st.tuples(name, filters), timeouts),
    Call("delete_many", st.tuples(name, filters), timeouts),
    Call("bulk_write", st.tuples(name, st.lists(st.tuples(
        st.sampled_from(["insert_one", "update_one", "delete_many", "replace_one", "bogus"]),
        st.one_of(document, st.tuples(document, document))), max_size=3))),
    Call("find_one_and_update", st.tuples(name, filters, update),
         st.fixed_dictionaries({}, optional={"return_document": hostile_text(8),
                                             "sort": nested(), "projection": document})),
    Call("create_index", st.tuples(name, st.one_of(hostile_text(8), nested())),
         st.fixed_dictionaries({}, optional={"name": hostile_text(8), "expire_after": numbers(),
                                             "partial_filter": document})),
    Call("drop_index", st.tuples(name, hostile_text(8))),
    Call("list_indexes", st.tuples(name)),
    Call("drop_collection", st.tuples(name)),
    Call("execute", st.tuples(st.one_of(hostile_text(12), document)),
         st.fixed_dictionaries({}, optional={"database": hostile_text(8), "timeout": numbers()})),
    Call("transaction", st.tuples(name, document), tx_kwargs, invoke=_transaction),
    Call("run_in_transaction", st.tuples(name, filters),
         st.fixed_dictionaries({}, optional={"deadline": numbers(),
                                             "read_concern": hostile_text(8)}),
         invoke=_run_in_transaction),
    Call("ping", kwargs=st.fixed_dictionaries({"timeout": numbers()})),
    Call("disconnect", kwargs=st.fixed_dictionaries({"timeout": numbers()}), setup=_reconnect),
    Call("connect", setup=lambda c: c.disconnect()),
]  # fmt: skip


def test_every_public_method_has_a_call() -> None:
    check_covers(MongoDBConnector, CALLS)


@pytest.fixture(scope="module")
def fuzz_db(mongodb_uri: str) -> Iterator[MongoDBConnector]:
    server = Server("secantusdb", mongodb_uri, True)
    connector = MongoDBConnector(server.config(database=unique("fuzz"), server_selection_timeout=5))
    connector.connect()
    yield connector
    connector.connect()
    connector.execute({"dropDatabase": 1})
    connector.disconnect(timeout=10)


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_hostile_arguments(call: Call, fuzz_db: MongoDBConnector) -> None:
    fuzz_db.connect()
    check_call(fuzz_db, call)
