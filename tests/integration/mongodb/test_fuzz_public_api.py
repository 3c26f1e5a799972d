"""Hostile arguments to every public method of MongoDBConnector (real SecantusDB).

The property (tests/fuzzing.py): a result or a ConnectorError, never another
exception type. Stricter here than the shared harness, which lets a
TypeError for a wrong argument type through: every MongoDB call runs
through ``_strict``, where a TypeError must also be a ConnectorError (the
connector's ``ArgumentTypeError``), so a bare TypeError from pymongo, bson
or a builtin fails the test. ``garbage()`` adds wrong-typed values to the
arguments that take a spec or a flag (sort, hint, projection, upsert, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st

from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.mongodb import MongoDBConnector
from dictamesh_connectors.testing.conformance.fuzzing import garbage
from tests.fuzzing import (
    BASE_CALLS,
    Call,
    check_call,
    check_covers,
    consume,
    hostile_text,
    nested,
    numbers,
)

from .conftest import Server, unique

pytestmark = pytest.mark.integration

name = st.one_of(hostile_text(12), st.just("fuzz"), garbage())
document = st.one_of(st.dictionaries(hostile_text(8), nested(), max_size=3), nested(), garbage())
filters = st.one_of(st.none(), document, st.just({"a": 1}))
update = st.one_of(document, st.just({"$set": {"a": 1}}), st.lists(document, max_size=2))
spec = st.one_of(
    hostile_text(8),
    nested(),
    garbage(),
    st.lists(st.tuples(hostile_text(4), st.one_of(numbers(), garbage())), max_size=2),
)
timeouts = st.fixed_dictionaries({}, optional={"timeout": st.one_of(numbers(), garbage())})
read_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "timeout": st.one_of(numbers(), garbage()),
        "max_time": st.one_of(numbers(), garbage()),
        "limit": st.one_of(numbers(), garbage()),
        "skip": numbers(),
        "sort": spec,
        "projection": st.one_of(document, st.lists(hostile_text(8), max_size=2)),
        "hint": spec,
    },
)
write_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "timeout": numbers(),
        "upsert": st.one_of(st.booleans(), garbage()),
        "hint": spec,
        "array_filters": st.one_of(st.lists(document, max_size=2), garbage()),
    },
)
stream_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "batch_size": st.one_of(numbers(), garbage()),
        "timeout": numbers(),
        "max_time": numbers(),
        "sort": spec,
        "hint": spec,
    },
)
tx_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "read_concern": st.one_of(hostile_text(8), st.just("snapshot"), garbage()),
        "read_preference": st.one_of(hostile_text(8), st.just("primary"), garbage()),
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


def _transaction_execute(
    db: MongoDBConnector, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> object:
    with db.transaction() as tx:
        return tx.execute(*args, **kwargs)


def _strict(call: Call) -> Call:
    """``call`` where a TypeError that is not a ConnectorError fails the test."""
    inner: Callable[[Any, tuple[Any, ...], dict[str, Any]], object] = call.invoke or (
        lambda connector, args, kwargs: getattr(connector, call.method)(*args, **kwargs)
    )

    def invoke(connector: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        try:
            result = inner(connector, args, kwargs)
            (call.use or consume)(result)
        except TypeError as exc:
            if not isinstance(exc, ConnectorError):
                raise AssertionError(f"{call.method}: a bare {exc!r}") from exc
            raise
        return None

    return attrs.evolve(call, invoke=invoke)


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
    Call("update_one", st.tuples(name, filters, update), write_kwargs),
    Call("update_many", st.tuples(name, filters, update), write_kwargs),
    Call("replace_one", st.tuples(name, filters, document),
         st.fixed_dictionaries({}, optional={"upsert": st.one_of(st.booleans(), garbage()),
                                             "hint": spec})),
    Call("delete_one", st.tuples(name, filters), timeouts),
    Call("delete_many", st.tuples(name, filters),
         st.fixed_dictionaries({}, optional={"hint": spec})),
    Call("bulk_write", st.tuples(name, st.one_of(garbage(), st.lists(st.one_of(garbage(), st.tuples(
        st.sampled_from(["insert_one", "update_one", "delete_many", "replace_one", "bogus"]),
        st.one_of(document, st.tuples(document, document),
                  st.tuples(document, document, st.one_of(garbage(), st.fixed_dictionaries(
                      {}, optional={"upsert": garbage(), "hint": spec})))))), max_size=3)))),
    Call("find_one_and_update", st.tuples(name, filters, update),
         st.fixed_dictionaries({}, optional={"return_document": st.one_of(hostile_text(8),
                                                                          garbage()),
                                             "sort": spec, "projection": document,
                                             "upsert": garbage()})),
    Call("create_index", st.tuples(name, spec),
         st.fixed_dictionaries({}, optional={"name": st.one_of(hostile_text(8), garbage()),
                                             "expire_after": numbers(),
                                             "unique": garbage(), "sparse": garbage(),
                                             "partial_filter": document})),
    Call("drop_index", st.tuples(name, st.one_of(hostile_text(8), garbage()))),
    Call("list_indexes", st.tuples(name)),
    Call("drop_collection", st.tuples(name)),
    Call("execute", st.tuples(st.one_of(hostile_text(12), document)),
         st.fixed_dictionaries({}, optional={"database": st.one_of(hostile_text(8), garbage()),
                                             "timeout": numbers()})),
    Call("transaction", st.tuples(name, document), tx_kwargs, invoke=_transaction),
    Call("run_in_transaction", st.tuples(name, filters),
         st.fixed_dictionaries({}, optional={"deadline": st.one_of(numbers(), garbage()),
                                             "read_concern": st.one_of(hostile_text(8),
                                                                       garbage())}),
         invoke=_run_in_transaction),
    Call("transaction.execute", st.tuples(st.one_of(hostile_text(12), document, garbage())),
         st.fixed_dictionaries({}, optional={"database": st.one_of(hostile_text(8), garbage()),
                                             "timeout": st.one_of(numbers(), garbage())}),
         invoke=_transaction_execute),
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
    check_call(fuzz_db, _strict(call))


def test_a_bare_type_error_fails_the_strict_check() -> None:
    # The check itself can fail: a method raising a plain TypeError is caught.
    class Plain:
        def query(self, *args: Any, **kwargs: Any) -> None:
            raise TypeError("plain")

    with pytest.raises(AssertionError, match="a bare"):
        _strict(Call("query")).invoke(Plain(), (), {})  # type: ignore[misc]
