"""The Flask extension with Flask's test client and in-memory fake connectors."""

from __future__ import annotations

import pytest

flask = pytest.importorskip("flask")

from dictamesh_connectors import registry  # noqa: E402
from dictamesh_connectors.contrib.flask import (  # noqa: E402
    EXTENSION_KEY,
    FlaskConnectors,
    get_connectors,
    health_blueprint,
)
from dictamesh_connectors.errors import InvalidConfigError  # noqa: E402
from tests.unit.fakes import FakeConnector, FakeDriverError  # noqa: E402


@pytest.fixture(autouse=True)
def fake_scheme():
    registry.register("fake", FakeConnector)
    yield
    registry._registered.pop("fake", None)


def _app(config, **kwargs):
    app = flask.Flask("t")
    app.config["DICTAMESH_CONNECTORS"] = config
    ext = FlaskConnectors(**kwargs)
    ext.init_app(app)
    app.register_blueprint(health_blueprint())
    return app, ext


def test_init_app_registers_lazily_and_views_share_one_connector():
    app, ext = _app({"db": "fake://db"})
    connectors = app.extensions[EXTENSION_KEY]
    assert connectors.built() == {}

    @app.get("/id")
    def which():
        return {"id": id(ext.get("db")), "same": ext.connectors is get_connectors()}

    client = app.test_client()
    first, second = client.get("/id").json, client.get("/id").json
    assert first == second and first["same"] is True
    assert set(connectors.built()) == {"db"}
    ext.close(app, timeout=5)
    assert not connectors.built()


def test_config_from_a_toml_path(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[connectors.files]\nurl = 'fake://f'\n")
    app, _ = _app(str(path))
    assert get_connectors(app).names == ["files"]


def test_bad_config_fails_init_app():
    with pytest.raises(InvalidConfigError) as info:
        _app({"db": {"url": "fake://db", "open_delay": "x"}})
    assert info.value.details == {"connector": "db", "field": "open_delay"}


def test_health_blueprint_200_then_503():
    app, ext = _app({"a": "fake://a", "b": "fake://b"})
    client = app.test_client()
    response = client.get("/health")
    assert response.status_code == 200 and response.json["healthy"] is True
    with app.app_context():
        b = ext.connectors.get("b")
    b.disconnect()
    b.fail_open = FakeDriverError("refused", lost=True)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json["connectors"]["b"]["error_code"] == "CONNECTION_LOST"
    assert response.json["connectors"]["a"]["healthy"] is True


def test_get_connectors_without_init_app():
    app = flask.Flask("bare")
    with pytest.raises(RuntimeError, match="init_app"):
        get_connectors(app)


def test_custom_config_key():
    app = flask.Flask("k")
    app.config["MY_CONNECTORS"] = {"x": "fake://x"}
    FlaskConnectors(app, config_key="MY_CONNECTORS")
    assert get_connectors(app).names == ["x"]


def test_typed_accessors_for_every_connector_kind(tmp_path):
    from dictamesh_connectors.file import FileConnector

    app, ext = _app({"export": {"url": f"file://{tmp_path}"}, "db": "fake://db"})
    with app.app_context():
        files = ext.file("export")
        assert isinstance(files, FileConnector) and files.is_connected
        assert ext.file("export") is files is ext.get("export")
        accessors = {
            "postgresql": "PostgreSQLConnector",
            "http": "HTTPConnector",
            "mongodb": "MongoDBConnector",
            "kafka": "KafkaConnector",
            "file": "FileConnector",
        }
        for accessor, kind in accessors.items():
            with pytest.raises(InvalidConfigError, match=f"is a FakeConnector, not a {kind}"):
                getattr(ext, accessor)("db")
        assert ext.connectors.built().keys() == {"export"}  # refused before building "db"
    ext.close(app, timeout=5)
