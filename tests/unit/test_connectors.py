"""``Connectors``: load-time validation, lazy single construction, health, close_all, fork."""

from __future__ import annotations

import os
import pickle
import textwrap
import threading
import time

import pytest

from dictamesh_connectors import registry
from dictamesh_connectors.base import State
from dictamesh_connectors.config import Secret
from dictamesh_connectors.connectors import Connectors, env_config, load_toml
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from tests.forking import run_in_child
from tests.secretscan import SecretScan

from .fakes import FakeConnector, FakeDriverError


class CountingConnector(FakeConnector):
    """A fake whose construction is slow, so an unguarded registry builds it twice."""

    built = 0
    built_lock = threading.Lock()

    def __init__(self, config):
        time.sleep(0.02)  # widen the window a racy get() would fall into
        with CountingConnector.built_lock:
            CountingConnector.built += 1
        super().__init__(config)


@pytest.fixture(autouse=True)
def fake_schemes():
    registry.register("fake", FakeConnector)
    CountingConnector.built = 0
    yield
    registry._registered.pop("fake", None)


def test_entries_are_validated_at_load_and_built_lazily():
    connectors = Connectors(
        {"a": "fake://alice:pw@host-a", "b": {"url": "fake://host-b", "open_delay": "0.0"}}
    )
    assert connectors.names == ["a", "b"] and len(connectors) == 2 and "a" in connectors
    assert connectors.built() == {}
    assert connectors.spec("a").config.password == Secret("pw")
    assert connectors.spec("a").target == "fake://alice:***@host-a"
    a = connectors.get("a")
    assert a.is_connected and connectors.get("a") is a and connectors["a"] is a
    assert set(connectors.built()) == {"a"}
    unconnected = connectors.get("b", connect=False)
    assert unconnected.state is State.DISCONNECTED
    connectors.close_all(timeout=5)


def test_32_threads_asking_at_once_build_exactly_one_connector():
    registry.register("fake", CountingConnector)
    connectors = Connectors({"shared": "fake://db"})
    barrier = threading.Barrier(32)
    got: list[object] = []
    errors: list[BaseException] = []

    def ask():
        try:
            barrier.wait(5)
            got.append(connectors.get("shared"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert len(got) == 32 and all(c is got[0] for c in got)
    assert CountingConnector.built == 1
    assert len(got[0].opened) == 1  # and it opened exactly one handle
    connectors.close_all(timeout=5)


@pytest.mark.parametrize(
    "entry, field, words",
    [
        ({"url": "fake://h", "colour": "red"}, "colour", "unknown field"),
        ({"url": "fake://h", "open_delay": "soon"}, "open_delay", "soon"),
        ({"url": "fake://h", "open_delay": -1}, "open_delay", "-1"),
        ({"open_delay": 1}, "url", "URL"),
        ({"url": 42}, "url", "URL"),
        ("nope://h", "url", "no connector for URL scheme"),
        ("no-scheme-at-all", "url", "scheme"),
    ],
)
def test_bad_entries_name_the_connector_and_the_field(entry, field, words):
    with pytest.raises(InvalidConfigError) as info:
        Connectors({"good": "fake://ok", "orders_db": entry})
    err = info.value
    assert err.details == {"connector": "orders_db", "field": field}
    assert "'orders_db'" in err.message and f"field {field!r}" in err.message
    assert words in err.message
    assert pickle.loads(pickle.dumps(err)).details == err.details


@pytest.mark.parametrize("config", [["fake://h"], "fake://h"])
def test_config_must_be_a_mapping(config):
    with pytest.raises(InvalidConfigError, match="mapping"):
        Connectors(config)


@pytest.mark.parametrize("name", ["", "1st", "has space", "x" * 64, 7])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidConfigError, match="connector name"):
        Connectors({name: "fake://h"})


def test_unknown_name_and_wrong_type():
    connectors = Connectors({"db": "fake://h"})
    with pytest.raises(InvalidConfigError, match="no connector named 'other'; configured: db"):
        connectors.get("other")
    assert connectors.typed("db", FakeConnector).is_connected
    with pytest.raises(InvalidConfigError, match="not a CountingConnector"):
        connectors.typed("db", CountingConnector)
    connectors.close_all(timeout=5)


def _write(tmp_path, text):
    path = tmp_path / "connectors.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_toml_with_secrets_from_the_environment(tmp_path):
    path = _write(
        tmp_path,
        """
        [connectors.orders_db]
        url = "fake://app@db.internal"
        open_delay = 0.0
        password = { env = "ORDERS_DB_PASSWORD" }

        [connectors.crm]
        url = "fake://crm"
        password = { env = "UNSET_CRM_PW", default = "fallback" }
        """,
    )
    environ = {"ORDERS_DB_PASSWORD": "MARKER-TOML-SECRET"}
    with SecretScan() as scan:
        connectors = Connectors.from_toml(path, environ)
        db = connectors.get("orders_db")
        texts = [repr(connectors), repr(connectors.spec("orders_db")), repr(db)]
        texts += [str(h.to_dict()) for h in connectors.health().values()]
    scan.assert_clean("MARKER-TOML-SECRET", texts=texts)
    assert db.config.password.get_secret_value() == "MARKER-TOML-SECRET"
    assert connectors.spec("crm").config.password == Secret("fallback")
    connectors.close_all(timeout=5)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[connectors.db]\nurl = 'fake://h'\npassword = { env = 'NOT_SET_X' }\n", "NOT_SET_X"),
        ("[connectors.db]\nurl = 'fake://h'\npassword = { env = 3 }\n", "env"),
        ("[connectors.db]\nurl = 'fake://h'\npassword = { file = 'x' }\n", "invalid secret value"),
    ],
)
def test_toml_env_reference_errors_name_connector_and_field(tmp_path, text, words):
    with pytest.raises(InvalidConfigError) as info:
        Connectors.from_toml(_write(tmp_path, text), {})
    assert info.value.details["connector"] == "db"
    assert words in info.value.message


@pytest.mark.parametrize(
    "text, words",
    [
        ("[connectors\n", "not valid TOML"),
        ("[other]\nx = 1\n", "no [connectors.NAME] table"),
        ("connectors = 3\n", "no [connectors.NAME] table"),
    ],
)
def test_toml_file_errors(tmp_path, text, words):
    with pytest.raises(InvalidConfigError, match=r"connectors\.toml") as info:
        load_toml(_write(tmp_path, text), {})
    assert words in info.value.message


def test_toml_missing_file(tmp_path):
    with pytest.raises(InvalidConfigError, match="cannot read"):
        Connectors.from_toml(tmp_path / "absent.toml")


def test_from_env_urls_and_field_overrides():
    environ = {
        "DICTAMESH_CONNECTOR_ORDERS_DB_URL": "fake://app@db",
        "DICTAMESH_CONNECTOR_ORDERS_DB_PASSWORD": "env-pw",
        "DICTAMESH_CONNECTOR_ORDERS_DB_OPEN_DELAY": "0",
        "DICTAMESH_CONNECTOR_CRM_URL": "fake://crm",
        "DICTAMESH_CONNECTOR_NOTHING": "ignored",
        "OTHER_URL": "fake://ignored",
    }
    assert env_config(environ) == {
        "crm": {"url": "fake://crm"},
        "orders_db": {"url": "fake://app@db", "password": "env-pw", "open_delay": "0"},
    }
    connectors = Connectors.from_env(environ)
    assert connectors.names == ["crm", "orders_db"]
    assert connectors.spec("orders_db").config.password == Secret("env-pw")
    with pytest.raises(InvalidConfigError) as info:
        Connectors.from_env({**environ, "DICTAMESH_CONNECTOR_CRM_OPEN_DELAY": "later"})
    assert info.value.details == {"connector": "crm", "field": "open_delay"}


def test_load_dispatches_on_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("DICTAMESH_CONNECTOR_FROMENV_URL", "fake://e")
    assert Connectors.load().names == ["fromenv"]
    assert Connectors.load({"m": "fake://m"}).names == ["m"]
    path = _write(tmp_path, "[connectors.t]\nurl = 'fake://t'\n")
    assert Connectors.load(str(path)).names == ["t"]
    assert Connectors.load(path).names == ["t"]


def test_health_reports_without_raising(monkeypatch):
    connectors = Connectors({"up": "fake://up", "down": "fake://down"})
    down = connectors.get("down", connect=False)
    down.fail_open = FakeDriverError("refused", lost=True)
    report = connectors.health(timeout=2)
    assert list(report) == ["up", "down"]
    up = report["up"]
    assert up.healthy and up.state == "connected" and up.latency_ms >= 0
    assert up.error_code is None and up.kind == "fake" and up.target == "fake://up"
    bad = report["down"]
    assert not bad.healthy and bad.error_code == ErrorCode.CONNECTION_LOST.value
    assert bad.transient is True and "refused" in bad.error and bad.state == "disconnected"
    assert bad.to_dict()["error_code"] == "CONNECTION_LOST"
    assert connectors.health(names=["up"]).keys() == {"up"}
    with pytest.raises(InvalidConfigError):
        connectors.health(timeout=0)
    connectors.close_all(timeout=5)
    after = connectors.health()
    assert not after["up"].healthy and after["up"].error_code == "NOT_CONNECTED"


def test_health_of_a_connector_with_a_bug_is_still_a_report():
    connectors = Connectors({"buggy": "fake://b"})
    connectors.get("buggy", connect=False).fail_open = RuntimeError("bug")
    report = connectors.health()
    assert report["buggy"].error_code == "INTERNAL" and report["buggy"].error == "RuntimeError"


def test_close_all_closes_every_connector_and_refuses_new_gets():
    connectors = Connectors({"a": "fake://a", "b": "fake://b", "never": "fake://n"})
    a, b = connectors.get("a"), connectors.get("b")
    handles = [a._handle, b._handle]
    connectors.close_all(timeout=5)
    assert all(h.closed for h in handles)
    assert a.state is State.DISCONNECTED and b.state is State.DISCONNECTED
    with pytest.raises(NotConnectedError):
        connectors.get("a")
    connectors.close_all(timeout=5)  # idempotent
    connectors.reopen()
    assert connectors.get("a") is not a  # rebuilt lazily
    connectors.close_all(timeout=5)


def test_close_all_has_one_deadline_for_all_connectors():
    """Three connectors each stuck in an operation: close_all(0.3) gives up on
    all of them together (in parallel), it does not wait 3 x 0.3 s nor forever."""
    connectors = Connectors({f"c{i}": f"fake://c{i}" for i in range(3)})
    release = threading.Event()
    started = threading.Barrier(4)
    workers = []
    for name in connectors:
        connector = connectors.get(name)

        def stuck(_handle, connector=connector):
            started.wait(5)
            release.wait(20)

        workers.append(threading.Thread(target=connector.work, args=(stuck,)))
    for w in workers:
        w.start()
    started.wait(5)
    seen: list[float | None] = []
    originals = {}
    originals_connectors = list(connectors.built().values())
    for name, connector in connectors.built().items():
        originals[name] = connector.disconnect

        def spy(timeout=None, _orig=originals[name]):
            seen.append(timeout)
            _orig(timeout)

        connector.disconnect = spy
    closer = threading.Thread(target=connectors.close_all, args=(0.3,))
    closer.start()
    closer.join(10)
    stuck_after_close = not closer.is_alive()
    states = [c.state for c in originals_connectors]
    release.set()
    for w in workers:
        w.join(10)
    assert stuck_after_close, "close_all did not return while operations were stuck"
    assert len(seen) == 3 and all(t is not None and t <= 0.3 for t in seen)
    assert states == [State.DISCONNECTED] * 3
    with pytest.raises(InvalidConfigError):
        connectors.close_all(timeout=-1)


def test_context_manager_closes():
    with Connectors({"a": "fake://a"}) as connectors:
        a = connectors.get("a")
    assert a.state is State.DISCONNECTED


def test_reset_after_fork_in_a_real_child():
    connectors = Connectors({"a": "fake://a"})
    a = connectors.get("a")
    parent_handle = a._handle

    def child():
        connectors.reset_after_fork()
        assert a._handle is None  # dropped, not closed
        assert not parent_handle.closed and parent_handle.discarded
        assert a.work() == 2  # reopened lazily in the child
        return connectors.get("a") is a

    assert run_in_child(child) == 0
    assert a._handle is parent_handle and not parent_handle.closed
    assert os.getpid() == a._pid
    connectors.close_all(timeout=5)


def test_connect_failure_is_retried_on_the_next_get():
    connectors = Connectors({"a": "fake://a"})
    a = connectors.get("a", connect=False)
    a.fail_open = FakeDriverError("refused", lost=True)
    with pytest.raises(ConnectorError):
        connectors.get("a")
    a.fail_open = None
    assert connectors.get("a") is a and a.is_connected
    connectors.close_all(timeout=5)


def test_toml_env_references_in_nested_tables(tmp_path):
    # An HTTP connector's secrets sit in its credentials table: they must come
    # from the environment too (the reference was once resolved at the top level
    # only, so the token had to be written in the file).
    path = _write(
        tmp_path,
        """
        [connectors.crm]
        url = "https://crm.example.com/api"
        auth_type = "bearer"
        credentials = { token = { env = "CRM_TOKEN" } }

        [connectors.billing]
        url = "https://billing.example.com"
        auth_type = "oauth2"

        [connectors.billing.credentials]
        token_url = "https://auth.example.com/token"
        client_id = "billing"
        client_secret = { env = "UNSET_BILLING_SECRET", default = "fallback-secret" }
        """,
    )
    environ = {"CRM_TOKEN": "MARKER-NESTED-TOKEN"}
    connectors = Connectors.from_toml(path, environ)
    crm = connectors.spec("crm").config
    assert crm.credentials.token.get_secret_value() == "MARKER-NESTED-TOKEN"
    billing = connectors.spec("billing").config.credentials
    assert billing.client_secret.get_secret_value() == "fallback-secret"
    assert billing.client_id == "billing"
    assert "MARKER-NESTED-TOKEN" not in repr(connectors.spec("crm")) + repr(crm)

    with pytest.raises(InvalidConfigError) as info:
        Connectors.from_toml(path, {})
    assert info.value.details == {"connector": "crm", "field": "credentials"}
    assert "credentials.token: environment variable CRM_TOKEN is not set" in info.value.message
