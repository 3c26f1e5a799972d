"""The Django app: named connectors from ``settings.DICTAMESH_CONNECTORS``.

Add the app and the configuration to your settings::

    INSTALLED_APPS = [..., "dictamesh_connectors.contrib.django"]
    DICTAMESH_CONNECTORS = {
        "orders_db": {"url": "postgresql://app@db/orders", "max_open_conns": 20},
        "crm": "https://crm.example.com/api",
    }

then ask for a connector anywhere (views, signals, management commands)::

    from dictamesh_connectors.contrib.django import connectors

    def order(request, order_id):
        db = connectors().postgresql("orders_db")
        ...

``DICTAMESH_CONNECTORS`` is a mapping, the path of a TOML file, or absent
(the ``DICTAMESH_CONNECTOR_*`` environment variables). It is validated when
Django starts (``AppConfig.ready``): a bad entry is an
``ImproperlyConfigured`` naming the connector and the field. The connectors
are closed when the process exits (drained for
``DICTAMESH_CONNECTORS_CLOSE_TIMEOUT`` seconds, default 30).
``manage.py connectors_check [--json]`` checks them all, with the exit codes
of ``dictamesh-connectors check``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import require

require("django", extra="django", connector="contrib.django")

if TYPE_CHECKING:
    from dictamesh_connectors.base import Connector
    from dictamesh_connectors.connectors import Connectors

__all__ = ["connectors", "get_connector"]


def connectors() -> Connectors:
    """The project's ``Connectors`` (built when the app was loaded).

    Raises:
        django.core.exceptions.ImproperlyConfigured: The app is not in
            ``INSTALLED_APPS`` or Django is not set up yet.
    """
    from dictamesh_connectors.contrib.django.apps import loaded_connectors

    return loaded_connectors()


def get_connector(name: str) -> Connector[Any, Any]:
    """``connectors().get(name)``: the shared, connected connector ``name``."""
    return connectors().get(name)
