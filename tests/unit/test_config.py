import math
import pickle
import traceback

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dictamesh_connectors._convert import MAX_TIMEOUT, check_timeout, to_seconds
from dictamesh_connectors.config import Secret, field_converter, redact_url_password, to_bool
from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.retry import RetryPolicy

from .fakes import FakeConfig

garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.builds(object),
    st.just(float("nan")),
    st.just("\x00"),
    # Values whose repr() or int() itself raises or explodes.
    st.just(10**5000),
    st.just(-(10**5000)),
    st.just("9" * 5000),
    st.just("\ud800"),
    st.integers(min_value=2**64),
    st.complex_numbers(allow_nan=True),
    st.decimals(allow_nan=True),
    st.tuples(st.integers(), st.text(max_size=3)),
    st.frozensets(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(["max_attempts", "deadline", "jitter", "x"]), st.integers()),
    st.builds(Secret, st.text(max_size=5)),
    st.just(RetryPolicy()),
    st.just(type),
)


def config_classes():
    """Every config class the package ships (grows as connectors land)."""
    import dictamesh_connectors.config as core

    classes = [FakeConfig]
    for module in ("http", "graphql", "postgresql", "mongodb", "kafka", "file"):
        try:
            mod = __import__(f"dictamesh_connectors.{module}.config", fromlist=["*"])
        except ImportError:
            continue
        for value in vars(mod).values():
            if (
                isinstance(value, type)
                and issubclass(value, core.BaseConfig)
                and value is not core.BaseConfig
                and attrs.has(value)
            ):
                classes.append(value)
    return classes


@pytest.mark.parametrize("cls", config_classes(), ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_garbage_in_any_field_is_invalid_config_error_or_accepted(cls, data):
    field = data.draw(st.sampled_from([a.name for a in attrs.fields(cls)]))
    value = data.draw(garbage)
    try:
        config = cls.create(**{field: value})
    except InvalidConfigError as err:
        assert err.code.value == "INVALID_CONFIG"
        secret_field = "password" in field or "secret" in field or "token" in field
        if secret_field and isinstance(value, str) and len(value) > 2:
            assert value not in str(err)
    else:
        config.validate()
        repr(config)


def test_secret_hides_its_value():
    s = Secret("hunter2")
    assert repr(s) == "Secret('***')"
    assert str(s) == "***" and f"{s}" == "***" and "%s" % (s,) == "***"  # noqa: UP031
    assert s.get_secret_value() == "hunter2"
    assert s == Secret("hunter2") and s != Secret("other")
    assert hash(s) == hash(Secret("hunter2"))
    assert pickle.loads(pickle.dumps(s)) == s
    with pytest.raises(InvalidConfigError):
        Secret(123)


def test_config_repr_and_connection_string_mask_the_password():
    cfg = FakeConfig.from_url("fake://alice:s3cr3t-pw@db.example")
    assert cfg.username == "alice" and cfg.password.get_secret_value() == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(cfg)
    assert cfg.connection_string() == "fake://alice:***@db.example"
    assert cfg.connection_string(redact=False) == "fake://alice:s3cr3t-pw@db.example"


def test_from_url_rejects_bad_urls_without_echoing_them():
    with pytest.raises(InvalidConfigError) as info:
        FakeConfig.from_url("http://alice:s3cr3t-pw@db")
    assert "s3cr3t-pw" not in str(info.value)
    with pytest.raises(InvalidConfigError):
        FakeConfig.from_url("fake://alice:s3cr3t-pw@db:notaport")
    with pytest.raises(InvalidConfigError):
        FakeConfig.from_url(42)
    with pytest.raises(InvalidConfigError, match="unknown option"):
        FakeConfig.from_url("fake://db", nonsense=1)


def test_from_env_reads_url_then_fields_then_retry():
    env = {
        "APP_URL": "fake://bob:pw1@one",
        "APP_HOST": "two",
        "APP_AUTO_RECONNECT": "off",
        "APP_RETRY_MAX_ATTEMPTS": "7",
        "APP_RETRY_DEADLINE": "2.5",
        "OTHER_HOST": "ignored",
    }
    cfg = FakeConfig.from_env("APP_", environ=env)
    assert cfg.host == "two" and cfg.username == "bob"
    assert cfg.password == Secret("pw1")
    assert cfg.auto_reconnect is False
    assert cfg.retry == RetryPolicy(max_attempts=7, deadline=2.5)
    with pytest.raises(InvalidConfigError, match="open_delay"):
        FakeConfig.from_env("APP_", environ={"APP_OPEN_DELAY": "soon"})


def test_configs_are_frozen_and_evolve():
    cfg = FakeConfig(host="a")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.host = "b"
    assert cfg.evolve(host="b").host == "b"
    with pytest.raises(InvalidConfigError):
        cfg.evolve(host="")
    with pytest.raises(InvalidConfigError):
        cfg.evolve(nope=1)
    assert pickle.loads(pickle.dumps(cfg)) == cfg


@pytest.mark.parametrize("text,expected", [("yes", True), ("0", False), ("On", True), ("", False)])
def test_to_bool(text, expected):
    assert to_bool(text) is expected


def test_to_bool_rejects_garbage():
    with pytest.raises(InvalidConfigError):
        to_bool("maybe")
    with pytest.raises(InvalidConfigError):
        to_bool(2)


def test_redact_url_password():
    assert redact_url_password("postgresql://u:p%40ss@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact_url_password("http://h/x") == "http://h/x"


@pytest.mark.parametrize(
    "field,value",
    [
        ("open_delay", 10**5000),
        ("open_delay", -(10**5000)),
        ("auto_reconnect", 10**5000),
        ("host", 10**5000),
        ("retry", -(10**5000)),
        ("retry", {"max_attempts": -(10**5000)}),
        ("retry", {"jitter": 10**5000}),
        ("password", 10**5000),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_values_whose_repr_fails_still_give_invalid_config_error(field, value):
    # repr() of an int over 4300 digits raises ValueError: the message must not need it.
    with pytest.raises(InvalidConfigError) as info:
        FakeConfig.create(**{field: value})
    assert type(info.value) is InvalidConfigError
    assert len(str(info.value)) < 200


def test_retry_policy_rejects_unprintable_values_with_its_own_error():
    for kwargs in ({"max_attempts": -(10**5000)}, {"jitter": 10**5000}):
        with pytest.raises(InvalidConfigError):
            RetryPolicy(**kwargs)


def test_secret_with_lone_surrogates_compares_and_hashes():
    assert Secret("\ud800x") == Secret("\ud800x")
    assert Secret("\ud800x") != Secret("\ud801x")
    hash(Secret("\ud800"))


def test_describe_value_never_echoes_big_or_odd_values():
    from dictamesh_connectors import config

    assert config.describe_value(object()) == "object"
    assert config.describe_value(10**5000).startswith("int with")
    assert (
        config.describe_value("x" * 500).endswith("x")
        and len(config.describe_value("x" * 500)) < 80
    )

    class Hostile(str):
        def __repr__(self):
            raise RuntimeError("boom")

    assert config.describe_value(Hostile("a")) == "Hostile"


def test_converter_errors_never_quote_a_secret():
    def boom(value):
        raise ValueError(f"cannot parse {value}")

    @attrs.frozen(kw_only=True)
    class WithToken(FakeConfig):
        token: str = attrs.field(default="", converter=field_converter(boom, secret=True))

    token = "-".join(["tok", "Sup3rSecret"])  # not a literal: tracebacks quote source lines
    with pytest.raises(InvalidConfigError) as info:
        WithToken.create(token=token)
    text = "".join(traceback.format_exception(info.value))
    assert token not in text and token not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


def _text_fields(cls):
    """The fields of ``cls`` that take plain text (str or Secret), found by trying."""
    names = []
    for a in attrs.fields(cls):
        try:
            cls.create(**{a.name: "plain-text"})
        except InvalidConfigError:
            continue
        names.append(a.name)
    return names


@pytest.mark.parametrize("cls", config_classes(), ids=lambda c: c.__name__)
def test_text_no_driver_can_encode_is_refused_at_config_time(cls):
    # A lone surrogate used to pass and then fail inside the driver, in a raw
    # UnicodeEncodeError whose .object held the whole conninfo, password included.
    for name in _text_fields(cls):
        # A file path is bytes on POSIX: os.fsencode() maps a lone surrogate
        # back to its byte (surrogateescape), so such a root is a real path.
        surrogate_ok = (cls.__name__, name) == ("FileConfig", "root")
        for bad in ("a\x00b",) if surrogate_ok else ("db\udc80", "a\x00b"):
            with pytest.raises(InvalidConfigError) as info:
                cls.create(**{name: bad})
            assert name in info.value.message
            assert info.value.__cause__ is None and info.value.__context__ is None
    assert Secret("ok")  # and a Secret made by hand is checked on the way in:
    with pytest.raises(InvalidConfigError) as info:
        FakeConfig(password=Secret("pw-\udc80-SECRET"))
    assert "SECRET" not in str(info.value)


def test_url_userinfo_is_the_inverse_of_url_credentials():
    import urllib.parse

    from dictamesh_connectors.config import url_credentials, url_userinfo

    assert url_userinfo(None, Secret("pw"), redact=False) == ""
    assert url_userinfo("me", None, redact=True) == "me@"
    assert url_userinfo("a@b:c", Secret("p@ss:/w"), redact=True) == "a%40b%3Ac:***@"
    shown = url_userinfo("a@b:c", Secret("p@ss:/w"), redact=False)
    parts = urllib.parse.urlsplit(f"x://{shown}host")
    assert url_credentials(parts) == {"username": "a@b:c", "password": "p@ss:/w"}


# -- to_seconds: the one duration converter (#7) ------------------------------


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (0, {}, 0.0),
        (2, {}, 2.0),
        (MAX_TIMEOUT, {}, MAX_TIMEOUT),
        (math.inf, {}, math.inf),
        (10**400, {"maximum": math.inf, "no_limit": "inf"}, math.inf),
        ("inf", {"text": True, "no_limit": "inf"}, math.inf),
        (" never ", {"text": True, "no_limit": "inf"}, math.inf),
        (" 1.5 ", {"text": True}, 1.5),
        (86_400.0 * 365, {"maximum": 86_400.0 * 365, "no_limit": None}, 86_400.0 * 365),
    ],
)
def test_to_seconds_accepts(value, kwargs, expected):
    assert to_seconds(value, **kwargs) == expected


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [
        (math.nan, {}),
        (-1, {}),
        (-(10**400), {"maximum": math.inf, "no_limit": "inf"}),
        (10**400, {}),
        (MAX_TIMEOUT + 1, {}),
        (0, {"positive": True}),
        (math.inf, {"no_limit": None}),
        (10**400, {"maximum": math.inf, "no_limit": None}),
        ("never", {"text": True, "no_limit": None}),
        ("nan", {"text": True}),
        ("soon", {"text": True}),
    ],
)
def test_to_seconds_refuses_bad_values_as_invalid_config(value, kwargs):
    with pytest.raises(InvalidConfigError, match="number of seconds"):
        to_seconds(value, name="wait", **kwargs)


@pytest.mark.parametrize("value", [True, "1", None, [1], b"1"])
def test_to_seconds_refuses_a_wrong_type_as_type_error(value):
    with pytest.raises(TypeError, match="wait must be a number of seconds"):
        to_seconds(value, name="wait")


def test_check_timeout_is_to_seconds_with_none_for_no_limit():
    assert check_timeout(None) is None
    assert check_timeout(math.inf) is None
    assert check_timeout(3) == 3.0
    with pytest.raises(
        InvalidConfigError, match=r"timeout: int 0 is not a number of seconds above 0"
    ):
        check_timeout(0, positive=True)
