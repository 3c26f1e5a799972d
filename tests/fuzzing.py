"""Hostile arguments for every public method: the one property every connector keeps.

For every public method of every connector, hypothesis-made arguments
(strings with lone surrogates, NUL, CR/LF and non-latin-1 text; huge,
negative and non-finite numbers; deeply nested structures) produce either a
result or a ``ConnectorError``, never another exception type. ``TypeError``
for an argument of the wrong type is the one documented exception
(docs/errors.md).

A connector's test module lists one ``Call`` per public method;
``check_covers`` fails when a public method has no entry, so a new method
cannot be left out.

Example::

    CALLS = [Call("query", st.tuples(sql_text()), st.fixed_dictionaries({"timeout": numbers()}))]

    @pytest.mark.parametrize("call", CALLS, ids=str)
    def test_hostile_arguments(call, connector):
        check_call(connector, call)
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dictamesh_connectors.errors import ConnectorError

__all__ = [
    "BASE_CALLS",
    "Call",
    "check_call",
    "check_covers",
    "consume",
    "hostile_text",
    "nested",
    "numbers",
    "public_methods",
]

# Lone surrogates (category Cs) are what UTF-8 and latin-1 encoders choke on.
_ANY_CHAR = st.characters(codec=None, categories=None)


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Text that breaks encoders: surrogates, NUL, CR/LF, non-latin-1, long runs."""
    specials = st.sampled_from(
        [
            "",
            "\x00",
            "\r\n",
            "db\udc80",
            "s3cr\u00e9t",
            "\u20ac\u4e2d\U0001f600",
            "'; DROP TABLE x; --",
            "%00%0d%0a",
            "../../etc/passwd",
            "x" * 5000,
        ]
    )
    return st.one_of(specials, st.text(_ANY_CHAR, max_size=max_size))


def numbers() -> st.SearchStrategy[Any]:
    """Numbers at the edges: huge, negative, zero, NaN, +-inf, 400-digit ints, None."""
    return st.one_of(
        st.sampled_from(
            [0, -1, 1e306, 1e300, -1e308, float("inf"), float("-inf"), float("nan"), 10**400]
        ),
        st.none(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**30), max_value=10**30),
    )


def nested(depth: int = 4) -> st.SearchStrategy[Any]:
    """JSON-like values with hostile leaves, nested a few levels (and one very deep list)."""
    leaves = st.one_of(st.none(), st.booleans(), numbers(), hostile_text(12))
    tree = st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(hostile_text(8), children, max_size=3),
        ),
        max_leaves=12,
    )
    deep: Any = []
    for _ in range(depth * 1000):
        deep = [deep]
    return st.one_of(tree, st.just(deep))


@attrs.frozen
class Call:
    """One public method and how to make its arguments.

    Attributes:
        method: The method name.
        args: A strategy for the positional arguments (a tuple).
        kwargs: A strategy for the keyword arguments (a dict).
        use: What to do with the result (e.g. iterate a stream); gets the result.
        setup: Called with the connector before each example (e.g. reconnect).
        invoke: Makes the call instead of ``getattr(connector, method)(*args,
            **kwargs)`` (e.g. builds a ``Request`` from hostile values first).
    """

    method: str
    args: st.SearchStrategy[tuple[Any, ...]] = st.just(())
    kwargs: st.SearchStrategy[dict[str, Any]] = st.just({})
    use: Callable[[Any], object] | None = None
    setup: Callable[[Any], object] | None = None
    invoke: Callable[[Any, tuple[Any, ...], dict[str, Any]], object] | None = None

    def __str__(self) -> str:
        return self.method


def consume(result: object, limit: int = 5) -> None:
    """Use a lazy result the way a caller would: iterate a few items, enter a context."""
    if hasattr(result, "__enter__") and hasattr(result, "__exit__"):
        with result:  # type: ignore[attr-defined]
            inner = result
            if isinstance(inner, Iterable):
                list(itertools.islice(inner, limit))
        return
    if isinstance(result, Iterator):
        try:
            list(itertools.islice(result, limit))
        finally:
            close = getattr(result, "close", None)
            if callable(close):
                close()


def public_methods(cls: type) -> set[str]:
    """The public callables of ``cls`` (what a user can call on an instance)."""
    names = set()
    for name, value in inspect.getmembers(cls):
        if name.startswith("_") or isinstance(value, (type, property)):
            continue
        if callable(value):
            names.add(name)
    return names


def check_covers(cls: type, calls: Iterable[Call], exempt: Iterable[str] = ()) -> None:
    """Fail unless ``calls`` (plus ``exempt``) name every public method of ``cls``."""
    missing = public_methods(cls) - {c.method for c in calls} - set(exempt)
    assert not missing, f"{cls.__name__}: no hostile-argument Call for {sorted(missing)}"


def check_call(connector: Any, call: Call, max_examples: int = 40) -> None:
    """Run ``call`` with hypothesis-made arguments; only results or ConnectorErrors."""

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(args=call.args, kwargs=call.kwargs)
    def run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if call.setup is not None:
            call.setup(connector)
        try:
            if call.invoke is not None:
                result = call.invoke(connector, args, kwargs)
            else:
                result = getattr(connector, call.method)(*args, **kwargs)
            if call.use is not None:
                call.use(result)
            else:
                consume(result)
        except ConnectorError:
            pass
        except TypeError as exc:
            # Documented: a wrong argument *type* is a programming error. It
            # must come from our own argument checks, not from deep inside
            # a driver or an encoder (those are bugs).
            assert not isinstance(exc, UnicodeError)

    run()


def _add_then_remove(connector: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    connector.add_listener(*args)
    connector.stats()
    connector.remove_listener(*args)
    return None


BASE_CALLS = [
    # Any object may be a listener: one without the event methods is skipped.
    Call("add_listener", st.tuples(st.one_of(hostile_text(), nested())), invoke=_add_then_remove),
    Call("remove_listener", st.tuples(st.one_of(hostile_text(), nested()))),
    Call("stats"),
]
"""The observability methods every connector inherits from the base class."""
