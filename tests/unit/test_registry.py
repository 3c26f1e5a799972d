import subprocess
import sys
import textwrap

import pytest

import dictamesh_connectors
from dictamesh_connectors import registry
from dictamesh_connectors.errors import InvalidConfigError

from .fakes import FakeConnector


@pytest.fixture
def fake_scheme():
    registry.register("fake", FakeConnector)
    yield
    registry._registered.pop("fake", None)


def test_connect_builds_config_from_url_and_connects(fake_scheme):
    c = dictamesh_connectors.connect("fake://alice:pw@db-host", open_delay=0)
    try:
        assert isinstance(c, FakeConnector)
        assert c.is_connected and c.config.host == "db-host"
        assert c.config.username == "alice"
    finally:
        c.disconnect()


def test_overrides_win_and_unknown_ones_are_rejected(fake_scheme):
    c = dictamesh_connectors.connect("fake://db-host", host="other")
    assert c.config.host == "other"
    c.disconnect()
    with pytest.raises(InvalidConfigError, match="unknown option"):
        dictamesh_connectors.connect("fake://db-host", colour="blue")


def test_unknown_scheme_lists_known_ones(fake_scheme):
    with pytest.raises(InvalidConfigError) as info:
        dictamesh_connectors.connect("gopher://x:secretpw@host")
    assert "fake" in str(info.value) and "gopher" in str(info.value)
    assert "secretpw" not in str(info.value)
    with pytest.raises(InvalidConfigError):
        dictamesh_connectors.connect("no scheme here")


def test_register_rejects_bad_schemes():
    with pytest.raises(InvalidConfigError):
        registry.register("bad scheme!", FakeConnector)


def test_module_path_targets_are_imported_lazily():
    registry.register("fake2", "tests.unit.fakes:FakeConnector")
    try:
        assert registry.connector_class("FAKE2") is FakeConnector
        assert "fake2" in registry.known_schemes()
    finally:
        registry._registered.pop("fake2", None)


def run_with_plugin(tmp_path, entry_points, code):
    """Run ``code`` in a fresh interpreter that sees one installed distribution.

    The distribution declares ``entry_points`` (lines of the
    ``dictamesh_connectors.connectors`` group); ``code`` must print "ok".
    Returns the interpreter's stderr (its log output).
    """
    dist = tmp_path / "plugin_conn-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-conn\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[dictamesh_connectors.connectors]\n" + "".join(f"{line}\n" for line in entry_points)
    )
    prologue = "import logging, sys\nlogging.basicConfig(level=logging.WARNING)\n"
    prologue += "sys.path.insert(0, sys.argv[1])\n"
    out = subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(code), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    return out.stderr


def test_entry_points_register_third_party_connectors(tmp_path):
    code = """
        from dictamesh_connectors import registry
        from tests.unit.fakes import FakeConnector
        assert "thirdparty" in registry.known_schemes(), registry.known_schemes()
        assert registry.connector_class("thirdparty") is FakeConnector
        print("ok")
        """
    run_with_plugin(tmp_path, ["thirdparty = tests.unit.fakes:FakeConnector"], code)


def test_entry_points_cannot_hijack_builtins_and_bad_ones_fail_clearly(tmp_path):
    entry_points = [
        "postgresql = tests.unit.fakes:FakeConnector",
        "missing = no_such_module_xyz:Connector",
        "notaclass = tests.unit.fakes:FakeConfig",
        "bad scheme = tests.unit.fakes:FakeConnector",
    ]
    code = """
        from dictamesh_connectors import registry
        from dictamesh_connectors.errors import InvalidConfigError, MissingDependencyError
        schemes = registry.known_schemes()
        assert "missing" in schemes and "notaclass" in schemes, schemes
        assert "bad scheme" not in schemes, schemes
        cls = registry.connector_class("postgresql")
        assert cls.__module__ == "dictamesh_connectors.postgresql.connector", cls
        try:
            registry.connector_class("missing")
        except MissingDependencyError as err:
            assert "no_such_module_xyz" in str(err), err
        else:
            raise AssertionError("expected MissingDependencyError")
        try:
            registry.connector_class("notaclass")
        except InvalidConfigError as err:
            assert "not a Connector class" in str(err), err
        else:
            raise AssertionError("expected InvalidConfigError")
        print("ok")
        """
    log = run_with_plugin(tmp_path, entry_points, code)
    assert "is a built-in scheme" in log and "not a valid URL scheme" in log


def test_register_wins_over_builtins_and_registry_is_thread_safe():
    from concurrent.futures import ThreadPoolExecutor

    def hammer(i):
        scheme = f"fake{i % 8}"
        registry.register(scheme, FakeConnector)
        assert registry.connector_class(scheme) is FakeConnector
        assert scheme in registry.known_schemes()
        return True

    try:
        with ThreadPoolExecutor(16) as pool:
            assert all(pool.map(hammer, range(400)))
        registry.register("https", FakeConnector)
        assert registry.connector_class("https") is FakeConnector
    finally:
        for i in range(8):
            registry._registered.pop(f"fake{i}", None)
        registry._registered.pop("https", None)
    assert registry.connector_class("https").__name__ == "HTTPConnector"
