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


def test_entry_points_register_third_party_connectors(tmp_path):
    dist = tmp_path / "thirdparty_conn-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-conn\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[dictamesh_connectors.connectors]\nthirdparty = tests.unit.fakes:FakeConnector\n"
    )
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from dictamesh_connectors import registry
        from tests.unit.fakes import FakeConnector
        assert "thirdparty" in registry.known_schemes(), registry.known_schemes()
        assert registry.connector_class("thirdparty") is FakeConnector
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
