import pickle

import pytest

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    MissingDependencyError,
    NotConnectedError,
    RetryHint,
    error_class_for,
    is_transient_code,
)

ALL_CLASSES = [
    ConnectorError,
    NotConnectedError,
    InvalidConfigError,
    ConnectorTimeoutError,
    AuthenticationError,
    MissingDependencyError,
]


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_errors_pickle_with_every_attribute(cls):
    err = cls(
        "postgresql: query on db@host:5432: boom",
        code=ErrorCode.DEADLOCK,
        transient=True,
        retry_hint=RetryHint.RETRY_TRANSACTION,
        retry_after=1.5,
        maybe_applied=True,
        connector="postgresql",
        details={"sqlstate": "40P01"},
    )
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is cls
    for attr in (
        "message",
        "code",
        "transient",
        "retry_hint",
        "retry_after",
        "maybe_applied",
        "connector",
        "details",
    ):
        assert getattr(clone, attr) == getattr(err, attr), attr
    assert str(clone) == str(err)
    assert clone.args == err.args


def test_defaults_follow_the_code():
    assert ConnectorTimeoutError("t").transient is True
    assert ConnectorTimeoutError("t").retry_hint is RetryHint.RETRY
    assert AuthenticationError("a").transient is False
    assert AuthenticationError("a").retry_hint is RetryHint.NONE
    lost = ConnectorError("x", code=ErrorCode.CONNECTION_LOST)
    assert lost.transient and lost.retry_hint is RetryHint.RECONNECT
    ser = ConnectorError("x", code="SERIALIZATION_FAILURE")
    assert ser.code is ErrorCode.SERIALIZATION_FAILURE
    assert ser.retry_hint is RetryHint.RETRY_TRANSACTION
    limited = ConnectorError("x", code=ErrorCode.RATE_LIMITED, retry_after=3)
    assert limited.retry_hint is RetryHint.RETRY_AFTER and limited.retry_after == 3.0
    assert ConnectorError("x", retry_after=-5, code=ErrorCode.RATE_LIMITED).retry_after == 0.0


def test_invalid_config_is_a_value_error():
    with pytest.raises(ValueError):
        raise InvalidConfigError("bad")
    assert InvalidConfigError("bad").code is ErrorCode.INVALID_CONFIG
    assert NotConnectedError("x").code is ErrorCode.NOT_CONNECTED


def test_cause_is_chained_and_repr_is_informative():
    try:
        try:
            raise OSError("driver")
        except OSError as exc:
            raise ConnectorError(
                "http: GET /x: driver", code=ErrorCode.UNAVAILABLE, connector="http"
            ) from exc
    except ConnectorError as err:
        assert isinstance(err.__cause__, OSError)
        assert "UNAVAILABLE" in repr(err) and "http" in repr(err)


def test_error_class_for_codes():
    assert error_class_for(ErrorCode.TIMEOUT) is ConnectorTimeoutError
    assert error_class_for(ErrorCode.AUTH_FAILED) is AuthenticationError
    assert error_class_for(ErrorCode.CONFLICT) is ConnectorError
    assert is_transient_code(ErrorCode.UNAVAILABLE)
    assert not is_transient_code(ErrorCode.CONSTRAINT_VIOLATION)


def test_unknown_code_is_rejected():
    with pytest.raises(ValueError):
        ConnectorError("x", code="NOT_A_CODE")


def test_build_error_picks_the_most_specific_class_and_keeps_every_field():
    from dictamesh_connectors.errors import ErrorRule, build_error

    rule = ErrorRule(ErrorCode.TIMEOUT, True, RetryHint.RETRY)
    err = build_error(
        "t: slow", rule, connector="t", maybe_applied=True, retry_after=2, details={"a": 1}
    )
    assert type(err) is ConnectorTimeoutError
    assert (err.code, err.transient, err.retry_hint) == rule
    assert err.maybe_applied and err.retry_after == 2.0 and err.details == {"a": 1}
    assert err.connector == "t" and err.message == "t: slow"

    class MyTimeout(ConnectorTimeoutError):
        pass

    mine = build_error("x", rule, connector="t", classes={ErrorCode.TIMEOUT: MyTimeout})
    assert type(mine) is MyTimeout
    other = build_error(
        "x",
        (ErrorCode.UNAVAILABLE, True, RetryHint.RETRY),
        connector="t",
        classes={ErrorCode.TIMEOUT: MyTimeout},
    )
    assert type(other) is ConnectorError


def test_translator_maps_driver_errors_only_and_keeps_the_scrubbed_cause():
    from dictamesh_connectors.errors import Translator

    class DriverError(Exception):
        pass

    class translate(Translator):
        __slots__ = ("scrubbed",)
        driver_errors = (DriverError,)

        def __init__(self):
            self.scrubbed = []

        def classify(self, exc):
            if "ignore" in str(exc):
                return None
            return ConnectorError("t: failed", code=ErrorCode.UNAVAILABLE, connector="t")

        def scrub(self, exc):
            self.scrubbed.append(exc)
            exc.args = ("scrubbed",)

    t = translate()
    with pytest.raises(ConnectorError) as info, t:
        raise DriverError("password=x")
    assert info.value.code is ErrorCode.UNAVAILABLE
    assert isinstance(info.value.__cause__, DriverError)
    assert info.value.__cause__.args == ("scrubbed",) and len(t.scrubbed) == 1
    for passing in (TypeError("bug"), DriverError("ignore me"), KeyboardInterrupt()):
        with pytest.raises(type(passing)), translate():
            raise passing
    mine = ConnectorError("already ours")
    with pytest.raises(ConnectorError) as info, translate():
        raise mine
    assert info.value is mine


@pytest.mark.parametrize(
    ("package", "site"),
    [
        ("file", "translate"),
        ("kafka", "translate"),
        ("mongodb", "translate"),
        ("postgresql", "translate"),
        ("http", "Translating"),
    ],
)
def test_every_connectors_translation_site_is_the_core_translator(package, site):
    # One translation site (issue #7): every connector's context manager is
    # the core Translator, not a copy of its __exit__ (File's was).
    import importlib

    from dictamesh_connectors.errors import Translator

    driver = {"kafka": "confluent_kafka", "mongodb": "pymongo", "postgresql": "psycopg"}
    if package in driver:
        pytest.importorskip(driver[package])
    errors = importlib.import_module(f"dictamesh_connectors.{package}.errors")
    assert issubclass(getattr(errors, site), Translator)


@pytest.mark.parametrize("package", ["file", "kafka", "mongodb", "postgresql"])
def test_every_translate_call_passes_only_keywords_its_classify_takes(package):
    # translate(...) carries its keywords untyped to classify(); a misspelt
    # one would only surface (as a TypeError) when a driver error occurs.
    import ast
    import importlib
    import inspect
    import pathlib

    driver = {"kafka": "confluent_kafka", "mongodb": "pymongo", "postgresql": "psycopg"}
    if package in driver:
        pytest.importorskip(driver[package])
    errors = importlib.import_module(f"dictamesh_connectors.{package}.errors")
    takes = set(inspect.signature(errors.classify).parameters) - {"exc"}
    root = pathlib.Path(errors.__file__).parent
    calls = 0
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(func, "id", None) == "translate":
                calls += 1
                keywords = {k.arg for k in node.keywords}
                assert None not in keywords and keywords <= takes, (path.name, node.lineno)
                assert len(node.args) <= 2, (path.name, node.lineno)  # operation, target/path
    assert calls > 0


@pytest.mark.parametrize("code", list(ErrorCode))
def test_rule_for_is_the_one_place_the_defaults_are_decided(code):
    # ConnectorError's own defaults and every build_error rule that leaves a
    # part to its default (HTTP, GraphQL) come from rule_for (issue #7).
    from dictamesh_connectors.errors import build_error, rule_for

    for transient in (None, True, False):
        for retry_after in (None, 5.0):
            rule = rule_for(code, transient, retry_after=retry_after)
            err = ConnectorError("x", code=code, transient=transient, retry_after=retry_after)
            assert (err.code, err.transient, err.retry_hint) == tuple(rule)
            built = build_error("x", rule, connector="c", retry_after=retry_after)
            assert (built.code, built.transient, built.retry_hint) == tuple(rule)
    assert rule_for(code, hint=RetryHint.RECONNECT).hint is RetryHint.RECONNECT
