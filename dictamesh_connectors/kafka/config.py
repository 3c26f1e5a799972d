"""``KafkaConfig``: where the brokers are, how to authenticate, how to produce and consume.

Pure data: this module imports no driver. The one place a config meets
librdkafka is ``check_with_librdkafka()`` (run on construction when
confluent-kafka is installed): it builds a throwaway producer and consumer
handle from the config, with no ``bootstrap.servers`` so nothing connects,
and turns what librdkafka refuses (an unknown key, a value out of range, two
settings that contradict each other) into an ``InvalidConfigError``. No list
of librdkafka options is kept here by hand.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import attrs

from dictamesh_connectors.config import (
    BaseConfig,
    Secret,
    bool_field,
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

__all__ = [
    "COMPRESSIONS",
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "SERIALIZERS",
    "KafkaConfig",
    "Options",
    "check_with_librdkafka",
]

SECURITY_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})
"""librdkafka ``security.protocol`` values."""
SASL_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"})
"""librdkafka ``sasl.mechanism`` values."""
COMPRESSIONS = frozenset({"none", "gzip", "snappy", "lz4", "zstd"})
"""librdkafka ``compression.type`` values."""
SERIALIZERS = frozenset({"bytes", "str", "json"})
"""Built-in (de)serializer names; a callable can be given to the connector instead."""
ACKS = frozenset({"all", "-1", "0", "1"})
OFFSET_RESETS = frozenset({"earliest", "latest", "error"})
ISOLATION_LEVELS = frozenset({"read_committed", "read_uncommitted"})

# librdkafka keeps times in int32 milliseconds.
_MAX_MS = 2_147_483_647
_MAX_SECONDS = _MAX_MS // 1000

# librdkafka keys that a typed field of KafkaConfig sets; a passthrough
# option may not set them behind the field's back (secrets above all).
_FIELD_KEYS = {
    "bootstrap.servers": "bootstrap_servers",
    "metadata.broker.list": "bootstrap_servers",
    "client.id": "client_id",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "username",
    "sasl.password": "password",
    "ssl.ca.location": "ssl_ca_location",
    "ssl.certificate.location": "ssl_certificate_location",
    "ssl.key.location": "ssl_key_location",
    "ssl.key.password": "ssl_key_password",
    "acks": "acks",
    "request.required.acks": "acks",
    "enable.idempotence": "enable_idempotence",
    "linger.ms": "linger_ms",
    "queue.buffering.max.ms": "linger_ms",
    "batch.size": "batch_size",
    "compression.type": "compression",
    "compression.codec": "compression",
    "message.timeout.ms": "delivery_timeout",
    "delivery.timeout.ms": "delivery_timeout",
    "request.timeout.ms": "request_timeout",
    "transactional.id": "transactional_id",
    "transaction.timeout.ms": "transaction_timeout",
    "allow.auto.create.topics": "allow_auto_create_topics",
    "auto.offset.reset": "auto_offset_reset",
    "isolation.level": "isolation_level",
    "group.id": "the group_id argument of consumer()",
}
# Callbacks belong to the connector, which serves them on its own thread.
_CALLBACK_KEYS = frozenset(
    {
        "error_cb",
        "throttle_cb",
        "stats_cb",
        "logger",
        "on_delivery",
        "delivery.report.only.error",
        "on_commit",
        "oauth_cb",
        "dr_cb",
        "dr_msg_cb",
    }
)
_OPTION_KEY = re.compile(r"^[a-z][a-z0-9_.-]*$")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")


class Options(Mapping[str, Any]):
    """A read-only, hashable, picklable mapping of librdkafka settings.

    Keys are librdkafka property names (``"queue.buffering.max.messages"``);
    values are ``str``, ``int``, ``float`` or ``bool``.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items: dict[str, Any] = dict(items or {})

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, str(v)) for k, v in self._items.items())))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Options):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Options({self._items!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Options, (self._items,))


def _encodable(text: str, what: str) -> None:
    if "\x00" in text:
        raise InvalidConfigError(f"{what} must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidConfigError(f"{what} is not encodable as UTF-8") from None


def _options(value: Any) -> Options:
    if value is None:
        return Options()
    if isinstance(value, Options):
        return value
    if not isinstance(value, Mapping):
        raise InvalidConfigError(f"expected a mapping, got {type(value).__name__}")
    items: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _OPTION_KEY.match(key):
            raise InvalidConfigError(f"{key!r:.60} is not a librdkafka property name")
        if key in _FIELD_KEYS:
            raise InvalidConfigError(f"{key!r} is set by {_FIELD_KEYS[key]}, not by options")
        if key in _CALLBACK_KEYS:
            raise InvalidConfigError(f"{key!r} is managed by the connector")
        if isinstance(item, (bool, float)):
            pass
        elif isinstance(item, int):
            if not -(2**63) <= item < 2**63:
                raise InvalidConfigError(f"{key}: {item.bit_length()}-bit integer is out of range")
        elif isinstance(item, str):
            _encodable(item, key)
        else:
            raise InvalidConfigError(
                f"{key}: expected a str, int, float or bool, got {type(item).__name__}"
            )
        items[key] = item
    return Options(items)


def options_field() -> Any:
    """A passthrough mapping of librdkafka settings (keys checked, values type-checked)."""
    return attrs.field(factory=Options, converter=field_converter(_options))


def _bootstrap(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidConfigError(f"expected a string, got {type(value).__name__}")
    _encodable(value, "bootstrap_servers")
    hosts = [h.strip() for h in value.split(",")]
    if not hosts or any(not h for h in hosts):
        raise InvalidConfigError("expected host:port[,host:port...]")
    for host in hosts:
        match = _HOST_PORT.match(host)
        if match is None or not 1 <= int(match.group(2)) <= 65535:
            raise InvalidConfigError(f"{host!r:.60} is not host:port (port 1..65535)")
    return ",".join(hosts)


def _bootstrap_field(default: str) -> Any:
    return attrs.field(default=default, converter=field_converter(_bootstrap))


def _seconds_to_ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@attrs.frozen(kw_only=True)
class KafkaConfig(BaseConfig):
    """Configuration of a ``KafkaConnector``.

    Immutable and validated on construction: every bad value, including one
    that librdkafka itself refuses, raises ``InvalidConfigError`` naming the
    field, before any I/O. One instance is safe to share between threads and
    processes; it pickles, and its ``repr`` never shows a secret::

        KafkaConfig(bootstrap_servers="k1:9092,k2:9092", linger_ms=20)
        KafkaConfig.from_url("kafka://k1:9092,k2:9092?client_id=billing")
        KafkaConfig.from_url("kafka+ssl://svc:pw@k1:9093?sasl_mechanism=SCRAM-SHA-512")
        KafkaConfig.from_env("APP_KAFKA_")   # APP_KAFKA_URL, APP_KAFKA_LINGER_MS, ...

    Times are in seconds (librdkafka's ``*.ms`` settings are derived from
    them), except ``linger_ms``, which keeps librdkafka's name and unit.

    Attributes:
        bootstrap_servers: Comma-separated ``host:port`` list (``bootstrap.servers``).
        client_id: Shown in broker logs and quotas (``client.id``).
        security_protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
            (``security.protocol``).
        sasl_mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER
            (``sasl.mechanism``); required with a SASL protocol.
        username: SASL user (``sasl.username``).
        password: SASL password, a ``Secret`` (``sasl.password``).
        ssl_ca_location: CA file to verify the brokers (``ssl.ca.location``).
        ssl_certificate_location: Client certificate (``ssl.certificate.location``).
        ssl_key_location: Client private key (``ssl.key.location``).
        ssl_key_password: The private key's password, a ``Secret`` (``ssl.key.password``).
        acks: ``"all"`` (default), ``"1"`` or ``"0"`` (``acks``).
        enable_idempotence: Exactly-once, in-order delivery per partition
            under retries (``enable.idempotence``, default on; needs ``acks="all"``).
        linger_ms: Milliseconds to wait to fill a batch (``linger.ms``,
            0..900000, default 5).
        batch_size: Most bytes in one batch (``batch.size``, 1..2147483647).
        compression: none, gzip, snappy, lz4 or zstd (``compression.type``).
        delivery_timeout: Seconds librdkafka keeps trying to deliver a
            message before its future fails with TIMEOUT (``message.timeout.ms``;
            default 300, at most 2147483). With ``transactional_id`` it must
            not exceed ``transaction_timeout``.
        request_timeout: Seconds a broker has to acknowledge a produce
            request (``request.timeout.ms``, at most 900).
        transactional_id: Enables transactions (``transactional.id``).
        transaction_timeout: Seconds the broker lets a transaction stay open
            (``transaction.timeout.ms``, default 60, at most 2147483; brokers
            cap it at their ``transaction.max.timeout.ms``, 900 by default).
        connect_timeout: Seconds ``connect()`` and ``ping()`` wait for
            cluster metadata (default 10, at most 3600).
        produce_timeout: Seconds ``produce()`` waits for room in a full local
            queue before failing with RESOURCE_EXHAUSTED (default 60, at most 3600).
        flush_timeout: Seconds ``disconnect()`` and the exit hook wait for
            undelivered messages when given no timeout (default 30, at most 3600).
        allow_auto_create_topics: Let the broker create a topic on first use
            (``allow.auto.create.topics``, default off: a typo in a topic
            name is a NOT_FOUND error, not a new topic).
        auto_offset_reset: Where a new consumer group starts: earliest
            (default), latest or error (``auto.offset.reset``).
        isolation_level: read_committed (default) or read_uncommitted
            (``isolation.level``).
        key_serializer: bytes (default), str or json.
        value_serializer: bytes (default), str or json.
        producer_options: Other librdkafka producer settings, passed through.
        consumer_options: Other librdkafka consumer settings, passed through.
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("kafka", "kafka+ssl")
    secret_params: ClassVar[frozenset[str]] = frozenset({"password", "ssl_key_password"})

    bootstrap_servers: str = _bootstrap_field("localhost:9092")
    client_id: str = str_field("dictamesh-connectors", nonempty=True)
    security_protocol: str = str_field("PLAINTEXT", choices=SECURITY_PROTOCOLS)
    sasl_mechanism: str | None = str_field(None, optional=True, choices=SASL_MECHANISMS)
    username: str | None = str_field(None, optional=True)
    password: Secret | None = secret_field()
    ssl_ca_location: str | None = str_field(None, optional=True)
    ssl_certificate_location: str | None = str_field(None, optional=True)
    ssl_key_location: str | None = str_field(None, optional=True)
    ssl_key_password: Secret | None = secret_field()
    acks: str = str_field("all", choices=ACKS)
    enable_idempotence: bool = bool_field(True)
    linger_ms: float = float_field(5.0, min=0.0, max=900_000.0)
    batch_size: int = int_field(1_000_000, min=1, max=_MAX_MS)
    compression: str = str_field("none", choices=COMPRESSIONS)
    delivery_timeout: float = float_field(300.0, min=0.001, max=float(_MAX_SECONDS))
    request_timeout: float = float_field(30.0, min=0.001, max=900.0)
    transactional_id: str | None = str_field(None, optional=True, nonempty=True)
    transaction_timeout: float = float_field(60.0, min=1.0, max=float(_MAX_SECONDS))
    connect_timeout: float = float_field(10.0, min=0.001, max=3600.0)
    produce_timeout: float = float_field(60.0, min=0.0, max=3600.0)
    flush_timeout: float = float_field(30.0, min=0.0, max=3600.0)
    allow_auto_create_topics: bool = bool_field(False)
    auto_offset_reset: str = str_field("earliest", choices=OFFSET_RESETS)
    isolation_level: str = str_field("read_committed", choices=ISOLATION_LEVELS)
    key_serializer: str = str_field("bytes", choices=SERIALIZERS)
    value_serializer: str = str_field("bytes", choices=SERIALIZERS)
    producer_options: Options = options_field()
    consumer_options: Options = options_field()

    def __attrs_post_init__(self) -> None:
        self._check_fields()
        check_with_librdkafka(self)

    def validate(self) -> None:
        """Re-run every field check, then librdkafka's own.

        Raises:
            InvalidConfigError: A field, a combination of fields, or a
                passthrough option that librdkafka refuses.
        """
        super().validate()
        self._check_fields()
        check_with_librdkafka(self)

    def _check_fields(self) -> None:
        for name in (
            "client_id",
            "username",
            "ssl_ca_location",
            "ssl_certificate_location",
            "ssl_key_location",
            "transactional_id",
        ):
            value = getattr(self, name)
            if value is not None:
                _encodable(value, name)
        for name in ("password", "ssl_key_password"):
            secret = getattr(self, name)
            if secret is not None:
                try:
                    secret.get_secret_value().encode("utf-8")
                except UnicodeEncodeError:
                    raise InvalidConfigError(f"{name}: invalid secret value") from None
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism is None:
            raise InvalidConfigError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism"
            )
        if not sasl and self.sasl_mechanism is not None:
            raise InvalidConfigError(
                f"sasl_mechanism needs security_protocol SASL_PLAINTEXT or SASL_SSL, "
                f"not {self.security_protocol}"
            )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and (
            self.username is None or self.password is None
        ):
            raise InvalidConfigError(
                f"sasl_mechanism {self.sasl_mechanism} needs username and password"
            )
        if self.enable_idempotence and self.acks not in ("all", "-1"):
            raise InvalidConfigError('enable_idempotence needs acks="all"')
        if self.transactional_id is not None:
            if not self.enable_idempotence:
                raise InvalidConfigError("transactional_id needs enable_idempotence")
            if self.delivery_timeout > self.transaction_timeout:
                raise InvalidConfigError(
                    f"delivery_timeout ({self.delivery_timeout:g}s) must not exceed "
                    f"transaction_timeout ({self.transaction_timeout:g}s) with transactional_id"
                )
        if self.ssl_key_password is not None and self.ssl_key_location is None:
            raise InvalidConfigError("ssl_key_password needs ssl_key_location")

    # ------------------------------------------------------- librdkafka settings

    @property
    def target(self) -> str:
        """The bootstrap servers, the "where" of every error message."""
        return self.bootstrap_servers

    def _common_conf(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
            "allow.auto.create.topics": self.allow_auto_create_topics,
        }
        if self.sasl_mechanism is not None:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.username is not None:
            conf["sasl.username"] = self.username
        if self.password is not None:
            conf["sasl.password"] = self.password.get_secret_value()
        for key, value in (
            ("ssl.ca.location", self.ssl_ca_location),
            ("ssl.certificate.location", self.ssl_certificate_location),
            ("ssl.key.location", self.ssl_key_location),
        ):
            if value is not None:
                conf[key] = value
        if self.ssl_key_password is not None:
            conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        return conf

    def producer_conf(self) -> dict[str, Any]:
        """The librdkafka producer settings (secrets included: never log this)."""
        conf = self._common_conf()
        conf.update(
            {
                "acks": self.acks,
                "enable.idempotence": self.enable_idempotence,
                "linger.ms": self.linger_ms,
                "batch.size": self.batch_size,
                "compression.type": self.compression,
                "message.timeout.ms": _seconds_to_ms(self.delivery_timeout),
                "request.timeout.ms": _seconds_to_ms(self.request_timeout),
                # A topic missing from the metadata is reported missing after
                # this long (librdkafka's default is 30 s).
                "topic.metadata.propagation.max.ms": 5000,
            }
        )
        if self.transactional_id is not None:
            conf["transactional.id"] = self.transactional_id
            conf["transaction.timeout.ms"] = _seconds_to_ms(self.transaction_timeout)
        conf.update(self.producer_options)
        return conf

    def consumer_conf(self, group_id: str) -> dict[str, Any]:
        """The librdkafka consumer settings for ``group_id`` (secrets included)."""
        conf = self._common_conf()
        conf.update(
            {
                "group.id": group_id,
                "auto.offset.reset": self.auto_offset_reset,
                "isolation.level": self.isolation_level,
                # Offsets are committed explicitly, after the work is done.
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        )
        conf.update(self.consumer_options)
        return conf

    def admin_conf(self) -> dict[str, Any]:
        """The librdkafka admin client settings (secrets included)."""
        return self._common_conf()

    # ------------------------------------------------------------ constructors

    @classmethod
    def _split_url(cls, url: object) -> urllib.parse.SplitResult:
        # "kafka://h1:9092,h2:9092" has no single port: _fields_from_url parses the list.
        return parse_url(url, cls.url_schemes, check_port=False)

    @classmethod
    def _fields_from_url(cls, parts: urllib.parse.SplitResult) -> dict[str, Any]:
        """Fields of ``kafka://[user:pw@]host:port[,host:port...][?field=value...]``.

        ``kafka+ssl://`` selects SSL (SASL_SSL with credentials); credentials
        select SASL with mechanism PLAIN unless ``sasl_mechanism`` says
        otherwise. Query parameters are field names.
        """
        # urlsplit takes the whole host list as netloc; its .hostname/.port
        # refuse it, so the list is parsed here.
        fields: dict[str, Any] = {}
        netloc = parts.netloc
        if "@" in netloc:
            fields.update(url_credentials(parts))
            netloc = netloc.rsplit("@", 1)[1]
        if netloc:
            fields["bootstrap_servers"] = urllib.parse.unquote(netloc)
        if parts.path not in ("", "/"):
            raise InvalidConfigError("a kafka:// URL has no path")
        ssl = parts.scheme.lower() == "kafka+ssl"
        sasl = "username" in fields
        fields["security_protocol"] = {
            (False, False): "PLAINTEXT",
            (True, False): "SSL",
            (False, True): "SASL_PLAINTEXT",
            (True, True): "SASL_SSL",
        }[(ssl, sasl)]
        if sasl:
            fields["sasl_mechanism"] = "PLAIN"
        fields.update(query_params(parts))
        return fields

    def connection_string(self, redact: bool = True) -> str:
        """A ``kafka://`` (or ``kafka+ssl://``) URL for this config.

        The password is ``***`` unless ``redact=False``; passthrough options
        are not part of it.
        """
        ssl = self.security_protocol in ("SSL", "SASL_SSL")
        userinfo = url_userinfo(self.username, self.password, redact=redact)
        query: dict[str, str] = {}
        defaults = _defaults()
        for attribute in attrs.fields(type(self)):
            name = attribute.name
            if name in ("bootstrap_servers", "username", "password", "retry", "security_protocol"):
                continue
            if name in ("producer_options", "consumer_options", "ssl_key_password"):
                continue
            value = getattr(self, name)
            if value is None or value == getattr(defaults, name):
                continue
            if name == "sasl_mechanism" and value == "PLAIN" and self.username is not None:
                continue
            if isinstance(value, bool):
                query[name] = "true" if value else "false"
            elif isinstance(value, float):
                query[name] = f"{value:g}" if value == int(value) else repr(value)
            else:
                query[name] = str(value)
        implied = {
            (False, False): "PLAINTEXT",
            (True, False): "SSL",
            (False, True): "SASL_PLAINTEXT",
            (True, True): "SASL_SSL",
        }[(ssl, self.username is not None)]
        if self.security_protocol != implied:
            query["security_protocol"] = self.security_protocol
        scheme = "kafka+ssl" if ssl else "kafka"
        suffix = "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote) if query else ""
        return f"{scheme}://{userinfo}{self.bootstrap_servers}{suffix}"


# ---------------------------------------------------------------- librdkafka


def check_with_librdkafka(config: KafkaConfig) -> None:
    """Have librdkafka itself accept ``config``'s producer and consumer settings.

    Builds a throwaway producer and consumer handle without
    ``bootstrap.servers`` (so nothing connects) and destroys them at once.
    Results are cached per distinct setting set. Without confluent-kafka
    installed there is nothing to check against and this does nothing; the
    connector then fails with ``MissingDependencyError`` anyway.

    Raises:
        InvalidConfigError: librdkafka refused a key or a value; the message
            is librdkafka's, with any secret value masked.
    """
    secrets = tuple(
        s.get_secret_value() for s in (config.password, config.ssl_key_password) if s is not None
    )
    producer = config.producer_conf()
    consumer = config.consumer_conf("dictamesh-config-check")
    for kind, conf in (("producer", producer), ("consumer", consumer)):
        conf.pop("bootstrap.servers", None)
        problem = _librdkafka_refusal(kind, tuple(sorted(conf.items(), key=lambda kv: kv[0])))
        if problem is not None:
            for secret in secrets:
                if secret:
                    problem = problem.replace(secret, "***")
            raise InvalidConfigError(f"librdkafka refuses the {kind} settings: {problem}")


@functools.lru_cache(maxsize=256)
def _librdkafka_refusal(kind: str, items: tuple[tuple[str, Any], ...]) -> str | None:
    try:
        import confluent_kafka
    except ImportError:
        return None
    conf = dict(items)
    conf["log_level"] = 0  # a throwaway: no "no bootstrap.servers" notice
    try:
        if kind == "producer":
            handle: Any = confluent_kafka.Producer(conf)
        else:
            handle = confluent_kafka.Consumer(conf)
    except confluent_kafka.KafkaException as exc:
        error = exc.args[0] if exc.args else None
        text = error.str() if isinstance(error, confluent_kafka.KafkaError) else str(exc)
        return " ".join(text.split())
    except (TypeError, ValueError) as exc:  # a value of the wrong type for the key
        return " ".join(str(exc).split())
    if kind == "consumer":
        handle.close()
    else:
        handle.flush(0)
    del handle
    return None


@functools.lru_cache(maxsize=1)
def _defaults() -> KafkaConfig:
    return KafkaConfig()
