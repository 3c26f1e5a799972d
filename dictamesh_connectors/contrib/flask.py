"""The Flask extension: named connectors from ``app.config``, shared by every request thread.

Example::

    from flask import Flask
    from dictamesh_connectors.contrib.flask import FlaskConnectors, health_blueprint

    app = Flask(__name__)
    app.config["DICTAMESH_CONNECTORS"] = {"orders_db": "postgresql://app@db/orders"}
    connectors = FlaskConnectors(app)           # or FlaskConnectors() + init_app(app)
    app.register_blueprint(health_blueprint())  # GET /health: 200 or 503, JSON

    @app.get("/orders/<int:order_id>")
    def order(order_id):
        db = connectors.postgresql("orders_db")  # the app's one shared connector
        return db.query("SELECT * FROM orders WHERE id = %s", [order_id]).first()

``app.config["DICTAMESH_CONNECTORS"]`` is a mapping (as for ``Connectors``),
the path of a TOML file, or absent (the ``DICTAMESH_CONNECTOR_*``
environment variables). It is validated in ``init_app``: a bad entry fails
the app's start-up, naming the connector and the field. The connectors are
connected on first use and closed (drained, ``DICTAMESH_CONNECTORS_CLOSE_TIMEOUT``
seconds, default 30) when the process exits.
"""

from __future__ import annotations

import atexit
from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import require
from dictamesh_connectors.connectors import Connectors

require("flask", extra="flask", connector="contrib.flask")

from flask import Blueprint, Flask, current_app, jsonify  # noqa: E402

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

    from dictamesh_connectors.base import Connector
    from dictamesh_connectors.file.connector import FileConnector
    from dictamesh_connectors.http.connector import HTTPConnector
    from dictamesh_connectors.kafka.connector import KafkaConnector
    from dictamesh_connectors.mongodb.connector import MongoDBConnector
    from dictamesh_connectors.postgresql.connector import PostgreSQLConnector

__all__ = ["EXTENSION_KEY", "FlaskConnectors", "get_connectors", "health_blueprint"]

EXTENSION_KEY = "dictamesh_connectors"
"""The key of the app's ``Connectors`` in ``app.extensions``."""


def get_connectors(app: Flask | None = None) -> Connectors:
    """The ``Connectors`` of ``app`` (default: ``current_app``).

    Raises:
        RuntimeError: The extension was not initialised on the app (or no app
            context is active).
    """
    target = app if app is not None else current_app
    try:
        connectors: Connectors = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "dictamesh-connectors: FlaskConnectors.init_app(app) was not called on this app"
        ) from None
    return connectors


class FlaskConnectors:
    """Flask extension holding an app's named connectors.

    Thread safety: one instance serves every request thread (Werkzeug's
    threaded server, gunicorn threads); each connector is built once per
    process and shared. Under a pre-forking server the connectors made in
    the master are dropped in each worker and reopened there.

    Args:
        app: Initialise on this app right away.
        config_key: The ``app.config`` key holding the configuration.
    """

    def __init__(self, app: Flask | None = None, *, config_key: str = "DICTAMESH_CONNECTORS"):
        self.config_key = config_key
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> Connectors:
        """Load and validate the app's connectors; register them in ``app.extensions``.

        Raises:
            InvalidConfigError: The configuration is invalid (names the
                connector and the field).
        """
        connectors = Connectors.load(app.config.get(self.config_key))
        timeout = app.config.get(f"{self.config_key}_CLOSE_TIMEOUT", 30.0)
        app.extensions[EXTENSION_KEY] = connectors
        # Flask has no "app stopped" signal: close when the process exits
        # (Werkzeug's Ctrl-C, gunicorn's worker exit both run atexit).
        atexit.register(connectors.close_all, timeout)
        return connectors

    @property
    def connectors(self) -> Connectors:
        """The current app's ``Connectors``."""
        return get_connectors()

    def get(self, name: str) -> Connector[Any, Any]:
        """The current app's connector ``name`` (see ``Connectors.get``)."""
        return get_connectors().get(name)

    def postgresql(self, name: str) -> PostgreSQLConnector:
        """The current app's ``PostgreSQLConnector`` ``name``."""
        return get_connectors().postgresql(name)

    def http(self, name: str) -> HTTPConnector:
        """The current app's ``HTTPConnector`` ``name``."""
        return get_connectors().http(name)

    def mongodb(self, name: str) -> MongoDBConnector:
        """The current app's ``MongoDBConnector`` ``name``."""
        return get_connectors().mongodb(name)

    def kafka(self, name: str) -> KafkaConnector:
        """The current app's ``KafkaConnector`` ``name``."""
        return get_connectors().kafka(name)

    def file(self, name: str) -> FileConnector:
        """The current app's ``FileConnector`` ``name``."""
        return get_connectors().file(name)

    def close(self, app: Flask | None = None, timeout: float | None = 30.0) -> None:
        """Drain and close the app's connectors now (see ``Connectors.close_all``)."""
        get_connectors(app).close_all(timeout)


def health_blueprint(
    name: str = "dictamesh_health", url_prefix: str = "/health", timeout: float = 5.0
) -> Blueprint:
    """A blueprint answering ``GET {url_prefix}``: every connector's health as JSON.

    The status is 200 when every connector answers, else 503; the body is
    ``{"healthy": bool, "connectors": {name: {...}}}`` with each
    connector's state, latency and classified error (credentials masked).
    """
    blueprint = Blueprint(name, __name__, url_prefix=url_prefix)

    @blueprint.get("")
    def health() -> ResponseReturnValue:
        report = get_connectors().health(timeout=timeout)
        healthy = all(h.healthy for h in report.values())
        body = {"healthy": healthy, "connectors": {n: h.to_dict() for n, h in report.items()}}
        return jsonify(body), 200 if healthy else 503

    return blueprint
