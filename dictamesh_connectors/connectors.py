"""``Connectors``: named connectors from configuration, built lazily, shared by every thread.

An application names the systems it talks to once (``orders_db``, ``crm``)
and asks for them by name wherever it needs them: a Flask view, a Django
view, a Celery task, a batch job's worker thread. The configuration comes
from a mapping, a TOML file or environment variables, and is checked
completely when it is loaded: a bad value is an ``InvalidConfigError`` that
names the connector and the field, raised at start-up rather than on the
first request.

The TOML format, one table per connector; ``url`` plus any field of the
connector's config as an override, and ``{ env = "NAME" }`` for a value read
from the environment, at any depth (secrets never need to be written in the
file; an HTTP connector's token is ``credentials = { token = { env = "NAME" } }``)::

    [connectors.orders_db]
    url = "postgresql://app@db.internal/orders"
    max_open_conns = 20
    password = { env = "ORDERS_DB_PASSWORD" }

    [connectors.crm]
    url = "https://crm.example.com/api"

From the environment, every ``DICTAMESH_CONNECTOR_<NAME>_URL`` variable
defines the connector ``<name>`` (lower case), and
``DICTAMESH_CONNECTOR_<NAME>_<FIELD>`` overrides one of its fields.

Example::

    connectors = Connectors.from_toml("connectors.toml")
    orders = connectors.postgresql("orders_db")  # built and connected on first use
    orders.query("SELECT 1")
    connectors.close_all(timeout=30)

Thread safety: every method may be called from any thread. A connector is
built at most once: when 32 threads ask for the same name at once, exactly
one builds it and the others get that same instance. Building holds the
registry lock only for the (I/O-free) construction; ``connect()`` runs
outside it, so one slow server never blocks the others.

Fork safety: the registry's lock comes from ``_fork`` (a child gets it back
unlocked), and each connector drops its parent's handle in the child and
reconnects on first use; ``reset_after_fork()`` is there for framework hooks
(Celery's ``worker_process_init``) that want to say so explicitly.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from dictamesh_connectors import _fork
from dictamesh_connectors._convert import check_timeout, describe_value
from dictamesh_connectors.base import Connector
from dictamesh_connectors.config import BaseConfig, redact_url
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from dictamesh_connectors.registry import connector_class

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the tomli backport (a dependency there)
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    from dictamesh_connectors.file.connector import FileConnector
    from dictamesh_connectors.http.connector import HTTPConnector
    from dictamesh_connectors.kafka.connector import KafkaConnector
    from dictamesh_connectors.mongodb.connector import MongoDBConnector
    from dictamesh_connectors.postgresql.connector import PostgreSQLConnector

__all__ = [
    "ENV_PREFIX",
    "ConnectorHealth",
    "ConnectorSpec",
    "Connectors",
    "env_config",
    "load_toml",
]

logger = logging.getLogger(__name__)

ENV_PREFIX = "DICTAMESH_CONNECTOR_"
"""Environment variables ``DICTAMESH_CONNECTOR_<NAME>_URL`` define connectors."""

C = TypeVar("C", bound=Connector[Any, Any])

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$")
_ENV_URL = re.compile(r"^" + ENV_PREFIX + r"([A-Z][A-Z0-9_]*?)_URL$")
# "max_open_conns: expected ..." (config.field_converter) -> the field name.
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*): ")


def _config_error(name: str, field: str | None, message: str) -> InvalidConfigError:
    where = f"connector {name!r}" + (f", field {field!r}" if field else "")
    return InvalidConfigError(f"{where}: {message}", details={"connector": name, "field": field})


@attrs.frozen(kw_only=True)
class ConnectorSpec:
    """One named connector as configured: its class and validated config (no I/O).

    Attributes:
        name: The connector's name in the configuration.
        connector_class: The class the URL's scheme picked.
        config: The validated config (secrets are ``Secret`` values).
    """

    name: str
    connector_class: type[Connector[Any, Any]]
    config: BaseConfig = attrs.field(repr=False)

    @property
    def target(self) -> str:
        """Where the connector points, every credential masked."""
        return _target(self.config)

    @classmethod
    def build(cls, name: str, value: object) -> ConnectorSpec:
        """Check one entry of a mapping (a URL, or a table with ``url`` and overrides).

        Raises:
            InvalidConfigError: A bad name, URL or field; the message names
                the connector and the field.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidConfigError(
                f"invalid connector name {describe_value(name)}: letters, digits, '_' and "
                "'-', starting with a letter (at most 63 characters)"
            )
        if isinstance(value, str):
            url, overrides = value, {}
        elif isinstance(value, Mapping):
            overrides = dict(value)
            url = overrides.pop("url", None)
            if not isinstance(url, str) or not url.strip():
                raise _config_error(name, "url", "a URL string is required")
        else:
            raise _config_error(
                name, None, f"expected a URL or a table of fields, got {describe_value(value)}"
            )
        for key in overrides:
            if not isinstance(key, str):
                raise _config_error(name, None, f"field names must be strings, got {key!r:.40}")
        scheme = url.split(":", 1)[0].strip() if ":" in url else ""
        if not scheme:
            raise _config_error(name, "url", "the URL has no scheme (postgresql://, https://...)")
        try:
            klass = connector_class(scheme)
        except InvalidConfigError as err:
            raise _config_error(name, "url", err.message) from None
        except ConnectorError as err:  # MissingDependencyError: an extra is not installed
            raise _config_error(name, "url", err.message) from None
        config_class = klass.config_class
        known = {a.name for a in attrs.fields(config_class)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise _config_error(
                name,
                unknown[0],
                f"unknown field(s) {', '.join(unknown)} for {config_class.__name__}; "
                f"known: {', '.join(sorted(known))}",
            )
        try:
            config = config_class.from_url(url, **overrides)
        except InvalidConfigError as err:
            match = _FIELD_PREFIX.match(err.message)
            field = match.group(1) if match and match.group(1) in known else "url"
            message = err.message[match.end() :] if match and field != "url" else err.message
            raise _config_error(name, field, message) from None
        return cls(name=name, connector_class=klass, config=config)


@attrs.frozen(kw_only=True)
class ConnectorHealth:
    """One connector's health, as ``Connectors.health()`` reports it (never raises).

    Attributes:
        name: The connector's name.
        kind: Its technology (``"postgresql"``, ``"http"``...).
        target: Where it points, credentials masked.
        healthy: The ping succeeded.
        state: The lifecycle state after the check (``"connected"``...).
        latency_ms: How long connect + ping took, in milliseconds.
        error_code: The classified error (``ErrorCode`` value) when unhealthy.
        transient: Whether that error may go away by itself.
        error: The error's message (credentials masked).
    """

    name: str
    kind: str
    target: str
    healthy: bool
    state: str
    latency_ms: float | None = None
    error_code: str | None = None
    transient: bool | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The health as JSON-ready data."""
        return attrs.asdict(self)


def _target(config: BaseConfig) -> str:
    try:
        return redact_url(config.connection_string(redact=True), config.secret_query_params())
    except NotImplementedError:
        return ""


def _resolve_env_refs(
    name: str, table: Mapping[str, Any], environ: Mapping[str, str], path: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Replace every ``{ env = "VAR" }`` value of a TOML table with ``$VAR``, at any depth.

    Nested tables count too (an HTTP connector's ``credentials = { token =
    { env = "CRM_TOKEN" } }``): the secrets of every connector can stay out of
    the file. An error names the top-level field, and the nested key in its
    message (``credentials.token: ...``).
    """
    resolved: dict[str, Any] = {}
    for key, value in table.items():
        where = (*path, str(key))
        field = where[0]
        prefix = f"{'.'.join(where)}: " if len(where) > 1 else ""
        if isinstance(value, Mapping) and "env" in value:
            extra = sorted(set(value) - {"env", "default"})
            variable = value["env"]
            if extra or not isinstance(variable, str) or not variable:
                raise _config_error(
                    name,
                    field,
                    f'{prefix}{{ env = "VARIABLE" }} (optionally with default = ...) expected',
                )
            if variable in environ:
                resolved[key] = environ[variable]
            elif "default" in value:
                resolved[key] = value["default"]
            else:
                raise _config_error(
                    name, field, f"{prefix}environment variable {variable} is not set"
                )
        elif isinstance(value, Mapping):
            resolved[key] = _resolve_env_refs(name, value, environ, where)
        else:
            resolved[key] = value
    return resolved


def load_toml(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Read a connectors TOML file into a ``{name: table}`` mapping (env references resolved).

    Raises:
        InvalidConfigError: The file cannot be read, is not TOML, has no
            ``[connectors.NAME]`` tables, or names an unset variable.
    """
    env = os.environ if environ is None else environ
    shown = os.fspath(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise InvalidConfigError(f"{shown}: cannot read the file ({err.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidConfigError(f"{shown}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise InvalidConfigError(f"{shown}: not valid TOML: {err}") from None
    tables = data.get("connectors")
    if not isinstance(tables, Mapping) or not tables:
        raise InvalidConfigError(f"{shown}: no [connectors.NAME] table")
    result: dict[str, Any] = {}
    for name, table in tables.items():
        if isinstance(table, Mapping):
            result[name] = _resolve_env_refs(name, table, env)
        else:
            result[name] = table  # ConnectorSpec.build says what is wrong with it
    return result


class Connectors:
    """Named connectors: built lazily, shared by all threads, checked at load time.

    Args:
        config: ``{name: URL}`` or ``{name: {"url": URL, field: value...}}``.
            Every entry is validated here.

    Raises:
        InvalidConfigError: An entry is invalid; the message and
            ``details["connector"]``/``details["field"]`` name it.

    Example::

        connectors = Connectors({"db": "postgresql://app@db/app", "api": "https://api/v1"})
        connectors.get("db").query("SELECT 1")
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        if config is not None and not isinstance(config, Mapping):
            raise InvalidConfigError(
                f"Connectors needs a mapping of names to URLs, got {describe_value(config)}"
            )
        specs = {name: ConnectorSpec.build(name, value) for name, value in (config or {}).items()}
        self._specs: dict[str, ConnectorSpec] = specs  # never mutated after __init__
        self._lock = _fork.create_lock()  # guards _built and _closed (memory only)
        self._built: dict[str, Connector[Any, Any]] = {}  # guarded by _lock
        self._closed = False  # guarded by _lock

    # ---------------------------------------------------------- constructors

    @classmethod
    def from_toml(
        cls, path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
    ) -> Connectors:
        """Load the ``[connectors.NAME]`` tables of a TOML file (see the module docstring).

        Raises:
            InvalidConfigError: The file or an entry is invalid.
        """
        return cls(load_toml(path, environ))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Connectors:
        """Every ``DICTAMESH_CONNECTOR_<NAME>_URL`` variable, with its field overrides.

        ``DICTAMESH_CONNECTOR_ORDERS_DB_URL`` defines ``orders_db``;
        ``DICTAMESH_CONNECTOR_ORDERS_DB_MAX_OPEN_CONNS`` (any field, upper
        case) overrides a field of it.

        Raises:
            InvalidConfigError: A variable holds a bad value.
        """
        return cls(env_config(environ))

    @classmethod
    def load(
        cls,
        source: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Connectors:
        """A mapping, a TOML file path, or (``None``) the environment: what frameworks pass.

        Raises:
            InvalidConfigError: The configuration is invalid.
        """
        if source is None:
            return cls.from_env(environ)
        if isinstance(source, (str, os.PathLike)):
            return cls.from_toml(source, environ)
        return cls(source)

    # ---------------------------------------------------------------- access

    @property
    def names(self) -> list[str]:
        """The configured names, in configuration order."""
        return list(self._specs)

    def spec(self, name: str) -> ConnectorSpec:
        """The validated configuration of ``name`` (no connector is built).

        Raises:
            InvalidConfigError: No connector has that name.
        """
        try:
            return self._specs[name]
        except (KeyError, TypeError):
            known = ", ".join(self._specs) or "(none)"
            shown = repr(name)[:60] if isinstance(name, str) else describe_value(name)
            raise InvalidConfigError(
                f"no connector named {shown}; configured: {known}",
                details={"connector": name if isinstance(name, str) else None},
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __getitem__(self, name: str) -> Connector[Any, Any]:
        return self.get(name)

    def get(self, name: str, *, connect: bool = True) -> Connector[Any, Any]:
        """The connector named ``name``: built on first use, then shared.

        Args:
            name: A configured name.
            connect: Connect it (idempotent, and cheap once connected);
                ``False`` returns it as it is.

        Raises:
            InvalidConfigError: No connector has that name.
            NotConnectedError: ``close_all()`` was called.
            ConnectorError: Connecting failed (the next call tries again).
        """
        spec = self.spec(name)
        with self._lock:  # _built, _closed: construction does no I/O
            if self._closed:
                raise NotConnectedError(
                    f"connectors: closed, {name!r} is no longer available", connector=spec.name
                )
            connector = self._built.get(name)
            if connector is None:
                connector = spec.connector_class(spec.config)
                self._built[name] = connector
                built = True
            else:
                built = False
        if built:
            logger.debug("connectors: built %r (%s)", name, spec.target)
        if connect:
            connector.connect()  # network I/O, outside our lock; safe to race
        return connector

    def typed(self, name: str, kind: type[C], *, connect: bool = True) -> C:
        """``get(name)``, checked to be a ``kind`` (for a precise static type).

        Raises:
            InvalidConfigError: No such name, or it is not a ``kind``.
            ConnectorError: Connecting failed.
        """
        spec = self.spec(name)
        if not issubclass(spec.connector_class, kind):
            raise InvalidConfigError(
                f"connector {name!r} is a {spec.connector_class.__name__}, not a {kind.__name__}",
                details={"connector": name, "field": "url"},
            )
        connector = self.get(name, connect=connect)
        assert isinstance(connector, kind)
        return connector

    def postgresql(self, name: str) -> PostgreSQLConnector:
        """The ``PostgreSQLConnector`` named ``name`` (see ``typed``)."""
        from dictamesh_connectors.postgresql.connector import PostgreSQLConnector

        return self.typed(name, PostgreSQLConnector)

    def http(self, name: str) -> HTTPConnector:
        """The ``HTTPConnector`` named ``name`` (see ``typed``)."""
        from dictamesh_connectors.http.connector import HTTPConnector

        return self.typed(name, HTTPConnector)

    def kafka(self, name: str) -> KafkaConnector:
        """The ``KafkaConnector`` named ``name`` (see ``typed``)."""
        from dictamesh_connectors.kafka.connector import KafkaConnector

        return self.typed(name, KafkaConnector)

    def mongodb(self, name: str) -> MongoDBConnector:
        """The ``MongoDBConnector`` named ``name`` (see ``typed``)."""
        from dictamesh_connectors.mongodb.connector import MongoDBConnector

        return self.typed(name, MongoDBConnector)

    def file(self, name: str) -> FileConnector:
        """The ``FileConnector`` named ``name`` (see ``typed``)."""
        from dictamesh_connectors.file.connector import FileConnector

        return self.typed(name, FileConnector)

    def built(self) -> dict[str, Connector[Any, Any]]:
        """The connectors built so far, by name (a snapshot)."""
        with self._lock:  # _built
            return dict(self._built)

    # ---------------------------------------------------------------- health

    def health(
        self, timeout: float | None = 5.0, names: list[str] | None = None
    ) -> dict[str, ConnectorHealth]:
        """Connect and ping every connector (or ``names``) at once; never raises for them.

        Each check runs in its own thread, so a slow server costs its own
        timeout, not the sum.

        Args:
            timeout: Seconds each ping may take (``None``: the connector's
                own default).
            names: Only these (default: every configured name).

        Returns:
            ``{name: ConnectorHealth}`` in configuration order.

        Raises:
            InvalidConfigError: ``timeout`` is not a positive number of
                seconds, or a name is not configured.
        """
        timeout = check_timeout(timeout, positive=True)
        wanted = list(self._specs) if names is None else [self.spec(n).name for n in names]
        results: dict[str, ConnectorHealth] = {}

        def check(name: str) -> None:
            results[name] = self._check_one(name, timeout)

        threads = [
            threading.Thread(target=check, args=(n,), name=f"health-{n}", daemon=True)
            for n in wanted
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {name: results[name] for name in wanted}

    def _check_one(self, name: str, timeout: float | None) -> ConnectorHealth:
        spec = self._specs[name]
        kind = spec.connector_class.name
        start = time.monotonic()
        connector: Connector[Any, Any] | None = None
        try:
            connector = self.get(name)
            connector.ping(timeout=timeout)
        except ConnectorError as err:
            return ConnectorHealth(
                name=name,
                kind=kind,
                target=spec.target,
                healthy=False,
                state=connector.state.value if connector is not None else "disconnected",
                latency_ms=(time.monotonic() - start) * 1000,
                error_code=err.code.value,
                transient=err.transient,
                error=err.message,
            )
        except Exception as err:  # a bug in a third-party connector: still a report
            logger.warning("connectors: health check of %r raised", name, exc_info=True)
            return ConnectorHealth(
                name=name,
                kind=kind,
                target=spec.target,
                healthy=False,
                state=connector.state.value if connector is not None else "disconnected",
                error_code=ErrorCode.INTERNAL.value,
                transient=False,
                error=type(err).__name__,
            )
        return ConnectorHealth(
            name=name,
            kind=kind,
            target=spec.target,
            healthy=True,
            state=connector.state.value,
            latency_ms=(time.monotonic() - start) * 1000,
        )

    # -------------------------------------------------------------- shutdown

    def close_all(self, timeout: float | None = 30.0) -> None:
        """Drain and close every built connector within one overall deadline.

        The connectors drain in parallel, each until the same deadline, so
        the call returns within about ``timeout`` however many there are.
        Afterwards ``get()`` raises ``NotConnectedError``. Idempotent.

        Args:
            timeout: Seconds for all of them together (``None``: wait for
                every in-flight operation).

        Raises:
            InvalidConfigError: ``timeout`` is NaN, negative or over 7 days.
        """
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:  # _built, _closed
            self._closed = True
            connectors, self._built = list(self._built.items()), {}

        def close(name: str, connector: Connector[Any, Any]) -> None:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                connector.disconnect(timeout=remaining)
            except Exception:
                logger.warning("connectors: closing %r failed", name, exc_info=True)

        threads = [
            threading.Thread(target=close, args=item, name=f"close-{item[0]}", daemon=True)
            for item in connectors
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic()) + 1.0
            thread.join(left)
        if connectors:
            logger.debug("connectors: closed %s", ", ".join(name for name, _ in connectors))

    def reopen(self) -> None:
        """Allow ``get()`` again after ``close_all()`` (connectors are rebuilt lazily)."""
        with self._lock:  # _closed
            self._closed = False

    def reset_after_fork(self) -> None:
        """In a forked child: make every built connector drop the parent's handle now.

        The fork hook already does this (and each connector checks its pid
        on the next operation); this is idempotent and cheap. Celery's
        ``worker_process_init`` handler calls it.
        """
        for connector in self.built().values():
            connector._after_fork_in_child()

    def __enter__(self) -> Connectors:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close_all()

    def __repr__(self) -> str:
        with self._lock:  # _built
            built = set(self._built)
        shown = ", ".join(f"{n}{'*' if n in built else ''}" for n in self._specs)
        return f"<Connectors {shown} (*: built)>"


def env_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``{name: table}`` mapping the ``DICTAMESH_CONNECTOR_*`` variables define.

    Raises:
        InvalidConfigError: A field variable holds a bad value.
    """
    env = os.environ if environ is None else environ
    result: dict[str, Any] = {}
    for key in sorted(env):
        match = _ENV_URL.match(key)
        if not match:
            continue
        upper = match.group(1)
        name = upper.lower()
        prefix = f"{ENV_PREFIX}{upper}_"
        table: dict[str, Any] = {"url": env[key]}
        url = env[key]
        scheme = url.split(":", 1)[0].strip() if ":" in url else ""
        try:
            fields = [a.name for a in attrs.fields(connector_class(scheme).config_class)]
        except ConnectorError:
            fields = []  # ConnectorSpec.build reports the bad URL
        for field in fields:
            variable = prefix + field.upper()
            if variable in env and field != "url":
                table[field] = env[variable]
        result[name] = table
    return result
