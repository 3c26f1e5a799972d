"""URL scheme -> connector class, for built-ins and third-party connectors.

Third-party packages register a connector class under the entry point group
``dictamesh_connectors.connectors``; the entry point's name is the URL
scheme::

    [project.entry-points."dictamesh_connectors.connectors"]
    redis = "my_package.redis:RedisConnector"

Built-in connectors are imported lazily, so a scheme whose extra is not
installed fails only when used, with an error naming the extra.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from dictamesh_connectors.errors import InvalidConfigError

if TYPE_CHECKING:
    from dictamesh_connectors.base import Connector

__all__ = ["ENTRY_POINT_GROUP", "connect", "connector_class", "known_schemes", "register"]

ENTRY_POINT_GROUP = "dictamesh_connectors.connectors"

# scheme -> "module:Class"; imported on first use.
_BUILTIN: dict[str, str] = {
    "graphql+http": "dictamesh_connectors.graphql.connector:GraphQLConnector",
    "graphql+https": "dictamesh_connectors.graphql.connector:GraphQLConnector",
    "http": "dictamesh_connectors.http.connector:HTTPConnector",
    "https": "dictamesh_connectors.http.connector:HTTPConnector",
    "postgres": "dictamesh_connectors.postgresql.connector:PostgreSQLConnector",
    "postgresql": "dictamesh_connectors.postgresql.connector:PostgreSQLConnector",
}

_lock = threading.Lock()  # guards _registered and _entry_points_loaded
_registered: dict[str, Any] = {}
_entry_points_loaded = False


def register(scheme: str, target: type[Connector[Any, Any]] | str) -> None:
    """Register a connector class (or a ``"module:Class"`` path) for a URL scheme.

    Raises:
        InvalidConfigError: ``scheme`` is not a valid URL scheme.
    """
    if (
        not isinstance(scheme, str)
        or not scheme
        or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()
    ):
        raise InvalidConfigError(f"invalid URL scheme {scheme!r:.40}")
    with _lock:
        _registered[scheme.lower()] = target


def _load_entry_points() -> None:
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _registered.setdefault(ep.name.lower(), ep.value)


def known_schemes() -> list[str]:
    """Every URL scheme a connector is registered for, sorted."""
    _load_entry_points()
    with _lock:
        return sorted(set(_BUILTIN) | set(_registered))


def connector_class(scheme: str) -> type[Connector[Any, Any]]:
    """The connector class registered for ``scheme``.

    Raises:
        InvalidConfigError: No connector is registered for ``scheme``.
        MissingDependencyError: The connector's extra is not installed.
    """
    _load_entry_points()
    key = scheme.lower()
    with _lock:
        target = _registered.get(key, _BUILTIN.get(key))
    if target is None:
        raise InvalidConfigError(
            f"no connector for URL scheme {scheme!r:.40}; known schemes: "
            f"{', '.join(known_schemes()) or '(none)'}"
        )
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module_name), attr)
    return target  # type: ignore[no-any-return]


def connect(url: str, **overrides: Any) -> Connector[Any, Any]:
    """Build a connector from ``url``, connect it and return it.

    The scheme picks the connector; the rest of the URL (and ``overrides``,
    which win) builds its config.

    Example::

        db = dictamesh_connectors.connect("postgresql://app:pw@db/app", max_open_conns=20)

    Raises:
        InvalidConfigError: Unknown scheme, malformed URL or bad option.
        MissingDependencyError: The connector's extra is not installed.
        ConnectorError: The connection failed.
    """
    if not isinstance(url, str) or ":" not in url:
        raise InvalidConfigError("connect() needs a URL such as postgresql://user@host/db")
    scheme = url.split(":", 1)[0].strip()
    cls = connector_class(scheme)
    config = cls.config_class.from_url(url, **overrides)
    connector = cls(config)
    connector.connect()
    return connector
