"""Hostile arguments for every public method and config field (needs ``hypothesis``).

For every public method of every connector, hypothesis-made arguments
(strings with lone surrogates, NUL, CR/LF and non-latin-1 text; huge,
negative and non-finite numbers; deeply nested structures) produce either a
result or a ``ConnectorError``, never another exception type. ``TypeError``
for an argument of the wrong type is the one documented exception
(docs/errors.md).

A connector's test module lists one ``Call`` per public method;
``check_covers`` fails when a public method has no entry, so a new method
cannot be left out.

``garbage()`` and ``hostile_urls()`` feed the config checks:
``check_config_field`` (garbage in one field of a valid config) and
``check_from_url`` (garbage URLs): only ``InvalidConfigError`` (or
``TypeError`` for a wrong type), never another exception, and a secret
field's value never in the message.

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

from dictamesh_connectors.config import Secret
from dictamesh_connectors.errors import ConnectorError, InvalidConfigError
from dictamesh_connectors.retry import RetryPolicy

__all__ = [
    "BASE_CALLS",
    "Call",
    "check_call",
    "check_config_field",
    "check_covers",
    "check_from_url",
    "consume",
    "describe",
    "garbage",
    "hostile_text",
    "hostile_urls",
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
        with result:
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


# ------------------------------------------------------------------ configs


def garbage() -> st.SearchStrategy[Any]:
    """Any value a caller (or an environment, or a file) might put in a config field."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        hostile_text(),
        st.binary(max_size=20),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        st.dictionaries(hostile_text(8), hostile_text(8), max_size=3),
        st.builds(object),
        # Values whose repr() or int() itself raises or explodes.
        st.sampled_from([10**5000, -(10**5000), "9" * 5000, "\ud800", "-0", " 1 ", "1e999"]),
        st.integers(min_value=2**64),
        st.complex_numbers(allow_nan=True),
        st.decimals(allow_nan=True),
        st.tuples(st.integers(), st.text(max_size=3)),
        st.frozensets(st.integers(), max_size=3),
        st.dictionaries(st.sampled_from(["max_attempts", "deadline", "jitter", "x"]), numbers()),
        st.builds(Secret, hostile_text(8)),
        st.just(RetryPolicy()),
        st.just(type),
    )


def hostile_urls(schemes: Iterable[str]) -> st.SearchStrategy[Any]:
    """URLs for ``from_url``: hostile parts under a right scheme, and non-URLs."""
    known = sorted(schemes) or ["x"]
    part = st.one_of(
        hostile_text(20),
        st.sampled_from(["", "@", ":", "%", "%zz", "%00", "[::1", "]", "?", "#", "//", "\\"]),
    )
    port = st.one_of(
        st.integers(min_value=-(10**6), max_value=10**6).map(str),
        st.sampled_from(["", "0", "65536", "99999999999999999999", "http", "1e3", " 80"]),
    )
    structured = st.builds(
        "{}://{}:{}@{}:{}/{}?{}={}#{}".format,
        st.sampled_from([*known, *(s.upper() for s in known), "http", ""]),
        part,
        part,
        part,
        port,
        part,
        part,
        part,
        part,
    )
    query = st.builds(
        "{}://127.0.0.1/x?{}".format,
        st.sampled_from(known),
        st.lists(st.tuples(part, part).map("=".join), max_size=4).map("&".join),
    )
    return st.one_of(structured, query, hostile_text(60), garbage())


def _examples(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def _check_accepted(config: Any, connector_class: type | None) -> None:
    config.validate()
    repr(config)
    config.connection_string(redact=True)
    if connector_class is not None:
        connector_class(config)  # validates again; may only raise InvalidConfigError


def _secret_values(config_class: type) -> set[str]:
    if not attrs.has(config_class):
        return set()
    names = set()
    for field in attrs.fields(config_class):
        hint = str(field.type)
        if "Secret" in hint or any(w in field.name for w in ("password", "secret", "token")):
            names.add(field.name)
    return names


def check_config_field(
    config: Any,
    field: str,
    *,
    connector_class: type | None = None,
    max_examples: int = 30,
    values: st.SearchStrategy[Any] | None = None,
) -> None:
    """Put hypothesis garbage in ``field`` of ``config``: only InvalidConfigError or TypeError.

    An accepted value must leave a config that validates, reprs, gives its
    connection string and (when ``connector_class`` is given) builds a
    connector. For a secret field, a rejected string never shows in the
    error's message.

    Raises:
        AssertionError: Another exception escaped (chained as the cause),
            or a secret value showed.
    """
    secret = field in _secret_values(type(config))

    @_examples(max_examples)
    @given(value=values if values is not None else garbage())
    def run(value: Any) -> None:
        try:
            changed = config.evolve(**{field: value})
            _check_accepted(changed, connector_class)
        except InvalidConfigError as err:
            text = value.get_secret_value() if isinstance(value, Secret) else value
            if secret and isinstance(text, str) and len(text) > 3:
                assert text not in str(err), f"{field}: the rejected secret is in the message"
        except TypeError as err:
            assert not isinstance(err, UnicodeError), f"{field}: {err!r}"
        except Exception as exc:
            raise AssertionError(
                f"{type(config).__name__}.{field} = {describe(value)} raised "
                f"{type(exc).__name__}: {exc} (only InvalidConfigError or TypeError may escape)"
            ) from exc

    run()


def check_from_url(
    config_class: Any,
    *,
    connector_class: type | None = None,
    max_examples: int = 100,
    urls: st.SearchStrategy[Any] | None = None,
) -> None:
    """Feed hostile URLs to ``config_class.from_url``: only InvalidConfigError or TypeError.

    ``TypeError`` is allowed only for a URL that is not a string.

    Raises:
        AssertionError: Another exception escaped (chained as the cause).
    """
    schemes = getattr(config_class, "url_schemes", ()) or ()

    @_examples(max_examples)
    @given(url=urls if urls is not None else hostile_urls(schemes))
    def run(url: Any) -> None:
        try:
            config = config_class.from_url(url)
            _check_accepted(config, connector_class)
        except InvalidConfigError:
            pass
        except TypeError as err:
            assert not isinstance(url, str), f"TypeError for a string URL: {err}"
        except Exception as exc:
            raise AssertionError(
                f"{config_class.__name__}.from_url({describe(url)}) raised "
                f"{type(exc).__name__}: {exc} (only InvalidConfigError may escape)"
            ) from exc

    run()


def describe(value: Any) -> str:
    """A short, never-raising description of a hostile value for a failure message."""
    try:
        text = repr(value)
    except Exception as exc:
        return f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"
    return text if len(text) <= 120 else text[:117] + "..."
