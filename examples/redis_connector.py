"""A third-party connector built on ``dictamesh_connectors.base.Connector``: Redis.

What a connector author writes, in one file: a pure-data config
(``RedisConfig``, attrs, validated), one translation table from the
driver's exceptions to ``ConnectorError`` codes (``classify``/``translate``),
and the connector (``RedisConnector``): the four base-class hooks plus a few
verbs, each run through ``self._run`` (in-flight accounting, reconnect,
retries of what is safe to retry). The driver is redis-py (installed with
``celery[redis]``); its ``BlockingConnectionPool`` is the pool, its own
retries are switched off (ours know which commands are idempotent).

``tests/integration/conformance/test_example_redis.py`` runs the
conformance suite on it against a real Redis; docs/testing.md shows how.

Exception mapping (most specific first)::

    redis.exceptions
    |   AuthenticationError (WRONGPASS, NOAUTH) .. AUTH_FAILED         permanent  NONE
    |   AuthorizationError, NoPermissionError .... PERMISSION_DENIED   permanent  NONE
    |   BusyLoadingError (LOADING) ............... UNAVAILABLE         transient  RETRY
    |   ConnectionError "No connection available"  TIMEOUT             transient  RETRY
    |                                              (the pool had none within pool_timeout)
    |   ConnectionError (refused, reset) ......... CONNECTION_FAILED   transient  RECONNECT
    |                                              (connecting), else CONNECTION_LOST;
    |                                              maybe_applied for writes
    |   TimeoutError ............................. TIMEOUT             transient  RETRY
    |                                              maybe_applied for writes
    |   ReadOnlyError (READONLY: a replica) ...... UNAVAILABLE         transient  RECONNECT
    |   OutOfMemoryError (OOM) ................... RESOURCE_EXHAUSTED  transient  RETRY
    |   ResponseError "BUSY" (a script runs) ..... UNAVAILABLE         transient  RETRY
    |   ResponseError "WRONGTYPE" ................ INVALID_REQUEST     permanent  NONE
    |   ResponseError (any other) ................ QUERY_FAILED (reads) / EXEC_FAILED (writes)
    |   DataError (a value it cannot send) ....... INVALID_INPUT       permanent  NONE
    |   InvalidResponse .......................... PROTOCOL_ERROR      transient  RECONNECT
    |   RedisError (anything else) ............... INTERNAL            permanent  NONE
    UnicodeError, OverflowError (encoding an argument)
                                                   INVALID_INPUT       permanent  NONE
    ValueError from a socket disconnect(timeout) closed under a running command
                                                   CONNECTION_LOST     transient  RECONNECT

Example::

    with RedisConnector(RedisConfig.from_url("redis://127.0.0.1:6379/0")) as cache:
        cache.set("greeting", "hello", ttl=60)
        assert cache.get("greeting") == b"hello"
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from typing import Any, ClassVar

import attrs
import redis
import redis.backoff
import redis.exceptions
import redis.retry

from dictamesh_connectors.base import Connector
from dictamesh_connectors.config import (
    BaseConfig,
    Secret,
    bool_field,
    float_field,
    int_field,
    query_params,
    redact_url,
    secret_field,
    str_field,
    url_credentials,
)
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    ErrorRule,
    InvalidConfigError,
    RetryHint,
    Translator,
    build_error,
)

__all__ = ["RedisConfig", "RedisConnector", "classify", "translate"]

logger = logging.getLogger(__name__)

CONNECTOR = "redis"
MAX_TIMEOUT = 3600.0
"""The longest socket, connect and pool timeout accepted (seconds)."""
MAX_DB = 1_000_000
"""The highest database number accepted (the server's ``databases`` is the real limit)."""


def _check_name(value: str | None, what: str) -> None:
    # Sent in a command line (AUTH, CLIENT SETNAME): no spaces, no controls.
    if value is not None and any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise InvalidConfigError(f"{what}: must not contain spaces or control characters")


@attrs.frozen(kw_only=True)
class RedisConfig(BaseConfig):
    """Where and how to reach one Redis server (pure data: no I/O, no driver objects).

    Attributes:
        host: Server name or address.
        port: TCP port (1-65535).
        db: Database number (``SELECT``; 0 to 1,000,000, the server's
            ``databases`` setting is the real bound).
        username: ACL user (Redis 6+); ``None`` for the ``default`` user.
        password: The ACL user's (or ``requirepass``) password.
        tls: TLS to the server (``rediss://`` sets it).
        max_connections: Size of the connection pool (1 to 10,000).
        pool_timeout: Seconds to wait for a free pooled connection (0 to 3600).
        socket_timeout: Seconds a command may wait for its answer (0.001 to
            3600; a ``blpop`` must wait less).
        connect_timeout: Seconds to open a connection (0.001 to 3600).
        client_name: ``CLIENT SETNAME`` of each connection (no spaces).
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss")

    host: str = str_field("localhost", nonempty=True)
    port: int = int_field(6379, min=1, max=65535)
    db: int = int_field(0, min=0, max=MAX_DB)
    username: str | None = str_field(None, optional=True)
    password: Secret | None = secret_field()
    tls: bool = bool_field(False)
    max_connections: int = int_field(50, min=1, max=10_000)
    pool_timeout: float = float_field(10.0, min=0.0, max=MAX_TIMEOUT)
    socket_timeout: float = float_field(10.0, min=0.001, max=MAX_TIMEOUT)
    connect_timeout: float = float_field(5.0, min=0.001, max=MAX_TIMEOUT)
    client_name: str = str_field("dictamesh-connectors", nonempty=True)

    @username.validator
    def _check_username(self, attribute: attrs.Attribute[Any], value: str | None) -> None:
        _check_name(value, "username")

    @client_name.validator
    def _check_client_name(self, attribute: attrs.Attribute[Any], value: str) -> None:
        _check_name(value, "client_name")

    @classmethod
    def _fields_from_url(cls, parts: urllib.parse.SplitResult) -> dict[str, Any]:
        fields: dict[str, Any] = {"tls": parts.scheme.lower() == "rediss"}
        if parts.hostname:
            fields["host"] = urllib.parse.unquote(parts.hostname)
        if parts.port is not None:
            fields["port"] = parts.port
        database = parts.path.strip("/")
        if database:
            fields["db"] = database
        credentials = url_credentials(parts)
        if credentials.get("username"):
            fields["username"] = credentials["username"]
        if credentials.get("password"):
            fields["password"] = credentials["password"]
        fields.update(query_params(parts))
        return fields

    def connection_string(self, redact: bool = True) -> str:
        """``redis://user:***@host:port/db``; the password only with ``redact=False``."""
        auth = ""
        if self.username or self.password:
            user = urllib.parse.quote(self.username or "", safe="")
            secret = self.password.get_secret_value() if self.password else ""
            auth = f"{user}:{urllib.parse.quote(secret, safe='')}@" if secret else f"{user}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{self.port}/{self.db}"
        return redact_url(url) if redact else url

    @property
    def target(self) -> str:
        """``host:port/db``, for messages."""
        return f"{self.host}:{self.port}/{self.db}"


# ------------------------------------------------------------------- errors

_INVALID_REQUEST = ErrorRule(ErrorCode.INVALID_REQUEST, False, RetryHint.NONE)
_BAD_INPUT = ErrorRule(ErrorCode.INVALID_INPUT, False, RetryHint.NONE)
_CLOSED_UNDER_US = ErrorRule(ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT)
# Most specific first: AuthenticationError and BusyLoadingError are
# ConnectionErrors, ReadOnlyError and OutOfMemoryError ResponseErrors.
_RULES: tuple[tuple[type[Exception], ErrorRule], ...] = (
    (redis.exceptions.AuthenticationError, ErrorRule(ErrorCode.AUTH_FAILED, False, RetryHint.NONE)),
    (
        redis.exceptions.AuthorizationError,
        ErrorRule(ErrorCode.PERMISSION_DENIED, False, RetryHint.NONE),
    ),
    (
        redis.exceptions.NoPermissionError,
        ErrorRule(ErrorCode.PERMISSION_DENIED, False, RetryHint.NONE),
    ),
    (redis.exceptions.BusyLoadingError, ErrorRule(ErrorCode.UNAVAILABLE, True, RetryHint.RETRY)),
    (redis.exceptions.ReadOnlyError, ErrorRule(ErrorCode.UNAVAILABLE, True, RetryHint.RECONNECT)),
    (
        redis.exceptions.OutOfMemoryError,
        ErrorRule(ErrorCode.RESOURCE_EXHAUSTED, True, RetryHint.RETRY),
    ),
    (redis.exceptions.DataError, _BAD_INPUT),
    (
        redis.exceptions.InvalidResponse,
        ErrorRule(ErrorCode.PROTOCOL_ERROR, True, RetryHint.RECONNECT),
    ),
)


def classify(
    exc: Exception, *, operation: str, target: str, write: bool = False, connecting: bool = False
) -> ConnectorError | None:
    """The ``ConnectorError`` for a redis-py (or encoding) exception: the table above.

    Args:
        exc: What the driver raised.
        operation: The verb (``"get"``, ``"connect"``...), for the message.
        target: ``host:port/db``, for the message.
        write: The command changes data: a lost answer means it may have run.
        connecting: Raised while opening the pool (nothing was sent yet).
    """
    where = f"redis: {operation} on {target}"
    message = " ".join(str(exc).split()) or type(exc).__name__
    sent = write and not connecting
    rule: ErrorRule | None = None
    maybe_applied = False
    for kind, candidate in _RULES:
        if isinstance(exc, kind):
            rule = candidate
            break
    if rule is not None:
        pass
    elif isinstance(exc, redis.exceptions.ConnectionError):
        if "No connection available" in message:
            rule = ErrorRule(ErrorCode.TIMEOUT, True, RetryHint.RETRY)  # never sent
        else:
            code = ErrorCode.CONNECTION_FAILED if connecting else ErrorCode.CONNECTION_LOST
            rule, maybe_applied = ErrorRule(code, True, RetryHint.RECONNECT), sent
    elif isinstance(exc, redis.exceptions.TimeoutError):
        rule, maybe_applied = ErrorRule(ErrorCode.TIMEOUT, True, RetryHint.RETRY), sent
    elif isinstance(exc, redis.exceptions.ResponseError):
        prefix = message.split(" ", 1)[0]
        if prefix == "BUSY":
            rule = ErrorRule(ErrorCode.UNAVAILABLE, True, RetryHint.RETRY)
        elif prefix == "WRONGTYPE":
            rule = _INVALID_REQUEST
        else:
            code = ErrorCode.EXEC_FAILED if write else ErrorCode.QUERY_FAILED
            rule = ErrorRule(code, False, RetryHint.NONE)
    elif isinstance(exc, redis.exceptions.RedisError):
        rule = ErrorRule(ErrorCode.INTERNAL, False, RetryHint.NONE)
    elif isinstance(exc, (UnicodeError, OverflowError)):
        rule = _BAD_INPUT
        message = f"an argument cannot be sent ({type(exc).__name__})"
    if rule is None:
        return None
    return build_error(
        f"{where}: {message}",
        rule,
        connector=CONNECTOR,
        maybe_applied=maybe_applied,
        details={"driver_error": type(exc).__name__},
    )


class translate(Translator):
    """Translate redis-py exceptions raised in the block: ``with translate("get", target):``.

    Raises:
        ConnectorError: Translated from the driver exception (kept as ``__cause__``).
    """

    __slots__ = ()
    driver_errors = (redis.exceptions.RedisError, UnicodeError, OverflowError)

    def classify(self, exc: Exception) -> ConnectorError | None:
        """The error for ``exc`` (see the module's table)."""
        return classify(exc, **self.context)

    def scrub(self, exc: Exception) -> None:
        """Drop the arguments a driver exception keeps beyond its message (none hold secrets)."""
        if isinstance(exc, UnicodeError):
            exc.args = (type(exc).__name__,)


# ---------------------------------------------------------------- connector

_Key = str | bytes


def _check_key(key: object) -> _Key:
    if not isinstance(key, (str, bytes)):
        raise TypeError(f"a Redis key must be str or bytes, not {type(key).__name__}")
    return key


class RedisConnector(Connector[RedisConfig, "redis.Redis"]):
    """A Redis client shared by every thread of a process, fork-safe.

    Thread safety: one instance serves all threads; commands run on the
    pool's connections with no connector lock held. After ``os.fork()`` the
    child drops the parent's pool (never closing its sockets) and opens its
    own on first use.

    Example::

        cache = RedisConnector(RedisConfig(host="127.0.0.1", db=1))
        cache.connect()
        cache.rpush("jobs", b"job-1")
        print(cache.blpop(["jobs"], timeout=1.0))
        cache.disconnect()
    """

    name: ClassVar[str] = CONNECTOR
    config_class: ClassVar[type[RedisConfig]] = RedisConfig

    # ------------------------------------------------------------------ hooks

    def _open(self) -> redis.Redis:
        cfg = self.config
        pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
            max_connections=cfg.max_connections,
            timeout=cfg.pool_timeout,
            connection_class=redis.SSLConnection if cfg.tls else redis.Connection,
            host=cfg.host,
            port=cfg.port,
            db=cfg.db,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            socket_timeout=cfg.socket_timeout,
            socket_connect_timeout=cfg.connect_timeout,
            client_name=cfg.client_name,
            # Our retry loop knows which commands are idempotent; the driver's does not.
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        )
        client = redis.Redis(connection_pool=pool)
        try:
            with translate("connect", cfg.target, connecting=True):
                client.ping()
        except BaseException:
            pool.disconnect()
            raise
        return client

    def _close(self, handle: redis.Redis, timeout: float | None) -> None:
        handle.connection_pool.disconnect()

    def _ping(self, handle: redis.Redis, timeout: float | None) -> None:
        with translate("ping", self.config.target):
            handle.ping()

    def _translate_errors(self) -> contextlib.AbstractContextManager[None]:
        return translate("operation", self.config.target)

    # ------------------------------------------------------------------ verbs

    def _command(self, operation: str, write: bool, idempotent: bool, *args: Any) -> Any:
        target = self.config.target

        def run(client: redis.Redis) -> Any:
            try:
                with translate(operation, target, write=write):
                    return client.execute_command(*args)  # type: ignore[no-untyped-call]
            except ValueError as exc:
                if client is self._handle:
                    raise  # not ours: a programming error
                # disconnect(timeout) gave up on us and closed the socket
                # under the command (redis-py: "I/O operation on closed file").
                raise build_error(
                    f"redis: {operation} on {target}: the connection was closed by disconnect()",
                    _CLOSED_UNDER_US,
                    connector=CONNECTOR,
                    maybe_applied=write,
                ) from exc

        return self._run(run, idempotent=idempotent, description=operation)

    def get(self, key: _Key) -> bytes | None:
        """The value at ``key``, or ``None``.

        Raises:
            ConnectorError: As the table in the module docstring.
            TypeError: ``key`` is not str or bytes.
        """
        value: bytes | None = self._command("get", False, True, "GET", _check_key(key))
        return value

    def set(self, key: _Key, value: bytes | str | int | float, *, ttl: float | None = None) -> None:
        """Store ``value`` at ``key``, expiring after ``ttl`` seconds if given.

        Raises:
            ConnectorError: INVALID_INPUT for a value that cannot be sent.
            TypeError: ``key`` is not str or bytes.
        """
        args: list[Any] = ["SET", _check_key(key), value]
        if ttl is not None:
            args += ["PX", max(1, int(ttl * 1000))]
        self._command("set", True, True, *args)  # SET twice leaves the same state

    def delete(self, *keys: _Key) -> int:
        """Delete ``keys``; return how many existed.

        Raises:
            TypeError: A key is not str or bytes.
        """
        count: int = self._command("delete", True, True, "DEL", *map(_check_key, keys))
        return count

    def incr(self, key: _Key, amount: int = 1) -> int:
        """Add ``amount`` to the integer at ``key``; return the new value (never retried).

        Raises:
            ConnectorError: INVALID_REQUEST for a key holding another type;
                EXEC_FAILED for a value that is not an integer.
        """
        value: int = self._command("incr", True, False, "INCRBY", _check_key(key), amount)
        return value

    def rpush(self, key: _Key, *values: bytes | str | int | float) -> int:
        """Append ``values`` to the list at ``key``; return its length (never retried)."""
        length: int = self._command("rpush", True, False, "RPUSH", _check_key(key), *values)
        return length

    def blpop(self, keys: list[_Key], timeout: float) -> tuple[bytes, bytes] | None:
        """Pop the first element of the first non-empty list, waiting up to ``timeout``.

        The server holds the call for up to ``timeout`` seconds; it must be
        shorter than ``socket_timeout``.

        Raises:
            ConnectorError: INVALID_REQUEST for a ``timeout`` not above 0 or
                not below ``socket_timeout``.
        """
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise TypeError(f"timeout must be a number, not {type(timeout).__name__}")
        if not 0 < timeout < self.config.socket_timeout:
            raise build_error(
                f"redis: blpop: timeout must be above 0 and below socket_timeout "
                f"({self.config.socket_timeout:g}s)",
                _INVALID_REQUEST,
                connector=CONNECTOR,
            )
        found = self._command("blpop", True, False, "BLPOP", *map(_check_key, keys), timeout)
        return None if found is None else (found[0], found[1])

    def execute(self, *args: Any, write: bool = True) -> Any:
        """Run any Redis command (``execute("HSET", "h", "f", "v")``); never retried.

        Args:
            args: The command and its arguments.
            write: Whether it may change data (decides ``maybe_applied``).
        """
        return self._command("execute", write, False, *args)
