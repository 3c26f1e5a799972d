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
import logging
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from dictamesh_connectors import _fork
from dictamesh_connectors.errors import InvalidConfigError, MissingDependencyError

if TYPE_CHECKING:
    from dictamesh_connectors.base import Connector

__all__ = ["ENTRY_POINT_GROUP", "connect", "connector_class", "known_schemes", "register"]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dictamesh_connectors.connectors"

# scheme -> "module:Class"; imported on first use.
_BUILTIN: dict[str, str] = {
    "file": "dictamesh_connectors.file.connector:FileConnector",
    "graphql+http": "dictamesh_connectors.graphql.connector:GraphQLConnector",
    "graphql+https": "dictamesh_connectors.graphql.connector:GraphQLConnector",
    "http": "dictamesh_connectors.http.connector:HTTPConnector",
    "https": "dictamesh_connectors.http.connector:HTTPConnector",
    "kafka": "dictamesh_connectors.kafka.connector:KafkaConnector",
    "kafka+ssl": "dictamesh_connectors.kafka.connector:KafkaConnector",
    "mongodb": "dictamesh_connectors.mongodb.connector:MongoDBConnector",
    "mongodb+srv": "dictamesh_connectors.mongodb.connector:MongoDBConnector",
    "postgres": "dictamesh_connectors.postgresql.connector:PostgreSQLConnector",
    "postgresql": "dictamesh_connectors.postgresql.connector:PostgreSQLConnector",
}

# Precedence: register() > built-in > entry point, so an installed plugin
# never silently takes over a built-in scheme; register() does, explicitly.
# Guards _registered, _plugins and _entry_points_loaded (memory only); a
# forked child gets it back unlocked.
_lock = _fork.create_lock()
_registered: dict[str, Any] = {}  # scheme -> class or "module:Class", from register()
_plugins: dict[str, EntryPoint] = {}  # scheme -> entry point of another distribution
_entry_points_loaded = False


def _valid_scheme(scheme: object) -> bool:
    return (
        isinstance(scheme, str)
        and bool(scheme)
        and scheme[0].isalpha()
        and scheme.isascii()
        and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()
    )


def register(scheme: str, target: type[Connector[Any, Any]] | str) -> None:
    """Register a connector class (or a ``"module:Class"`` path) for a URL scheme.

    A registered scheme wins over a built-in one and over entry points.
    Thread-safe.

    Raises:
        InvalidConfigError: ``scheme`` is not a valid URL scheme.
    """
    if not _valid_scheme(scheme):
        raise InvalidConfigError(f"invalid URL scheme {scheme!r:.40}")
    with _lock:  # _registered
        _registered[scheme.lower()] = target


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    # Read the installed distributions' metadata outside the lock (file I/O).
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if not _valid_scheme(ep.name):
            logger.warning(
                "ignoring entry point %r in group %s: not a valid URL scheme",
                ep.name,
                ENTRY_POINT_GROUP,
            )
            continue
        if ep.name.lower() in _BUILTIN:
            logger.warning(
                "ignoring entry point %s = %s: %r is a built-in scheme "
                "(use dictamesh_connectors.register() to replace it)",
                ep.name,
                ep.value,
                ep.name,
            )
            continue
        found.setdefault(ep.name.lower(), ep)
    with _lock:  # _plugins, _entry_points_loaded
        if not _entry_points_loaded:
            _plugins.update(found)
            _entry_points_loaded = True


def known_schemes() -> list[str]:
    """Every URL scheme a connector is registered for, sorted."""
    _load_entry_points()
    with _lock:  # _registered, _plugins
        return sorted(set(_BUILTIN) | set(_registered) | set(_plugins))


def connector_class(scheme: str) -> type[Connector[Any, Any]]:
    """The connector class registered for ``scheme``.

    Raises:
        InvalidConfigError: No connector is registered for ``scheme``, or what
            is registered is not a ``Connector`` class.
        MissingDependencyError: The connector's extra (or the module a
            third-party entry point names) is not installed.
    """
    from dictamesh_connectors.base import Connector

    _load_entry_points()
    key = scheme.lower() if isinstance(scheme, str) else ""
    with _lock:  # _registered, _plugins
        target: Any = _registered.get(key) or _BUILTIN.get(key) or _plugins.get(key)
    if target is None:
        raise InvalidConfigError(
            f"no connector for URL scheme {scheme!r:.40}; known schemes: "
            f"{', '.join(known_schemes()) or '(none)'}"
        )
    where = target.value if isinstance(target, EntryPoint) else target
    try:
        if isinstance(target, EntryPoint):
            target = target.load()
        elif isinstance(target, str):
            module_name, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module_name), attr)
    except MissingDependencyError:
        raise
    except ImportError as err:
        raise MissingDependencyError(
            f"the connector for {key}:// ({where}) cannot be imported: {err.name or 'a module'} "
            "is not installed",
        ) from err
    except AttributeError as err:
        raise InvalidConfigError(f"the connector for {key}:// ({where}) does not exist") from err
    if not (isinstance(target, type) and issubclass(target, Connector)):
        raise InvalidConfigError(f"the connector for {key}:// ({where}) is not a Connector class")
    return target


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
