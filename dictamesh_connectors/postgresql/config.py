"""``PostgreSQLConfig``: where and how to connect, and how big the pool is.

Pure data (no psycopg import): it validates, compares, pickles and builds
from a URL or the environment without the driver installed.
"""

from __future__ import annotations

import re
import sys
import urllib.parse
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import attrs

from dictamesh_connectors._convert import MAX_TIMEOUT, parse_number
from dictamesh_connectors.config import (
    BaseConfig,
    Secret,
    bool_field,
    field_converter,
    float_field,
    int_field,
    query_params,
    secret_field,
    str_field,
    url_credentials,
    url_userinfo,
)
from dictamesh_connectors.errors import InvalidConfigError

__all__ = ["SSL_MODES", "PostgreSQLConfig"]

SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
"""The libpq ``sslmode`` values."""

HEALTH_CHECKS = frozenset({"auto", "always", "off"})

# URL query / libpq parameter names -> our field names.
_URL_ALIASES = {
    "sslmode": "ssl_mode",
    "sslcert": "ssl_cert",
    "sslkey": "ssl_key",
    "sslrootcert": "ssl_root_cert",
    "search_path": "schema",
    "currentschema": "schema",
    "user": "username",
    "dbname": "database",
    "pool_max_conns": "max_open_conns",
    "pool_min_conns": "min_open_conns",
}

# libpq environment variables (https://www.postgresql.org/docs/current/libpq-envars.html).
_LIBPQ_ENV = {
    "PGHOST": "host",
    "PGPORT": "port",
    "PGDATABASE": "database",
    "PGUSER": "username",
    "PGPASSWORD": "password",
    "PGSSLMODE": "ssl_mode",
    "PGSSLCERT": "ssl_cert",
    "PGSSLKEY": "ssl_key",
    "PGSSLROOTCERT": "ssl_root_cert",
    "PGOPTIONS": "options",
    "PGAPPNAME": "application_name",
    "PGCONNECT_TIMEOUT": "connect_timeout",
}


_MAX_CONNS = 10_000
_GUC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")
# psycopg_pool schedules replacements at monotonic() + these: past a few
# weeks nothing is gained, and 1e300 killed its scheduler thread.
_MAX_POOL_SECONDS = 30 * 24 * 3600.0
# The server's statement_timeout is an int of milliseconds.
_MAX_STATEMENT_TIMEOUT = 2_147_483.0
_MIN_OPEN_CONNS = 2

_ALIAS = "max_idle_conns"
_ALIAS_WARNING = (
    "PostgreSQLConfig: max_idle_conns is deprecated, use min_open_conns (the same setting: "
    "psycopg_pool min_size, the connections kept open even when idle)"
)

C = TypeVar("C", bound="PostgreSQLConfig")


def _open_conns(value: Any) -> Any:
    return parse_number(value, integer=True, minimum=0, maximum=_MAX_CONNS)


def _alias_open_conns(value: Any) -> Any:
    if value is None:
        return None
    _warn_deprecated_alias()
    try:
        return _open_conns(value)
    except InvalidConfigError as err:
        raise InvalidConfigError(f"max_idle_conns: {err.message}") from None
    except Exception:  # anything a hostile value trips over is a bad value
        raise InvalidConfigError("max_idle_conns: not a valid number") from None


def _min_open_default(config: Any) -> Any:
    # The deprecated max_idle_conns= keyword, when given, is the default of
    # min_open_conns (its field is declared first, so it is already set).
    alias = config._max_idle_conns
    return _MIN_OPEN_CONNS if alias is None else alias


def _alias_field() -> Any:
    return attrs.field(
        default=None,
        repr=False,
        eq=False,
        alias="max_idle_conns",
        converter=_alias_open_conns,
    )


def _min_open_field() -> Any:
    return attrs.field(
        default=attrs.Factory(_min_open_default, takes_self=True),
        converter=field_converter(_open_conns),
    )


def _warn_deprecated_alias() -> None:
    """Warn about max_idle_conns, attributed to the first caller outside this package."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and (
        frame.f_globals.get("__name__", "").startswith("dictamesh_connectors.")
        or frame.f_code.co_filename.startswith("<attrs generated")
    ):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    warnings.warn(_ALIAS_WARNING, DeprecationWarning, stacklevel=level)


def _take_alias(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with a deprecated ``max_idle_conns`` key renamed ``min_open_conns``.

    Raises:
        InvalidConfigError: Both names given, with different values.
    """
    if "_max_idle_conns" in fields:  # the alias's private slot, not an option
        raise InvalidConfigError("PostgreSQLConfig: unknown option(s) _max_idle_conns")
    if _ALIAS not in fields:
        return fields
    fields = dict(fields)
    alias = fields.pop(_ALIAS)
    _warn_deprecated_alias()
    if "min_open_conns" in fields and str(fields["min_open_conns"]) != str(alias):
        raise InvalidConfigError(
            "min_open_conns and its deprecated alias max_idle_conns disagree; "
            "give min_open_conns only"
        )
    fields["min_open_conns"] = alias
    return fields


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise InvalidConfigError(f"{attribute.name}: must be greater than 0, got {value!r}")


def _option_words(options: str) -> list[str]:
    # libpq splits ``options`` on whitespace; a backslash escapes the next character.
    words, word, escaped = [], "", False
    for ch in options:
        if escaped:
            word, escaped = word + ch, False
        elif ch == "\\":
            escaped = True
        elif ch.isspace():
            if word:
                words.append(word)
            word = ""
        else:
            word += ch
    if word:
        words.append(word)
    return words


def check_server_options(options: str) -> None:
    """Check the ``-c name=value`` / ``--name=value`` settings of libpq ``options``.

    Only what can be known without the server: each setting names a valid
    parameter and has a value. Whether the server accepts the value is known
    at connect (``INVALID_CONFIG``, permanent).

    Raises:
        InvalidConfigError: A setting without a value or with a bad name.
    """
    words = _option_words(options)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-c":
            if i + 1 >= len(words):
                raise InvalidConfigError("'-c' needs a name=value setting after it")
            setting, i = words[i + 1], i + 2
        elif word.startswith("-c") or word.startswith("--"):
            setting, i = word[2:], i + 1
        else:
            i += 1
            continue
        name, sep, _value = setting.partition("=")
        if not sep:
            raise InvalidConfigError(f"setting {name!r:.60} needs a value (name=value)")
        if not _GUC_NAME.fullmatch(name.replace("-", "_")):
            raise InvalidConfigError(f"{name!r:.60} is not a server parameter name")


@attrs.frozen(kw_only=True)
class PostgreSQLConfig(BaseConfig):
    """Configuration of a ``PostgreSQLConnector``.

    Immutable and validated on construction (every bad value raises
    ``InvalidConfigError`` naming the field), so one instance is safe to
    share between threads and processes; it pickles, and its ``repr`` never
    shows the password. Build it with keywords, from a URL or from the
    environment::

        PostgreSQLConfig(host="db", database="app", username="app", password="pw")
        PostgreSQLConfig.from_url("postgresql://app:pw@db:5432/app?sslmode=require")
        PostgreSQLConfig.from_env("APP_DB_")   # APP_DB_URL, APP_DB_HOST, ..., then PG*

    Attributes:
        host: Server host name, IP address or Unix socket directory (libpq ``host``).
        port: Server port (libpq ``port``).
        database: Database name (libpq ``dbname``); ``None`` lets libpq use
            the user name.
        schema: Put first in ``search_path`` on every connection
            (``-c search_path=...`` in the startup packet, no extra round trip).
        username: Role to log in as (libpq ``user``).
        password: The role's password, a ``Secret`` (libpq ``password``).
        max_open_conns: Most connections open at once (psycopg_pool ``max_size``).
        min_open_conns: Connections the pool opens at connect and keeps open,
            idle or not (psycopg_pool ``min_size``): a floor, at most
            ``max_open_conns``. Formerly ``max_idle_conns``, still accepted
            (keyword, URL query, ``{prefix}MAX_IDLE_CONNS``, attribute) with
            a ``DeprecationWarning``.
        conn_max_lifetime: Seconds after which a connection is replaced
            (psycopg_pool ``max_lifetime``, which adds 5% jitter); 1 s to 30 days.
        conn_max_idle_time: Seconds an idle connection above
            ``min_open_conns`` lives before it is closed (psycopg_pool
            ``max_idle``); 1 s to 30 days.
        ssl_mode: libpq ``sslmode``: disable, allow, prefer, require,
            verify-ca or verify-full.
        ssl_cert: Client certificate file (libpq ``sslcert``).
        ssl_key: Client private key file (libpq ``sslkey``).
        ssl_root_cert: CA certificate file to verify the server (libpq ``sslrootcert``).
        options: Extra server options sent at startup (libpq ``options``,
            e.g. ``"-c work_mem=64MB"``). Each must be ``-c name=value``
            (or ``--name=value``) with a valid parameter name, checked here;
            a value the server refuses is ``INVALID_CONFIG`` at connect.
        connect_timeout: Seconds to establish one connection (libpq
            ``connect_timeout``, rounded up to whole seconds, at least 2).
        statement_timeout: Default per-statement limit in seconds, set at
            startup (server ``statement_timeout``); 0 disables it; at most
            2,147,483 s (the server's limit). A ``timeout=`` argument
            overrides it for one statement.
        application_name: Shown in ``pg_stat_activity`` (libpq ``application_name``).
        pool_timeout: Seconds an operation waits for a free connection from
            the pool before raising ``ConnectorTimeoutError``
            (psycopg_pool ``timeout``); above 0, at most 7 days.
        health_check: How a connection is checked when taken from the pool:
            ``"auto"`` (default) reads, without blocking and without a round
            trip, whatever the server sent while the connection sat idle: a
            server that ended the session (restart, failover,
            ``pg_terminate_backend``) sent an error and closed the socket,
            and the connection is discarded. A connection given back less
            than 25 ms earlier skips the read (a system call on the hot
            path of a busy pool), except for a second after any connection
            was found dead. A statement that meets a connection the
            server ended inside that window fails as if the connection had
            dropped mid-flight (reads and ``BEGIN`` are retried once; a
            write outside a transaction raises a transient error with
            ``maybe_applied=True``): never a silently lost write.
            ``"always"`` pings the server
            every time (one extra round trip per operation, like
            SQLAlchemy's ``pool_pre_ping``; also catches connections dropped
            silently by the network). ``"off"`` trusts the pool.
        retry_reads: Retry a read outside a transaction once, on a fresh
            connection, when its connection was lost.
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres")
    secret_params: ClassVar[frozenset[str]] = frozenset({"password", "sslpassword"})

    host: str = str_field("localhost", nonempty=True)
    port: int = int_field(5432, min=1, max=65535)
    database: str | None = str_field(None, optional=True)
    schema: str | None = str_field(None, optional=True)
    username: str | None = str_field(None, optional=True)
    password: Secret | None = secret_field()
    max_open_conns: int = int_field(10, min=1, max=_MAX_CONNS)
    # The deprecated spelling, ``PostgreSQLConfig(max_idle_conns=5)``: declared
    # before min_open_conns, whose default it becomes; None once resolved, so
    # evolve() and pickles carry min_open_conns only (see __attrs_post_init__).
    _max_idle_conns: int | None = _alias_field()
    min_open_conns: int = _min_open_field()
    conn_max_lifetime: float = float_field(3600.0, min=1.0, max=_MAX_POOL_SECONDS)
    conn_max_idle_time: float = float_field(600.0, min=1.0, max=_MAX_POOL_SECONDS)
    ssl_mode: str = str_field("prefer", choices=SSL_MODES)
    ssl_cert: str | None = str_field(None, optional=True)
    ssl_key: str | None = str_field(None, optional=True)
    ssl_root_cert: str | None = str_field(None, optional=True)
    options: str | None = str_field(None, optional=True)
    connect_timeout: float = float_field(10.0, min=1.0, max=3600.0)
    statement_timeout: float = float_field(300.0, min=0.0, max=_MAX_STATEMENT_TIMEOUT)
    application_name: str = str_field("dictamesh-connectors")
    pool_timeout: float = float_field(30.0, min=0.0, max=MAX_TIMEOUT)
    health_check: str = str_field("auto", choices=HEALTH_CHECKS)
    retry_reads: bool = bool_field(True)

    @options.validator
    def _check_options(self, _attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if not value:
            return
        try:
            check_server_options(value)
        except InvalidConfigError as err:
            message = err.message
        else:
            return
        raise InvalidConfigError(f"options: {message}")

    @pool_timeout.validator
    def _check_pool_timeout(self, attribute: attrs.Attribute[float], value: float) -> None:
        _positive(self, attribute, value)

    @min_open_conns.validator
    def _check_min_open(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if value > self.max_open_conns:
            name = "min_open_conns" if self._max_idle_conns is None else "max_idle_conns"
            raise InvalidConfigError(
                f"{name} ({value}) cannot exceed max_open_conns ({self.max_open_conns})"
            )

    def __attrs_post_init__(self) -> None:
        alias = self._max_idle_conns
        if alias is None:
            return
        object.__setattr__(self, "_max_idle_conns", None)
        if alias != self.min_open_conns:
            raise InvalidConfigError(
                "min_open_conns and its deprecated alias max_idle_conns disagree; "
                "give min_open_conns only"
            )

    @property
    def max_idle_conns(self) -> int:
        """Deprecated: ``min_open_conns`` (psycopg_pool ``min_size``), under its old name."""
        _warn_deprecated_alias()
        return self.min_open_conns

    @ssl_key.validator
    def _check_key(self, _attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and self.ssl_cert is None:
            raise InvalidConfigError("ssl_key needs ssl_cert")

    @schema.validator
    def _check_schema(self, _attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and not value:
            raise InvalidConfigError("schema: must not be empty")

    @classmethod
    def create(cls: type[C], **fields: Any) -> C:
        """Build the config from keyword fields (``max_idle_conns`` still accepted, deprecated).

        Raises:
            InvalidConfigError: An unknown field name or a bad value.
        """
        return super().create(**_take_alias(fields))

    def evolve(self: C, **changes: Any) -> C:
        """Return a copy with ``changes`` applied (``max_idle_conns`` still accepted, deprecated).

        Raises:
            InvalidConfigError: An unknown field name or a bad value.
        """
        return super().evolve(**_take_alias(changes))

    @property
    def target(self) -> str:
        """``database@host:port``, the "where" of every error message (no credentials)."""
        return f"{self.database or self.username or ''}@{self.host}:{self.port}"

    # ------------------------------------------------------------ constructors

    @classmethod
    def _fields_from_url(cls, parts: urllib.parse.SplitResult) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if parts.hostname:
            fields["host"] = urllib.parse.unquote(parts.hostname)
        if parts.port is not None:
            fields["port"] = parts.port
        database = urllib.parse.unquote(parts.path.lstrip("/"))
        if database:
            fields["database"] = database
        fields.update(url_credentials(parts))
        for key, value in query_params(parts).items():
            fields[_URL_ALIASES.get(key, key)] = value
        return fields

    @classmethod
    def _fields_from_environ(cls, environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
        """The libpq ``PG*`` variables, for the fields ``{prefix}URL`` does not set.

        Precedence, lowest first: ``PG*`` variables, ``{prefix}URL``, then
        each ``{prefix}{FIELD}`` variable.
        """
        fields = {
            name: environ[var] for var, name in _LIBPQ_ENV.items() if environ.get(var, "") != ""
        }
        if prefix + "MAX_IDLE_CONNS" in environ:  # the deprecated name of {prefix}MIN_OPEN_CONNS
            fields[_ALIAS] = environ[prefix + "MAX_IDLE_CONNS"]
        url = environ.get(prefix + "URL")
        if url:
            for name in cls._fields_from_url(cls._split_url(url)):
                fields.pop(name, None)
        return fields

    def connection_string(self, redact: bool = True) -> str:
        """A ``postgresql://`` URL for this config (password ``***`` unless ``redact=False``).

        ``from_url(config.connection_string(redact=False))`` rebuilds an equal
        config (retry policy aside).
        """
        quote = urllib.parse.quote
        userinfo = url_userinfo(self.username, self.password, redact=redact)
        host = self.host
        query: dict[str, str] = {}
        if host.startswith("/") or "," in host:
            query["host"] = host
            host = ""
        elif ":" in host:
            host = f"[{host}]"
        netloc = f"{userinfo}{quote(host, safe='[]:')}:{self.port}" if host else userinfo
        path = "/" + quote(self.database, safe="") if self.database else ""
        defaults = PostgreSQLConfig()
        for attribute in attrs.fields(type(self)):
            name = attribute.name
            if name in ("host", "port", "database", "username", "password", "retry") or (
                name.startswith("_")
            ):
                continue
            value = getattr(self, name)
            if value == getattr(defaults, name) or value is None:
                continue
            query[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        suffix = "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote) if query else ""
        return f"postgresql://{netloc}{path}{suffix}"
