"""``MongoDBConfig``: where and how to connect, pool sizes, timeouts, concerns.

Pure data (no pymongo import): it validates, compares, pickles and builds
from a ``mongodb://`` / ``mongodb+srv://`` URL or the environment without the
driver installed. Every bad value or combination raises
``InvalidConfigError`` naming the field, before any I/O.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs

from dictamesh_connectors.config import (
    BaseConfig,
    Secret,
    bool_field,
    describe_value,
    field_converter,
    float_field,
    int_field,
    parse_url,
    query_params,
    secret_field,
    str_field,
    to_bool,
    url_userinfo,
)
from dictamesh_connectors.errors import InvalidConfigError

__all__ = [
    "AUTH_MECHANISMS",
    "READ_CONCERNS",
    "READ_PREFERENCES",
    "UUID_REPRESENTATIONS",
    "MongoDBConfig",
]

READ_PREFERENCES = frozenset(
    {"primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"}
)
"""The read preference modes (pymongo ``readPreference``)."""

READ_CONCERNS = frozenset({"local", "available", "majority", "linearizable", "snapshot"})
"""The read concern levels (pymongo ``readConcernLevel``)."""

AUTH_MECHANISMS = frozenset(
    {
        "DEFAULT",
        "SCRAM-SHA-1",
        "SCRAM-SHA-256",
        "MONGODB-X509",
        "MONGODB-AWS",
        "MONGODB-OIDC",
        "GSSAPI",
        "PLAIN",
    }
)
"""The authentication mechanisms pymongo knows (pymongo ``authMechanism``)."""

UUID_REPRESENTATIONS = frozenset(
    {"standard", "pythonLegacy", "javaLegacy", "csharpLegacy", "unspecified"}
)
"""How ``uuid.UUID`` values are encoded (pymongo ``uuidRepresentation``)."""

MAX_TIMEOUT = 86_400.0
"""The largest timeout any field accepts, in seconds (one day)."""
MAX_POOL_SIZE = 10_000
"""The largest ``max_pool_size`` (and ``min_pool_size``)."""
MAX_HOSTS = 1_000
"""The most seed hosts a config may list."""

# URI option (lower-cased) -> (field, unit): "ms" options are milliseconds in
# the URI and seconds in the config.
_URI_OPTIONS: dict[str, tuple[str, str]] = {
    "appname": ("app_name", ""),
    "authmechanism": ("auth_mechanism", ""),
    "authsource": ("auth_source", ""),
    "connecttimeoutms": ("connect_timeout", "ms"),
    "directconnection": ("direct_connection", ""),
    "heartbeatfrequencyms": ("heartbeat_frequency", "ms"),
    "journal": ("journal", ""),
    "maxidletimems": ("max_idle_time", "ms"),
    "maxpoolsize": ("max_pool_size", ""),
    "minpoolsize": ("min_pool_size", ""),
    "readconcernlevel": ("read_concern", ""),
    "readpreference": ("read_preference", ""),
    "replicaset": ("replica_set", ""),
    "retryreads": ("retry_reads", ""),
    "retrywrites": ("retry_writes", ""),
    "serverselectiontimeoutms": ("server_selection_timeout", "ms"),
    "sockettimeoutms": ("socket_timeout", "ms"),
    "ssl": ("tls", ""),
    "tls": ("tls", ""),
    "tlsallowinvalidhostnames": ("allow_invalid_hostnames", ""),
    "tlscafile": ("ca_file", ""),
    "tlscertificatekeyfile": ("cert_key_file", ""),
    "uuidrepresentation": ("uuid_representation", ""),
    "w": ("w", ""),
    "waitqueuetimeoutms": ("wait_queue_timeout", "ms"),
    "wtimeoutms": ("wtimeout", "ms"),
    "tz_aware": ("tz_aware", ""),
}

# Field -> its pymongo URI option name (connection_string writes these).
_FIELD_TO_URI: dict[str, str] = {
    "app_name": "appName",
    "auth_mechanism": "authMechanism",
    "auth_source": "authSource",
    "connect_timeout": "connectTimeoutMS",
    "direct_connection": "directConnection",
    "heartbeat_frequency": "heartbeatFrequencyMS",
    "journal": "journal",
    "max_idle_time": "maxIdleTimeMS",
    "max_pool_size": "maxPoolSize",
    "min_pool_size": "minPoolSize",
    "read_concern": "readConcernLevel",
    "read_preference": "readPreference",
    "replica_set": "replicaSet",
    "retry_reads": "retryReads",
    "retry_writes": "retryWrites",
    "server_selection_timeout": "serverSelectionTimeoutMS",
    "socket_timeout": "socketTimeoutMS",
    "tls": "tls",
    "allow_invalid_hostnames": "tlsAllowInvalidHostnames",
    "ca_file": "tlsCAFile",
    "cert_key_file": "tlsCertificateKeyFile",
    "uuid_representation": "uuidRepresentation",
    "w": "w",
    "wait_queue_timeout": "waitQueueTimeoutMS",
    "wtimeout": "wTimeoutMS",
    "tz_aware": "tz_aware",
}
_MS_FIELDS = frozenset(field for field, unit in _URI_OPTIONS.values() if unit == "ms")


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidConfigError("must be valid Unicode (no lone surrogates)") from None


def _host(entry: str) -> str:
    """Normalise one ``host[:port]`` seed (``[v6]:port`` for IPv6) to ``host:port``."""
    _encodable(entry)
    entry = entry.strip()
    if not entry or any(c in entry for c in " /?#@\x00"):
        raise InvalidConfigError(f"invalid host {describe_value(entry)}")
    if entry.startswith("["):
        end = entry.find("]")
        if end < 0:
            raise InvalidConfigError(f"invalid IPv6 host {describe_value(entry)}")
        host, rest = entry[: end + 1], entry[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidConfigError(f"invalid host {describe_value(entry)}")
        port_text = rest[1:] if rest else ""
    elif entry.count(":") > 1:
        raise InvalidConfigError("an IPv6 address must be in brackets: [::1]:27017")
    else:
        host, _, port_text = entry.partition(":")
    if not host or host == "[]":
        raise InvalidConfigError(f"invalid host {describe_value(entry)}")
    if port_text == "" and ":" not in entry.removeprefix(host):
        return host
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidConfigError(f"invalid port in host {describe_value(entry)}")
    return f"{host}:{int(port_text)}"


def _hosts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise InvalidConfigError(f"expected host names, got {describe_value(value)}")
    hosts = tuple(_host(h) if isinstance(h, str) else _bad_host(h) for h in value)
    if not hosts:
        raise InvalidConfigError("at least one host is required")
    if len(hosts) > MAX_HOSTS:
        raise InvalidConfigError(f"at most {MAX_HOSTS} hosts")
    return hosts


def _bad_host(value: object) -> str:
    raise InvalidConfigError(f"expected a host string, got {describe_value(value)}")


def _write_w(value: Any) -> int | str | None:
    """``w``: a non-negative node count, ``"majority"`` or a tag set name."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidConfigError(f"expected a node count or a name, got {describe_value(value)}")
    if isinstance(value, str):
        _encodable(value)
        text = value.strip()
        if text.lstrip("-").isdigit():
            value = int(text)
        elif not text or "\x00" in text:
            raise InvalidConfigError("must be a node count, 'majority' or a tag set name")
        else:
            return text
    if isinstance(value, int):
        if not 0 <= value <= 1_000:
            raise InvalidConfigError(f"{describe_value(value)} is not a node count (0..1000)")
        return value
    raise InvalidConfigError(f"expected a node count or a name, got {describe_value(value)}")


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else to_bool(value)


def _check_strings(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str):
        try:
            _encodable(value)
        except InvalidConfigError as err:
            raise InvalidConfigError(f"{attribute.name}: {err.message}") from None


def _converted(default: Any, fn: Any) -> Any:
    return attrs.field(default=default, converter=field_converter(fn))


def _timeout(default: float | None, *, optional: bool = False, minimum: float = 0.0) -> Any:
    return float_field(default, min=minimum, max=MAX_TIMEOUT, optional=optional)


@attrs.frozen(kw_only=True)
class MongoDBConfig(BaseConfig):
    """Configuration of a ``MongoDBConnector``.

    Immutable and validated on construction (a bad value or combination
    raises ``InvalidConfigError`` naming the field), so one instance is safe
    to share between threads and processes; it pickles, and its ``repr``
    never shows the password. Build it with keywords, from a URL or from the
    environment::

        MongoDBConfig(hosts=["db1:27017", "db2:27017"], replica_set="rs0", database="app")
        MongoDBConfig.from_url("mongodb://app:pw@db1,db2/app?replicaSet=rs0&w=majority")
        MongoDBConfig.from_env("APP_MONGO_")   # APP_MONGO_URL, APP_MONGO_DATABASE, ...

    Timeouts are in seconds here and in milliseconds in a URL (as pymongo
    spells them: ``connectTimeoutMS`` and so on). Every timeout accepts at
    most 86,400 s (one day).

    Attributes:
        hosts: Seed list of ``host[:port]`` (IPv6 as ``[::1]:27017``); a
            comma-separated string is split. With ``srv``, exactly one host
            name and no port.
        srv: Resolve the hosts through DNS SRV/TXT records (``mongodb+srv://``).
        database: The database every verb works on (the URL path), default
            ``"test"``, as pymongo's.
        username: The user to authenticate as (pymongo ``username``).
        password: Its password, a ``Secret`` (pymongo ``password``).
        auth_source: Database holding the user (``authSource``); pymongo's
            default is ``database`` or ``admin``.
        auth_mechanism: ``SCRAM-SHA-256``, ``SCRAM-SHA-1``, ``MONGODB-X509``,
            ... (``authMechanism``); ``None`` negotiates.
        replica_set: Replica set name to require (``replicaSet``).
        direct_connection: Talk to the one host given, never discover the
            topology (``directConnection``); ``None`` lets pymongo decide.
        tls: Use TLS (``tls``).
        ca_file: CA certificates to verify the server (``tlsCAFile``).
        cert_key_file: Client certificate and key, PEM (``tlsCertificateKeyFile``).
        allow_invalid_hostnames: Skip the host name check of the server's
            certificate (``tlsAllowInvalidHostnames``).
        max_pool_size: Most connections per server (``maxPoolSize``, 1..10,000).
        min_pool_size: Connections kept open per server (``minPoolSize``).
        max_idle_time: Seconds an idle pooled connection lives
            (``maxIdleTimeMS``); ``None`` keeps it forever.
        wait_queue_timeout: Seconds an operation waits for a free pooled
            connection before RESOURCE_EXHAUSTED (``waitQueueTimeoutMS``).
        connect_timeout: Seconds to open one connection (``connectTimeoutMS``).
        server_selection_timeout: Seconds to find a suitable server before
            UNAVAILABLE (``serverSelectionTimeoutMS``); ``connect()`` proves
            the server within this time.
        socket_timeout: Seconds a socket read or write may block
            (``socketTimeoutMS``); ``None`` waits as long as the server runs
            the operation (a ``timeout=`` argument still bounds one call).
        heartbeat_frequency: Seconds between topology checks
            (``heartbeatFrequencyMS``, 0.5..86,400).
        retry_writes: pymongo retries a retryable write once (``retryWrites``).
        retry_reads: pymongo retries a read once (``retryReads``).
        read_preference: primary, primaryPreferred, secondary,
            secondaryPreferred or nearest (``readPreference``).
        read_concern: local, available, majority, linearizable or snapshot
            (``readConcernLevel``); ``None`` is the server's default.
        w: Write concern: a node count, ``"majority"`` or a tag set name
            (``w``); ``None`` is the server's default.
        journal: Wait for the journal (``journal``, the write concern's ``j``).
        wtimeout: Seconds to wait for the write concern (``wTimeoutMS``).
        app_name: Shown in the server's logs and ``currentOp`` (``appName``).
        uuid_representation: How ``uuid.UUID`` is stored (``uuidRepresentation``);
            ``"standard"`` (binary subtype 4) by default.
        tz_aware: Return timezone-aware ``datetime`` values (UTC), so a
            datetime round-trips with its timezone (pymongo ``tz_aware``).
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("mongodb", "mongodb+srv")

    hosts: tuple[str, ...] = _converted(("localhost:27017",), _hosts)
    srv: bool = bool_field(False)
    database: str = str_field("test", nonempty=True)
    username: str | None = str_field(None, optional=True)
    password: Secret | None = secret_field()
    auth_source: str | None = str_field(None, optional=True)
    auth_mechanism: str | None = str_field(None, optional=True, choices=AUTH_MECHANISMS)
    replica_set: str | None = str_field(None, optional=True)
    direct_connection: bool | None = _converted(None, _optional_bool)
    tls: bool = bool_field(False)
    ca_file: str | None = str_field(None, optional=True)
    cert_key_file: str | None = str_field(None, optional=True)
    allow_invalid_hostnames: bool = bool_field(False)
    max_pool_size: int = int_field(100, min=1, max=MAX_POOL_SIZE)
    min_pool_size: int = int_field(0, min=0, max=MAX_POOL_SIZE)
    max_idle_time: float | None = _timeout(None, optional=True)
    wait_queue_timeout: float = _timeout(30.0)
    connect_timeout: float = _timeout(10.0)
    server_selection_timeout: float = _timeout(10.0)
    socket_timeout: float | None = _timeout(None, optional=True)
    heartbeat_frequency: float = _timeout(10.0, minimum=0.5)
    retry_writes: bool = bool_field(True)
    retry_reads: bool = bool_field(True)
    read_preference: str = str_field("primary", choices=READ_PREFERENCES)
    read_concern: str | None = str_field(None, optional=True, choices=READ_CONCERNS)
    w: int | str | None = _converted(None, _write_w)
    journal: bool | None = _converted(None, _optional_bool)
    wtimeout: float | None = _timeout(None, optional=True)
    app_name: str = str_field("dictamesh-connectors")
    uuid_representation: str = str_field("standard", choices=UUID_REPRESENTATIONS)
    tz_aware: bool = bool_field(True)

    @database.validator
    def _check_database(self, attribute: attrs.Attribute[str], value: str) -> None:
        _check_strings(self, attribute, value)
        if any(c in value for c in '/\\. "$') or len(value.encode("utf-8")) >= 64:
            raise InvalidConfigError(
                'database: a MongoDB database name has no /\\. "$ or space and is under 64 bytes'
            )

    @username.validator
    @auth_source.validator
    @replica_set.validator
    @ca_file.validator
    @cert_key_file.validator
    @app_name.validator
    def _check_text(self, attribute: attrs.Attribute[Any], value: str | None) -> None:
        _check_strings(self, attribute, value)
        if value is not None and not value and attribute.name != "app_name":
            raise InvalidConfigError(f"{attribute.name}: must not be empty")
        if attribute.name == "app_name" and len(value.encode("utf-8")) > 128:  # type: ignore[union-attr]
            raise InvalidConfigError("app_name: at most 128 bytes (the server's limit)")

    @password.validator
    def _check_password(self, _attribute: attrs.Attribute[Any], value: Secret | None) -> None:
        if value is not None:
            try:
                value.get_secret_value().encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidConfigError("password: must be valid Unicode") from None
            if self.username is None and self.auth_mechanism != "MONGODB-OIDC":
                raise InvalidConfigError("password needs username")

    @min_pool_size.validator
    def _check_min_pool(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if value > self.max_pool_size:
            raise InvalidConfigError(
                f"min_pool_size ({value}) cannot exceed max_pool_size ({self.max_pool_size})"
            )

    @direct_connection.validator
    def _check_direct(self, _attribute: attrs.Attribute[Any], value: bool | None) -> None:
        if value and len(self.hosts) > 1:
            raise InvalidConfigError("direct_connection needs exactly one host")
        if value and self.srv:
            raise InvalidConfigError("direct_connection cannot be used with mongodb+srv")

    @srv.validator
    def _check_srv(self, _attribute: attrs.Attribute[bool], value: bool) -> None:
        if not value:
            return
        if len(self.hosts) != 1:
            raise InvalidConfigError("mongodb+srv needs exactly one host name")
        host = self.hosts[0]
        if ":" in host:
            raise InvalidConfigError("mongodb+srv: the host name must not have a port")
        if host.count(".") < 1:
            raise InvalidConfigError("mongodb+srv: the host needs a domain (name.domain)")

    @w.validator
    def _check_w(self, _attribute: attrs.Attribute[Any], value: int | str | None) -> None:
        if value == 0 and self.journal:
            raise InvalidConfigError("w=0 (unacknowledged) cannot be combined with journal=True")

    @cert_key_file.validator
    def _check_tls_files(self, _attribute: attrs.Attribute[Any], value: str | None) -> None:
        if not self.tls and (value is not None or self.ca_file is not None):
            raise InvalidConfigError("ca_file and cert_key_file need tls=True")

    @property
    def target(self) -> str:
        """``database@host1:port,host2`` (``+srv`` marked), the "where" of every message."""
        hosts = ",".join(self.hosts)
        return f"{self.database}@{'srv:' if self.srv else ''}{hosts}"

    @property
    def write_concern(self) -> dict[str, Any]:
        """The write concern document (``w``, ``j``, ``wtimeout`` in ms) the config asks for."""
        concern: dict[str, Any] = {}
        if self.w is not None:
            concern["w"] = self.w
        if self.journal is not None:
            concern["j"] = self.journal
        if self.wtimeout is not None:
            concern["wtimeout"] = math.ceil(self.wtimeout * 1000)
        return concern

    # ------------------------------------------------------------ constructors

    @classmethod
    def _split_url(cls, url: object) -> urllib.parse.SplitResult:
        # A seed list ("mongodb://db1,db2:27018/") has no single port.
        return parse_url(url, cls.url_schemes, check_port=False)

    @classmethod
    def _fields_from_url(cls, parts: urllib.parse.SplitResult) -> dict[str, Any]:
        """Fields of a ``mongodb[+srv]://`` URL: seed list, credentials, database, options.

        Every URI option the config models is read (names case-insensitive,
        ``...MS`` values in milliseconds); an unknown option is an
        ``InvalidConfigError`` that names it.

        ``urllib`` cannot split a multi-host netloc, so the netloc is split here.
        """
        fields: dict[str, Any] = {}
        srv = parts.scheme.lower() == "mongodb+srv"
        if srv:
            fields["srv"] = True
        netloc = parts.netloc
        userinfo, _, hostlist = netloc.rpartition("@")
        if userinfo:
            user, has_password, password = userinfo.partition(":")
            if user:
                fields["username"] = urllib.parse.unquote(user)
            if has_password:
                fields["password"] = urllib.parse.unquote(password)
        if hostlist:
            fields["hosts"] = [urllib.parse.unquote(h) for h in hostlist.split(",")]
        elif srv:
            raise InvalidConfigError("mongodb+srv needs a host name")
        database = urllib.parse.unquote(parts.path.lstrip("/"))
        if database:
            fields["database"] = database
        unknown: list[str] = []
        for key, value in query_params(parts).items():
            option = _URI_OPTIONS.get(key.lower())
            name, unit = option if option else (key, "")
            if option is None and name not in _OWN_FIELDS:
                unknown.append(key)
                continue
            fields[name] = _from_ms(name, value) if unit == "ms" else value
        if unknown:
            shown = ", ".join(repr(k)[:40] for k in sorted(unknown))
            raise InvalidConfigError(
                f"MongoDBConfig: unsupported URI option(s) {shown}; "
                f"supported: {', '.join(sorted(_FIELD_TO_URI.values()))}"
            )
        return fields

    def connection_string(self, redact: bool = True) -> str:
        """A ``mongodb://`` (or ``mongodb+srv://``) URL for this config.

        The password is ``***`` unless ``redact=False``; then
        ``from_url(config.connection_string(redact=False))`` rebuilds an
        equal config (retry policy aside).
        """
        quote = urllib.parse.quote
        userinfo = url_userinfo(self.username, self.password, redact=redact)
        hosts = ",".join(quote(h, safe="[]:") for h in self.hosts)
        query: dict[str, str] = {}
        defaults = _DEFAULTS
        for attribute in attrs.fields(type(self)):
            name = attribute.name
            if name in ("hosts", "srv", "database", "username", "password", "retry"):
                continue
            value = getattr(self, name)
            if value == getattr(defaults, name):
                continue
            key = _FIELD_TO_URI.get(name, name)
            if value is None:
                continue
            if isinstance(value, bool):
                query[key] = "true" if value else "false"
            elif name in _MS_FIELDS:
                query[key] = _ms_text(value)
            else:
                query[key] = str(value)
        scheme = "mongodb+srv" if self.srv else "mongodb"
        suffix = "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote) if query else ""
        return f"{scheme}://{userinfo}{hosts}/{quote(self.database, safe='')}{suffix}"


def _from_ms(name: str, value: str) -> Any:
    """A URI millisecond value as seconds (left as text when not a number)."""
    try:
        number = float(value)
    except ValueError:
        return value  # the field's converter reports it, naming the field
    if not math.isfinite(number):
        return value
    return number / 1000.0


def _ms_text(seconds: float) -> str:
    ms = seconds * 1000.0
    return str(int(ms)) if ms == int(ms) else repr(ms)


# Our own field names a URL may carry too (connection_string writes the ones
# with no pymongo option: auto_reconnect).
_OWN_FIELDS = frozenset({"auto_reconnect"})
_DEFAULTS = MongoDBConfig()
