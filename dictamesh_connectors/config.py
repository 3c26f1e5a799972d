"""Configuration building blocks: ``Secret``, ``BaseConfig`` and field converters.

Every connector config is a frozen attrs class deriving from ``BaseConfig``.
Configs are pure data: they do no I/O and hold no driver objects, so they
import without any driver installed, compare by value and pickle.

Any bad value in any field raises ``InvalidConfigError`` naming the field
(never the value of a secret), and nothing else.
"""

from __future__ import annotations

import hmac
import logging
import os
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar, TypeVar, cast

import attrs

from dictamesh_connectors._convert import describe_value, parse_number
from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.retry import RetryPolicy

__all__ = [
    "SECRET_PARAMS",
    "BaseConfig",
    "Secret",
    "bool_field",
    "describe_value",
    "field_converter",
    "float_field",
    "int_field",
    "parse_url",
    "query_params",
    "redact_url",
    "redact_url_password",
    "retry_field",
    "secret_field",
    "str_field",
    "to_bool",
    "url_credentials",
    "url_userinfo",
]

logger = logging.getLogger(__name__)

C = TypeVar("C", bound="BaseConfig")

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f", ""})


class Secret:
    """A string that never shows itself: ``repr`` and ``str`` are ``'***'``.

    Use ``get_secret_value()`` at the one place the driver needs the real
    value. Equality is by value (constant-time), so configs holding secrets
    still compare and hash.

    Example::

        >>> pw = Secret("hunter2")
        >>> pw
        Secret('***')
        >>> f"{pw}"
        '***'
        >>> pw.get_secret_value()
        'hunter2'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.get_secret_value()
        if not isinstance(value, str):
            raise InvalidConfigError(f"a secret must be a string, got {type(value).__name__}")
        self._value = value

    def get_secret_value(self) -> str:
        """Return the real value. Never log it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # surrogatepass: a str may hold lone surrogates; comparing must not raise.
        return hmac.compare_digest(
            self._value.encode("utf-8", "surrogatepass"),
            other._value.encode("utf-8", "surrogatepass"),
        )

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))


def to_bool(value: object) -> bool:
    """Convert a bool, 0/1 or an environment-style string ("yes", "off") to bool.

    Raises:
        InvalidConfigError: For anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise InvalidConfigError(f"expected a boolean, got {describe_value(value)}")


def field_converter(fn: Callable[[Any], Any], *, secret: bool = False) -> attrs.Converter:  # type: ignore[type-arg]
    """Wrap the converter ``fn`` so any failure becomes an ``InvalidConfigError``.

    The error names the field. For a ``secret`` field it never shows the
    value nor the message ``fn`` raised (which might quote it). Exceptions
    other than ``InvalidConfigError`` are not chained, so the driver-free
    message is all a traceback shows.

    Args:
        fn: Takes the raw value, returns the converted one; raises
            ``InvalidConfigError`` (or any ``Exception``) for a bad value.
        secret: The field holds a credential.

    Returns:
        An attrs converter for ``attrs.field(converter=...)``.
    """

    def convert(value: Any, field: attrs.Attribute[Any]) -> Any:
        try:
            return fn(value)
        except InvalidConfigError as err:
            message = err.message if not secret else "invalid secret value"
        except Exception:
            # Anything a converter trips over (TypeError, OverflowError,
            # RecursionError, a hostile __int__...) is a bad value.
            shown = "<redacted>" if secret else describe_value(value)
            message = f"invalid value {shown}"
        # Raised outside the except blocks: no __cause__ and no __context__,
        # so nothing the converter saw (a secret, a hostile value) rides along.
        raise InvalidConfigError(f"{field.name}: {message}")

    return attrs.Converter(convert, takes_field=True)


def _number(
    integer: bool, minimum: float | None, maximum: float | None, optional: bool
) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return parse_number(
            value, integer=integer, minimum=minimum, maximum=maximum, optional=optional
        )

    return convert


def int_field(
    default: int | None, *, min: int | None = None, max: int | None = None, optional: bool = False
) -> Any:
    """An int field accepting ints and numeric strings, range-checked."""
    return attrs.field(
        default=default, converter=field_converter(_number(True, min, max, optional))
    )


def float_field(
    default: float | None,
    *,
    min: float | None = None,
    max: float | None = None,
    optional: bool = False,
) -> Any:
    """A finite float field accepting numbers and numeric strings, range-checked.

    Every finite duration of the configs (timeouts, lifetimes) is one, with
    its bounds as ``min``/``max``. A duration that may be ``inf`` ("no
    limit", as ``FileConfig.lock_timeout``) converts with
    ``_convert.to_seconds(text=True)`` instead: this field refuses ``inf``.
    """
    return attrs.field(
        default=default, converter=field_converter(_number(False, min, max, optional))
    )


def bool_field(default: bool) -> Any:
    """A bool field accepting bools, 0/1 and environment-style strings."""
    return attrs.field(default=default, converter=field_converter(to_bool))


def _string(optional: bool, nonempty: bool, choices: frozenset[str] | None) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value is None:
            if optional:
                return None
            raise InvalidConfigError("a value is required")
        if not isinstance(value, str):
            raise InvalidConfigError(f"expected a string, got {describe_value(value)}")
        _check_text(value)
        if nonempty and not value:
            raise InvalidConfigError("must not be empty")
        if choices is not None and value not in choices:
            raise InvalidConfigError(f"{value!r:.40} is not one of {', '.join(sorted(choices))}")
        return value

    return convert


def str_field(
    default: str | None,
    *,
    optional: bool = False,
    nonempty: bool = False,
    choices: frozenset[str] | None = None,
) -> Any:
    """A string field (no NUL characters), optionally restricted to ``choices``."""
    return attrs.field(
        default=default, converter=field_converter(_string(optional, nonempty, choices))
    )


def _check_text(value: str) -> None:
    # Every driver sends text as UTF-8 (or a subset): a lone surrogate or a
    # NUL would otherwise fail deep in the driver, in an exception that can
    # carry the whole connection string, password included.
    if "\x00" in value:
        raise InvalidConfigError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidConfigError("is not encodable as UTF-8 (it has a lone surrogate)") from None


def _secret(value: Any) -> Secret | None:
    if value is None:
        return None
    if not isinstance(value, (str, Secret)):
        raise InvalidConfigError(f"expected a string, got {type(value).__name__}")
    secret = value if isinstance(value, Secret) else Secret(value)
    _check_text(secret.get_secret_value())
    return secret


def secret_field() -> Any:
    """An optional ``Secret`` field; plain strings are wrapped on the way in."""
    return attrs.field(default=None, converter=field_converter(_secret, secret=True))


def _retry_policy(value: Any) -> RetryPolicy:
    if isinstance(value, RetryPolicy):
        return value
    if isinstance(value, Mapping):
        return RetryPolicy(**{str(k): v for k, v in value.items()})
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        # An int (or numeric string, as from_url/from_env give) is max_attempts.
        return RetryPolicy(max_attempts=cast(int, value))  # its converter parses strings
    raise InvalidConfigError(f"expected a RetryPolicy, got {describe_value(value)}")


def retry_field() -> Any:
    """A ``RetryPolicy`` field; a mapping or an int (max_attempts) is converted."""
    return attrs.field(factory=RetryPolicy, converter=field_converter(_retry_policy))


def parse_url(
    url: object, schemes: tuple[str, ...], *, check_port: bool = True
) -> urllib.parse.SplitResult:
    """Split ``url`` and check its scheme, raising ``InvalidConfigError`` if bad.

    ``check_port=False`` accepts a netloc that lists several ``host:port``
    (Kafka's bootstrap list, a MongoDB seed list), which has no single port;
    the config then splits the netloc itself.

    Error messages never echo the URL, which may hold a password.
    """
    if not isinstance(url, str):
        raise InvalidConfigError(f"a URL must be a string, got {type(url).__name__}")
    try:
        parts = urllib.parse.urlsplit(url.strip())
        if check_port:
            parts.port  # noqa: B018 - validates the port
    except ValueError as err:
        raise InvalidConfigError(f"malformed URL ({err.__class__.__name__})") from None
    if parts.scheme.lower() not in schemes:
        raise InvalidConfigError(
            f"URL scheme {parts.scheme!r:.20} is not one of {', '.join(schemes)}"
        )
    return parts


def query_params(parts: urllib.parse.SplitResult) -> dict[str, str]:
    """The URL's query string as a dict (last value wins for repeated keys)."""
    return dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))


def url_credentials(parts: urllib.parse.SplitResult) -> dict[str, Any]:
    """Percent-decoded ``username`` and ``password`` from a URL, when present."""
    fields: dict[str, Any] = {}
    if parts.username:
        fields["username"] = urllib.parse.unquote(parts.username)
    if parts.password is not None:
        fields["password"] = urllib.parse.unquote(parts.password)
    return fields


def url_userinfo(username: str | None, password: Secret | None, *, redact: bool) -> str:
    """``user:password@`` for a ``connection_string`` (``""`` without a user).

    Both are percent-encoded; the password is ``***`` while ``redact`` is
    true. The inverse of ``url_credentials``.
    """
    if username is None:
        return ""
    userinfo = urllib.parse.quote(username, safe="")
    if password is not None:
        userinfo += ":" + (
            "***" if redact else urllib.parse.quote(password.get_secret_value(), safe="")
        )
    return userinfo + "@"


@attrs.frozen(kw_only=True)
class BaseConfig:
    """Fields and constructors every connector config shares.

    Subclasses are ``@attrs.frozen(kw_only=True)`` classes that add their
    fields with the ``*_field`` helpers of this module, set ``url_schemes``
    and implement ``_fields_from_url`` and ``connection_string``.

    Attributes:
        retry: The retry policy for operations that are safe to retry.
        auto_reconnect: Rebuild a lost connection on the next operation
            (bounded by ``retry``) instead of failing until ``connect()``.
    """

    url_schemes: ClassVar[tuple[str, ...]] = ()
    secret_params: ClassVar[frozenset[str]] = frozenset()
    """Query parameters of ``from_url`` that carry secrets (lower case).

    Every subclass's set joins the one list ``redact_url`` masks everywhere,
    so a URL printed or logged by any part of the library hides them.
    """

    url_path_may_hold_at: ClassVar[bool] = False
    """Whether an ``@`` after the host part of a ``from_url`` URL can be legitimate.

    ``False`` (databases, brokers): such a URL, with a port or password-like
    ``:`` in its host part and no userinfo, is refused without being echoed,
    since it is a password with an unescaped ``/``, ``?`` or ``#`` that the
    URL grammar split there (``db://app:4711/rest@host``), and every message
    would show the pieces. HTTP sets ``True`` (``/users/a@b`` is a path).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _KNOWN_SECRET_PARAMS.update(p.lower() for p in cls.secret_params)

    def secret_query_params(self) -> frozenset[str]:
        """The query parameters this config treats as secrets (``redact_url`` hides them).

        The class's ``secret_params``; configs whose secret parameter name is
        configurable (an API key sent in the query) add it.
        """
        return self.secret_params

    retry: RetryPolicy = retry_field()
    auto_reconnect: bool = bool_field(True)

    @classmethod
    def create(cls: type[C], **fields: Any) -> C:
        """Build the config from keyword fields; unknown names are an error.

        Raises:
            InvalidConfigError: An unknown field name or a bad value.
        """
        known = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise InvalidConfigError(
                f"{cls.__name__}: unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**fields)
        except InvalidConfigError:
            raise
        except (TypeError, ValueError) as err:
            # A subclass's cross-field validator that raised a plain error.
            raise InvalidConfigError(f"{cls.__name__}: {type(err).__name__}") from None

    @classmethod
    def from_url(cls: type[C], url: str, **overrides: Any) -> C:
        """Build the config from a URL; ``overrides`` win over URL values.

        Raises:
            InvalidConfigError: A malformed URL, a wrong scheme or a bad value.
        """
        cls._check_userinfo(url)
        fields = cls._fields_from_url(cls._split_url(url))
        fields.update(overrides)
        return cls.create(**fields)

    @classmethod
    def from_env(cls: type[C], prefix: str, environ: Mapping[str, str] | None = None) -> C:
        """Build the config from environment variables named ``{prefix}{FIELD}``.

        ``{prefix}URL`` is read first (as ``from_url``), then each field's own
        variable overrides it, e.g. ``DB_HOST``, ``DB_PASSWORD`` for prefix
        ``DB_``. The retry policy reads ``{prefix}RETRY_MAX_ATTEMPTS``,
        ``{prefix}RETRY_INITIAL_BACKOFF``, ``{prefix}RETRY_MAX_BACKOFF`` and
        ``{prefix}RETRY_DEADLINE``.

        Raises:
            InvalidConfigError: A bad value in any variable.
        """
        env = os.environ if environ is None else environ
        fields: dict[str, Any] = {}
        if env.get(prefix + "URL"):
            cls._check_userinfo(env[prefix + "URL"])
            fields.update(cls._fields_from_url(cls._split_url(env[prefix + "URL"])))
        fields.update(cls._fields_from_environ(env, prefix))
        for attribute in attrs.fields(cls):
            if attribute.name == "retry":
                continue
            key = prefix + attribute.name.upper()
            if key in env:
                fields[attribute.name] = env[key]
        retry = {
            name: env[prefix + "RETRY_" + name.upper()]
            for name in ("max_attempts", "initial_backoff", "max_backoff", "deadline")
            if prefix + "RETRY_" + name.upper() in env
        }
        if retry:
            fields["retry"] = retry
        return cls.create(**fields)

    @classmethod
    def _check_userinfo(cls, url: object) -> None:
        """Refuse a URL whose password an unescaped ``/``, ``?`` or ``#`` split (see
        ``url_path_may_hold_at``); the message quotes nothing of the URL.

        Raises:
            InvalidConfigError: An ``@`` after the host part, which has a ``:``
                but no userinfo.
        """
        if cls.url_path_may_hold_at or not isinstance(url, str):
            return
        _, sep, rest = url.strip().partition("://")
        if not sep:
            return
        ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
        end = min(ends, default=len(rest))
        authority, tail = rest[:end], rest[end:]
        # Up to the first query value: "?appName=svc@prod" is a value, not a split password.
        head = tail.split("=", 1)[0].split("&", 1)[0]
        if "@" not in authority and ":" in authority and "@" in head:
            raise InvalidConfigError(
                f"{cls.__name__}: the URL has an '@' after its host part: a user name or "
                "password with an unescaped '/', '?' or '#' is split there; percent-encode "
                "them (%2F, %3F, %23; an '@' elsewhere as %40)"
            )

    @classmethod
    def _split_url(cls, url: object) -> urllib.parse.SplitResult:
        """Split a ``from_url``/``from_env`` URL and check its scheme.

        A config whose URL lists several hosts overrides this to skip the
        single-port check (``parse_url(..., check_port=False)``).

        Raises:
            InvalidConfigError: A malformed URL or a wrong scheme.
        """
        return parse_url(url, cls.url_schemes)

    @classmethod
    def _fields_from_url(cls, parts: urllib.parse.SplitResult) -> dict[str, Any]:
        raise NotImplementedError(f"{cls.__name__} cannot be built from a URL")

    @classmethod
    def _fields_from_environ(cls, environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
        """Extra environment variables a subclass understands (e.g. libpq PG*)."""
        return {}

    def validate(self) -> None:
        """Re-run every field validator.

        Raises:
            InvalidConfigError: A field no longer holds a valid value.
        """
        try:
            attrs.validate(self)
        except InvalidConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise InvalidConfigError(f"{type(self).__name__}: {err}") from None

    def connection_string(self, redact: bool = True) -> str:
        """A URL for this config; secrets are ``***`` unless ``redact=False``."""
        raise NotImplementedError

    def evolve(self: C, **changes: Any) -> C:
        """Return a copy with ``changes`` applied (validated like ``create``).

        Raises:
            InvalidConfigError: An unknown field name or a bad value.
        """
        unknown = sorted(set(changes) - {a.name for a in attrs.fields(type(self))})
        if unknown:
            raise InvalidConfigError(
                f"{type(self).__name__}: unknown option(s) {', '.join(unknown)}"
            )
        try:
            return attrs.evolve(self, **changes)
        except InvalidConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise InvalidConfigError(f"{type(self).__name__}: {type(err).__name__}") from None


SECRET_PARAMS = frozenset(
    {
        "access_token",
        "api-key",
        "api_key",
        "apikey",
        "auth",
        "client_secret",
        "code",
        "key",
        "passphrase",
        "passwd",
        "password",
        "private_key",
        "pwd",
        "refresh_token",
        "sasl_password",
        "secret",
        "sig",
        "signature",
        "sslpassword",
        "token",
        "x-api-key",
    }
)
"""Query parameter names whose values never appear in messages or logs."""

# SECRET_PARAMS plus every config class's ``secret_params`` (see BaseConfig).
_KNOWN_SECRET_PARAMS: set[str] = set(SECRET_PARAMS)


def redact_url(url: str, secret_params: Collection[str] = ()) -> str:
    """``url`` as the library shows it: the password and secret query values ``***``.

    The one redaction function for every URL the library prints, logs or
    puts in an error. It masks the userinfo password, and the value of every
    query parameter named in ``SECRET_PARAMS``, in any config class's
    ``secret_params``, or in ``secret_params`` (compared case-insensitively,
    after percent-decoding). The fragment is dropped. It never raises.

    Args:
        url: The URL to show.
        secret_params: Extra parameter names to hide (e.g. a configured API
            key parameter: ``config.secret_query_params()``).

    Example::

        >>> redact_url("https://u:pw@h/p?token=T&page=2")
        'https://u:***@h/p?token=***&page=2'
    """
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        user, at, host = netloc.rpartition("@")
        if at:
            name, colon, _password = user.partition(":")
            netloc = f"{name}:***@{host}" if colon else f"{name}@{host}"
        query = parts.query
        if query:
            hidden = _KNOWN_SECRET_PARAMS.union(p.lower() for p in secret_params)
            pairs = []
            for item in query.split("&"):
                key, sep, _value = item.partition("=")
                if sep and urllib.parse.unquote_plus(key).strip().lower() in hidden:
                    item = f"{key}=***"
                pairs.append(item)
            query = "&".join(pairs)
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except (ValueError, TypeError, AttributeError):
        return "<unparseable URL>"


def redact_url_password(url: str) -> str:
    """Deprecated spelling of ``redact_url`` (which also hides secret query values)."""
    return redact_url(url)
