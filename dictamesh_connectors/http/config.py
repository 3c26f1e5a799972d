"""``HTTPConfig``, ``Credentials`` and ``AuthType``: pure data, no driver import.

The HTTP connector's configuration. Nothing here imports ``requests`` or
``urllib3``; the connector maps each knob onto them (the docstrings say
where).
"""

from __future__ import annotations

import enum
import json
import re
import urllib.parse
from collections.abc import Collection, Iterable, Mapping
from typing import Any, ClassVar

import attrs

from dictamesh_connectors._convert import MAX_TIMEOUT
from dictamesh_connectors._version import __version__
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
    url_credentials,
    url_userinfo,
)
from dictamesh_connectors.errors import InvalidConfigError

__all__ = ["AuthType", "Credentials", "HTTPConfig"]

DEFAULT_USER_AGENT = f"dictamesh-connectors/{__version__}"

# RFC 9110 token: header field names and methods.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Field values: visible ASCII/obs-text plus SP and HTAB; no CR, LF or NUL.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9._\-\[\]:]+$")

# The documented maxima of the numeric fields (docs/http.md, "Configuration").
MAX_RESPONSE_BYTES = 1 << 40
"""``max_response_bytes`` at most 1 TiB (0 = no limit)."""
MAX_RATE = 1_000_000.0
"""``rate_limit`` at most a million requests per second (0 = no limit)."""
MAX_BURST = 1_000_000
"""``rate_limit_burst`` at most a million requests."""
MAX_REFRESH_MARGIN = 86_400.0
"""``oauth2_refresh_margin`` at most a day."""


def _encodes(value: str, encoding: str) -> bool:
    """Whether ``value`` encodes (never raises: a failed encode keeps the text in ``.object``)."""
    try:
        value.encode(encoding)
    except UnicodeError:
        return False
    return True


class AuthType(str, enum.Enum):
    """How the connector authenticates its requests.

    An enum: immutable, safe to share between threads. Strings work too
    (``auth_type="oauth2"``).
    """

    NONE = "none"
    """No credentials are sent."""
    BASIC = "basic"
    """HTTP Basic (``credentials.username`` / ``credentials.password``)."""
    BEARER = "bearer"
    """A static bearer token (``credentials.token``)."""
    APIKEY = "apikey"
    """An API key in a header or query parameter (``credentials.api_key``)."""
    OAUTH2 = "oauth2"
    """OAuth2 client credentials grant, with a cached, auto-refreshed token."""


def _auth_type(value: Any) -> AuthType | None:
    if value is None or isinstance(value, AuthType):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower().replace("_", "").replace("-", "")
        if lowered == "":
            return None
        aliases = {"apikey": AuthType.APIKEY, "oauth": AuthType.OAUTH2, "token": AuthType.BEARER}
        if lowered in aliases:
            return aliases[lowered]
        try:
            return AuthType(lowered)
        except ValueError:
            pass
    raise InvalidConfigError(
        f"expected one of {', '.join(t.value for t in AuthType)}, got {describe_value(value)}"
    )


def check_header(name: object, value: object) -> tuple[str, str]:
    """Check one header (no CR/LF/NUL, a valid field name) and return it as strings.

    Raises:
        InvalidConfigError: The name or value is not a string, or could inject
            a header or a request line.
    """
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise InvalidConfigError(f"invalid header name {name!r:.40}")
    if isinstance(value, bytes):
        try:
            value = value.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any bytes
            raise InvalidConfigError(f"invalid value for header {name}") from None
    if not isinstance(value, str):
        raise InvalidConfigError(f"header {name}: expected a string, got {type(value).__name__}")
    if not _encodes(value, "latin-1"):
        # HTTP/1.1 sends header values as latin-1; never echo it (a credential?).
        raise InvalidConfigError(
            f"header {name}: value is not latin-1 text (encode it first, e.g. RFC 8187)"
        )
    if _BAD_VALUE.search(value):
        # Never echo the value: it may be a credential.
        raise InvalidConfigError(f"header {name}: value contains CR, LF or control characters")
    return name, value


# Header names whose values are credentials (Authorization, X-API-Key, Cookie, ...).
_SENSITIVE_HEADER = re.compile(r"auth|token|secret|key|passw|cookie|session|signature", re.I)


def is_sensitive_header(name: str, marked: Collection[str] = (), *, keep: str = "") -> bool:
    """Whether header ``name`` carries a credential: masked in reprs, dropped off-origin.

    True for every name the library considers sensitive (``Authorization``,
    ``Cookie``, ``X-API-Key``, ``X-Auth-Token``, ``Private-Token``, ...: any
    name with auth/token/secret/key/passw/cookie/session/signature in it) and
    for the names in ``marked`` (lower case: ``HTTPConfig.sensitive_headers``).

    Args:
        name: The header name.
        marked: Extra names the user marked sensitive (lower case).
        keep: A lower-case name never treated as sensitive (the configured
            Idempotency-Key header, which must follow the request).
    """
    lowered = name.lower()
    if lowered == keep:
        return False
    return lowered in marked or _SENSITIVE_HEADER.search(name) is not None


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> str:
    """``repr`` of headers with the values of credential-looking headers shown as ``***``.

    Used for the ``repr`` of ``HTTPConfig.headers`` and ``Request.headers``,
    so an ``Authorization`` or ``X-API-Key`` header put there never shows in
    a log line, an error tracker or a traceback with locals.
    """
    if headers is None:
        return "None"
    items = headers.items() if isinstance(headers, Mapping) else headers
    shown = [
        (name, "***" if isinstance(name, str) and is_sensitive_header(name) else value)
        for name, value in items
    ]
    return repr(dict(shown)) if isinstance(headers, Mapping) else repr(tuple(shown))


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                raise InvalidConfigError("headers: not a JSON object") from None
        else:
            # "Name: value" pairs separated by newlines or ";" (environment style).
            pairs = []
            for item in re.split(r"[\n;]", text):
                if not item.strip():
                    continue
                name, sep, val = item.partition(":")
                if not sep:
                    raise InvalidConfigError("headers: expected 'Name: value' pairs")
                pairs.append((name.strip(), val.strip()))
            value = pairs
    if isinstance(value, Mapping):
        items: Iterable[Any] = value.items()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise InvalidConfigError(f"expected a mapping of headers, got {describe_value(value)}")
    out = []
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise InvalidConfigError("headers: expected (name, value) pairs")
        out.append(check_header(item[0], item[1]))
    return tuple(out)


def _header_names(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise InvalidConfigError(f"expected a list of header names, got {describe_value(value)}")
    names = set()
    for name in value:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidConfigError(f"invalid header name {describe_value(name)}")
        names.add(name.lower())
    return frozenset(names)


def _hosts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise InvalidConfigError(f"expected a list of host names, got {describe_value(value)}")
    hosts = []
    for host in value:
        if not isinstance(host, str) or not _HOST.fullmatch(host):
            raise InvalidConfigError(f"invalid host name {host!r:.40}")
        hosts.append(host.lower())
    return tuple(sorted(set(hosts)))


def _converted(fn: Any, default: Any = None, factory: Any = None, repr: Any = True) -> Any:
    """A field converted (and checked) by ``fn``; errors become ``InvalidConfigError``."""
    if factory is not None:
        return attrs.field(factory=factory, converter=field_converter(fn), repr=repr)
    return attrs.field(default=default, converter=field_converter(fn), repr=repr)


def _absolute_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidConfigError(f"expected a URL string, got {describe_value(value)}")
    value = value.strip()
    if not value:
        return None
    parts = parse_url(value, ("http", "https"))
    if not parts.hostname:
        raise InvalidConfigError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidConfigError("the URL must not hold credentials")
    return str(value)


@attrs.frozen(kw_only=True)
class Credentials:
    """The secrets ``auth_type`` uses; which ones depends on the type.

    Every secret is a ``Secret`` (plain strings are wrapped); ``repr`` shows
    ``'***'``. Equality is by value. Immutable, so safe to share between threads.

    Example::

        Credentials(token_url="https://auth.example.com/token", client_id="app",
                    client_secret=os.environ["CLIENT_SECRET"], scope="read write")

    Attributes:
        username: Basic auth user name.
        password: Basic auth password.
        token: Static bearer token (``Authorization: Bearer ...``).
        api_key: API key, sent as header ``api_key_name`` or as the query
            parameter of that name (``api_key_in``).
        api_key_name: Header or query parameter name of the API key.
        api_key_in: ``"header"`` (default) or ``"query"``.
        token_url: OAuth2 token endpoint (client credentials grant).
        client_id: OAuth2 client id.
        client_secret: OAuth2 client secret.
        scope: OAuth2 scope (space separated), if the server wants one.
        audience: OAuth2 ``audience`` parameter (Auth0 and others), optional.
        client_auth: How the client authenticates to the token endpoint:
            ``"basic"`` (HTTP Basic, RFC 6749's default) or ``"body"``
            (``client_id``/``client_secret`` form fields).
    """

    username: str | None = str_field(None, optional=True)
    password: Secret | None = secret_field()
    token: Secret | None = secret_field()
    api_key: Secret | None = secret_field()
    api_key_name: str = str_field("X-API-Key", nonempty=True)
    api_key_in: str = str_field("header", choices=frozenset({"header", "query"}))
    token_url: str | None = _converted(_absolute_url)
    client_id: str | None = str_field(None, optional=True)
    client_secret: Secret | None = secret_field()
    scope: str | None = str_field(None, optional=True)
    audience: str | None = str_field(None, optional=True)
    client_auth: str = str_field("basic", choices=frozenset({"basic", "body"}))

    @api_key_name.validator
    def _check_api_key_name(self, _attr: Any, value: str) -> None:
        if not _TOKEN.fullmatch(value):
            raise InvalidConfigError("credentials.api_key_name: not a valid header/parameter name")

    def inferred_auth_type(self) -> AuthType:
        """The auth type these credentials imply (used when ``auth_type`` is not set)."""
        if self.token_url or self.client_id or self.client_secret:
            return AuthType.OAUTH2
        if self.api_key:
            return AuthType.APIKEY
        if self.token:
            return AuthType.BEARER
        if self.username is not None or self.password is not None:
            return AuthType.BASIC
        return AuthType.NONE


def _credentials(value: Any) -> Credentials:
    if value is None:
        return Credentials()
    if isinstance(value, Credentials):
        return value
    if isinstance(value, Mapping):
        known = {a.name for a in attrs.fields(Credentials)}
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise InvalidConfigError(f"unknown credential field(s) {', '.join(unknown)}")
        try:
            return Credentials(**{str(k): v for k, v in value.items()})
        except InvalidConfigError as err:
            raise InvalidConfigError(err.message) from None
    raise InvalidConfigError(f"expected Credentials or a mapping, got {type(value).__name__}")


def _base_url(value: Any) -> str | None:
    url = _absolute_url(value)
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        raise InvalidConfigError("base_url must not have a query string or fragment")
    return url


def _health_method(value: Any) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value.strip()):
        raise InvalidConfigError(f"not an HTTP method: {describe_value(value)}")
    return value.strip().upper()


# Fields from_url and connection_string carry as query parameters.
_URL_OPTIONS = (
    "timeout",
    "connect_timeout",
    "max_retries",
    "skip_verify",
    "verify",
    "ca_bundle",
    "client_cert",
    "client_key",
    "auth_type",
    "max_idle_conns",
    "max_idle_conns_per_host",
    "max_conns_per_host",
    "pool_block",
    "pool_timeout",
    "user_agent",
    "max_response_bytes",
    "allowed_hosts",
    "follow_redirects",
    "max_redirects",
    "rate_limit",
    "rate_limit_burst",
    "trust_env",
    "auto_reconnect",
)


@attrs.frozen(kw_only=True)
class HTTPConfig(BaseConfig):
    """Configuration of an ``HTTPConnector``.

    Pure data: frozen, validated on construction, compares by value, pickles;
    immutable, so one instance is safely shared by any number of threads and
    connectors. Build it directly, with
    ``from_url("https://user:pw@host/base?timeout=5")`` or with
    ``from_env("MYAPI_")``; vary it with ``evolve(timeout=5)``.

    Example::

        config = HTTPConfig(
            base_url="https://api.example.com/v1",
            timeout=10,
            credentials={"token": os.environ["API_TOKEN"]},
        )

    Attributes:
        base_url: ``http(s)://host[:port][/base/path]``; request paths are
            joined onto it. Required.
        timeout: Read timeout in seconds (urllib3 ``Timeout(read=...)``): the
            longest wait for the server between bytes.
        connect_timeout: Seconds to establish a TCP (and TLS) connection.
        max_retries: Retries after the first attempt; when set it overrides
            ``retry.max_attempts`` (``max_retries=2`` is 3 attempts).
        verify: Verify the server's TLS certificate (default on).
        skip_verify: Turn verification off; logs a warning once per process.
        ca_bundle: Path of a PEM CA bundle to verify against instead of the
            system/certifi store.
        client_cert: Path of a PEM client certificate (mTLS); may hold the key.
        client_key: Path of the client certificate's private key, if separate.
        auth_type: ``AuthType``; inferred from ``credentials`` when not given.
        credentials: The secrets (``Credentials`` or a mapping of its fields).
        max_idle_conns: Number of per-host connection pools kept (requests
            ``pool_connections``); pools beyond it are closed LRU-first.
        max_idle_conns_per_host: Idle keep-alive connections kept per host
            (urllib3 ``maxsize``). Set it to at least your thread count.
        max_conns_per_host: Hard cap on connections per host (0 = no cap).
            When set, threads wait up to ``pool_timeout`` for a connection.
        pool_block: Wait for a free connection when the pool is full instead
            of opening an extra, throw-away one (urllib3 ``block``).
        pool_timeout: Seconds to wait for a free pooled connection when
            blocking; then ``RESOURCE_EXHAUSTED``.
        headers: Default headers sent with every request (mapping, pairs, or
            ``"Name: value; Name2: value"``).
        user_agent: The ``User-Agent`` header.
        max_response_bytes: Largest response body accepted; more is
            ``PAYLOAD_TOO_LARGE`` (0 = no limit, not recommended).
        allowed_hosts: Extra hosts (``host`` or ``host:port``, ``*.domain``)
            that absolute URLs may point at. Credentials are never sent to them.
        follow_redirects: Follow 301/302/303/307/308 (the connector does it
            itself, stripping credentials when the origin changes).
        max_redirects: Redirects followed per request before ``PROTOCOL_ERROR``.
        rate_limit: Client-side limit in requests per second shared by all
            threads (0 = off).
        rate_limit_burst: Requests allowed at once before the rate applies
            (0 = ``ceil(rate_limit)``).
        health_method: Method of the ``ping()`` request.
        health_path: Path of the ``ping()`` request, joined to ``base_url``.
        health_ok_below: ``ping()`` is healthy when the status is below this.
        idempotency_header: Header carrying an idempotency key.
        auto_idempotency_key: Give every POST/PATCH a fresh UUID key (so it
            may be retried); enable only if the server honours the header.
        oauth2_refresh_margin: Seconds before expiry an OAuth2 token is
            refreshed (capped at a fifth of the token's lifetime).
        trust_env: Honour ``HTTP(S)_PROXY``/``NO_PROXY`` from the environment.
        sensitive_headers: Extra header names (any case) that carry
            credentials: masked like ``Authorization`` and dropped when a
            redirect leaves the origin (every name ``is_sensitive_header``
            recognises already is).

    Maxima (larger values are ``InvalidConfigError``): ``timeout``,
    ``connect_timeout`` and ``pool_timeout`` 7 days (``MAX_TIMEOUT``);
    ``max_response_bytes`` 1 TiB; ``rate_limit`` 1,000,000/s;
    ``rate_limit_burst`` 1,000,000; ``oauth2_refresh_margin`` 1 day;
    ``max_redirects`` and ``max_retries`` 100; pool sizes 100,000.
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("http", "https")
    secret_params: ClassVar[frozenset[str]] = frozenset({"token", "client_secret", "api_key"})
    """The secret query parameters ``from_url`` reads (see ``secret_query_params``)."""
    url_path_may_hold_at: ClassVar[bool] = True  # "/users/a@b", "?email=a@b"

    base_url: str | None = _converted(_base_url)
    timeout: float = float_field(30.0, min=0.001, max=MAX_TIMEOUT)
    connect_timeout: float = float_field(10.0, min=0.001, max=MAX_TIMEOUT)
    max_retries: int | None = int_field(None, min=0, max=100, optional=True)
    verify: bool = bool_field(True)
    skip_verify: bool = bool_field(False)
    ca_bundle: str | None = str_field(None, optional=True)
    client_cert: str | None = str_field(None, optional=True)
    client_key: str | None = str_field(None, optional=True)
    auth_type: AuthType = _converted(_auth_type)
    credentials: Credentials = _converted(_credentials, factory=Credentials)
    max_idle_conns: int = int_field(100, min=1, max=100_000)
    max_idle_conns_per_host: int = int_field(10, min=1, max=100_000)
    max_conns_per_host: int = int_field(0, min=0, max=100_000)
    pool_block: bool = bool_field(False)
    pool_timeout: float = float_field(30.0, min=0.0, max=MAX_TIMEOUT)
    headers: tuple[tuple[str, str], ...] = _converted(_headers, (), repr=redact_headers)
    user_agent: str = str_field(DEFAULT_USER_AGENT)
    max_response_bytes: int = int_field(100 * 1024 * 1024, min=0, max=MAX_RESPONSE_BYTES)
    allowed_hosts: tuple[str, ...] = _converted(_hosts, ())
    follow_redirects: bool = bool_field(True)
    max_redirects: int = int_field(10, min=0, max=100)
    rate_limit: float = float_field(0.0, min=0.0, max=MAX_RATE)
    rate_limit_burst: int = int_field(0, min=0, max=MAX_BURST)
    health_method: str = _converted(_health_method, "HEAD")
    health_path: str = str_field("")
    health_ok_below: int = int_field(500, min=100, max=1000)
    idempotency_header: str = str_field("Idempotency-Key", nonempty=True)
    auto_idempotency_key: bool = bool_field(False)
    oauth2_refresh_margin: float = float_field(30.0, min=0.0, max=MAX_REFRESH_MARGIN)
    trust_env: bool = bool_field(False)
    sensitive_headers: frozenset[str] = _converted(_header_names, frozenset())

    def __attrs_post_init__(self) -> None:
        if self.auth_type is None:
            object.__setattr__(self, "auth_type", self.credentials.inferred_auth_type())
        if self.max_retries is not None and self.retry.max_attempts != self.max_retries + 1:
            object.__setattr__(
                self, "retry", attrs.evolve(self.retry, max_attempts=self.max_retries + 1)
            )
        self._check()

    def _check(self) -> None:
        if self.base_url is None:
            raise InvalidConfigError("HTTPConfig: base_url is required")
        if self.client_key and not self.client_cert:
            raise InvalidConfigError("HTTPConfig: client_key needs client_cert")
        if self.max_conns_per_host and self.max_idle_conns_per_host > self.max_conns_per_host:
            # urllib3 has one maxsize: a hard cap wins over the idle count.
            object.__setattr__(self, "max_idle_conns_per_host", self.max_conns_per_host)
        if not _TOKEN.fullmatch(self.idempotency_header):
            raise InvalidConfigError("HTTPConfig: idempotency_header is not a valid header name")
        for char in "\r\n\x00":
            if char in self.user_agent or char in self.health_path:
                raise InvalidConfigError("HTTPConfig: CR/LF/NUL in user_agent or health_path")
        self._check_text()
        creds, kind = self.credentials, self.auth_type
        if kind is AuthType.BASIC and creds.username is None:
            raise InvalidConfigError("HTTPConfig: auth_type basic needs credentials.username")
        if kind is AuthType.BEARER and not creds.token:
            raise InvalidConfigError("HTTPConfig: auth_type bearer needs credentials.token")
        if kind is AuthType.APIKEY and not creds.api_key:
            raise InvalidConfigError("HTTPConfig: auth_type apikey needs credentials.api_key")
        if kind is AuthType.OAUTH2:
            missing = [
                name
                for name in ("token_url", "client_id", "client_secret")
                if not getattr(creds, name)
            ]
            if missing:
                names = ", ".join(f"credentials.{name}" for name in missing)
                raise InvalidConfigError(f"HTTPConfig: auth_type oauth2 needs {names}")

    def _check_text(self) -> None:
        """Every text field encodes for where it goes, before any I/O.

        Everything must be UTF-8 (no lone surrogates); what travels in a
        header (``user_agent``, a bearer token, an API key sent as a header)
        must be latin-1 text without control characters. Messages name the
        field, never the value.
        """
        creds = self.credentials
        for owner, prefix in ((self, ""), (creds, "credentials.")):
            for field in attrs.fields(type(owner)):
                value = getattr(owner, field.name)
                if isinstance(value, Secret):
                    value = value.get_secret_value()
                if isinstance(value, str) and not _encodes(value, "utf-8"):
                    raise InvalidConfigError(
                        f"HTTPConfig: {prefix}{field.name} is not valid text (lone surrogate)"
                    )
        in_header = [("user_agent", self.user_agent)]
        if self.auth_type is AuthType.BEARER and creds.token:
            in_header.append(("credentials.token", creds.token.get_secret_value()))
        if self.auth_type is AuthType.APIKEY and creds.api_key and creds.api_key_in == "header":
            in_header.append(("credentials.api_key", creds.api_key.get_secret_value()))
        for name, text in in_header:
            if not _encodes(text, "latin-1") or _BAD_VALUE.search(text):
                raise InvalidConfigError(
                    f"HTTPConfig: {name} is sent in a header: it must be latin-1 text "
                    "without control characters"
                )

    def validate(self) -> None:
        """Re-run every field validator and the cross-field checks.

        Raises:
            InvalidConfigError: A value is invalid.
        """
        super().validate()
        self._check()

    def secret_query_params(self) -> frozenset[str]:
        """The query parameters hidden in every URL shown: ``secret_params``, plus
        ``credentials.api_key_name`` (lower case) when the API key travels in the query.
        """
        creds = self.credentials
        if self.auth_type is AuthType.APIKEY and creds.api_key_in == "query":
            return self.secret_params | {creds.api_key_name.lower()}
        return self.secret_params

    @property
    def tls_verify(self) -> bool:
        """Whether server certificates are verified (``verify`` and not ``skip_verify``)."""
        return self.verify and not self.skip_verify

    @classmethod
    def _fields_from_url(cls, parts: urllib.parse.SplitResult) -> dict[str, Any]:
        options = query_params(parts)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        base = urllib.parse.urlunsplit((parts.scheme.lower(), netloc, parts.path, "", ""))
        fields: dict[str, Any] = {"base_url": base}
        credentials: dict[str, Any] = {}
        credentials.update(url_credentials(parts))
        for name in ("api_key", "api_key_name", "api_key_in", "token_url", "client_id", "scope"):
            if name in options:
                credentials[name] = options.pop(name)
        for name in ("token", "client_secret"):
            if name in options:
                credentials[name] = options.pop(name)
        if credentials:
            fields["credentials"] = credentials
        fields.update(options)
        return fields

    @classmethod
    def _fields_from_environ(cls, environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
        credentials: dict[str, Any] = {}
        if environ.get(prefix + "URL"):
            credentials.update(url_credentials(cls._split_url(environ[prefix + "URL"])))
        names = {
            "USERNAME": "username",
            "PASSWORD": "password",
            "TOKEN": "token",
            "API_KEY": "api_key",
            "API_KEY_NAME": "api_key_name",
            "API_KEY_IN": "api_key_in",
            "OAUTH2_TOKEN_URL": "token_url",
            "OAUTH2_CLIENT_ID": "client_id",
            "OAUTH2_CLIENT_SECRET": "client_secret",
            "OAUTH2_SCOPE": "scope",
            "OAUTH2_AUDIENCE": "audience",
            "OAUTH2_CLIENT_AUTH": "client_auth",
        }
        for env_name, field in names.items():
            if prefix + env_name in environ:
                credentials[field] = environ[prefix + env_name]
        return {"credentials": credentials} if credentials else {}

    def connection_string(self, redact: bool = True) -> str:
        """This config as a URL; the password is ``***`` unless ``redact=False``.

        Non-default options become query parameters, so ``from_url`` of the
        unredacted string rebuilds an equal config (default headers, the
        retry policy and non-basic secrets excepted).
        """
        assert self.base_url is not None  # checked on construction
        parts = urllib.parse.urlsplit(self.base_url)
        netloc = parts.netloc
        creds = self.credentials
        if self.auth_type is AuthType.BASIC:
            netloc = url_userinfo(creds.username, creds.password, redact=redact) + netloc
        defaults = HTTPConfig(base_url=self.base_url)
        query = []
        for name in _URL_OPTIONS:
            value = getattr(self, name)
            if value == getattr(defaults, name) and name != "auth_type":
                continue
            if name == "auth_type":
                if value is self.credentials.inferred_auth_type():
                    continue
                value = value.value
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, tuple):
                value = ",".join(value)
            query.append((name, str(value)))
        return urllib.parse.urlunsplit(
            (parts.scheme, netloc, parts.path, urllib.parse.urlencode(query), "")
        )
