"""KafkaConfig: defaults, URL/env parsing, cross-field rules, librdkafka's own validation."""

import pickle
import subprocess
import sys
import textwrap

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dictamesh_connectors.config import Secret
from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.kafka.config import KafkaConfig, Options, check_with_librdkafka

PASSWORD = "kafka-S3cret/p@ss:word%"


def test_defaults_are_safe_and_bounded():
    c = KafkaConfig()
    assert c.bootstrap_servers == "localhost:9092"
    assert (c.acks, c.enable_idempotence, c.allow_auto_create_topics) == ("all", True, False)
    assert c.auto_offset_reset == "earliest" and c.delivery_timeout == 300
    assert c.transaction_timeout == 60 and c.connect_timeout == 10
    for name in ("connect_timeout", "produce_timeout", "flush_timeout", "request_timeout"):
        assert 0 < getattr(c, name) < 600
    conf = c.producer_conf()
    assert conf["allow.auto.create.topics"] is False
    assert conf["message.timeout.ms"] == 300_000
    assert conf["topic.metadata.propagation.max.ms"] <= 10_000
    consumer = c.consumer_conf("g")
    assert consumer["enable.auto.commit"] is False and consumer["auto.offset.reset"] == "earliest"
    assert consumer["group.id"] == "g"


def test_from_url_parses_a_host_list_and_query():
    c = KafkaConfig.from_url(
        "kafka://k1:9092,k2:9093,[::1]:9094?client_id=billing&linger_ms=20&compression=zstd"
        "&delivery_timeout=120&value_serializer=json"
    )
    assert c.bootstrap_servers == "k1:9092,k2:9093,[::1]:9094"
    assert (c.client_id, c.linger_ms, c.compression) == ("billing", 20.0, "zstd")
    assert c.delivery_timeout == 120 and c.value_serializer == "json"
    assert c.security_protocol == "PLAINTEXT"
    assert KafkaConfig.from_url(c.connection_string(redact=False)) == c


@pytest.mark.parametrize(
    "url,protocol,mechanism",
    [
        ("kafka://h:9092", "PLAINTEXT", None),
        ("kafka+ssl://h:9093", "SSL", None),
        ("kafka://u:pw@h:9092", "SASL_PLAINTEXT", "PLAIN"),
        ("kafka+ssl://u:pw@h:9093", "SASL_SSL", "PLAIN"),
        ("kafka://u:pw@h:9092?sasl_mechanism=SCRAM-SHA-512", "SASL_PLAINTEXT", "SCRAM-SHA-512"),
    ],
)
def test_scheme_and_credentials_pick_the_protocol(url, protocol, mechanism):
    c = KafkaConfig.from_url(url)
    assert (c.security_protocol, c.sasl_mechanism) == (protocol, mechanism)
    assert KafkaConfig.from_url(c.connection_string(redact=False)) == c


def test_password_is_secret_everywhere():
    from urllib.parse import quote

    c = KafkaConfig.from_url(
        f"kafka://svc:{quote(PASSWORD, safe='')}@h:9092?sasl_mechanism=SCRAM-SHA-256"
    )
    assert c.password == Secret(PASSWORD)
    assert c.producer_conf()["sasl.password"] == PASSWORD
    for text in (repr(c), str(c), c.connection_string(), repr(pickle.loads(pickle.dumps(c)))):
        assert PASSWORD not in text and quote(PASSWORD, safe="") not in text
    assert "svc:***@h:9092" in c.connection_string()
    assert pickle.loads(pickle.dumps(c)) == c


def test_from_env_reads_url_then_fields():
    env = {
        "APP_KAFKA_URL": "kafka://k1:9092,k2:9092",
        "APP_KAFKA_LINGER_MS": "50",
        "APP_KAFKA_ENABLE_IDEMPOTENCE": "yes",
        "APP_KAFKA_RETRY_MAX_ATTEMPTS": "5",
    }
    c = KafkaConfig.from_env("APP_KAFKA_", env)
    assert c.bootstrap_servers == "k1:9092,k2:9092" and c.linger_ms == 50
    assert c.retry.max_attempts == 5


@pytest.mark.parametrize(
    "url",
    [
        "kafka://",  # no host at all is fine: the default, but a path is not
        "kafka://h:9092/path",
        "kafka://h",
        "kafka://h:0",
        "kafka://h:99999",
        "kafka://h:9092,,h2:9092",
        "kafka://h:9092?colour=blue",
        "http://h:9092",
    ],
)
def test_bad_urls(url):
    if url == "kafka://":
        assert KafkaConfig.from_url(url).bootstrap_servers == "localhost:9092"
        return
    with pytest.raises(InvalidConfigError):
        KafkaConfig.from_url(url)


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"acks": "1"}, "enable_idempotence"),
        ({"security_protocol": "SASL_SSL"}, "sasl_mechanism"),
        ({"sasl_mechanism": "PLAIN"}, "SASL_PLAINTEXT or SASL_SSL"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256"},
            "username and password",
        ),
        ({"transactional_id": "t", "delivery_timeout": 61}, "transaction_timeout"),
        ({"transactional_id": "t", "enable_idempotence": False, "acks": "1"}, "idempotence"),
        ({"ssl_key_password": "x"}, "ssl_key_location"),
        ({"compression": "brotli"}, "compression"),
        ({"linger_ms": 900_001}, "maximum"),
        ({"delivery_timeout": 0}, "minimum"),
        ({"connect_timeout": float("inf")}, "finite"),
        ({"client_id": "bad\udc80"}, "UTF-8"),
        ({"producer_options": {"bootstrap.servers": "x:1"}}, "bootstrap_servers"),
        ({"producer_options": {"sasl.password": "x"}}, "password"),
        ({"producer_options": {"error_cb": "x"}}, "managed by the connector"),
        ({"producer_options": {"Not A Key": 1}}, "property name"),
        ({"producer_options": {"x.y": object()}}, "str, int, float or bool"),
        ({"producer_options": {"x.y": "bad\udc80"}}, "UTF-8"),
        ({"consumer_options": {"group.id": "g"}}, "group_id"),
        ({"producer_options": ["linger.ms"]}, "mapping"),
    ],
)
def test_invalid_fields_are_refused_at_construction(fields, match):
    with pytest.raises(InvalidConfigError, match=match):
        KafkaConfig(**fields)


def test_delivery_timeout_equal_to_transaction_timeout_is_allowed():
    c = KafkaConfig(transactional_id="t", delivery_timeout=60, transaction_timeout=60)
    assert c.producer_conf()["transaction.timeout.ms"] == 60_000


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"producer_options": {"no.such.property": 1}}, "No such configuration property"),
        ({"consumer_options": {"no.such.property": 1}}, "No such configuration property"),
        ({"producer_options": {"queue.buffering.max.messages": -5}}, "outside allowed range"),
        ({"consumer_options": {"fetch.wait.max.ms": "soon"}}, "fetch.wait.max.ms"),
        (
            {"producer_options": {"max.in.flight.requests.per.connection": 50}},
            "max.in.flight",
        ),
    ],
)
def test_librdkafka_itself_refuses(fields, match):
    with pytest.raises(InvalidConfigError, match=match) as info:
        KafkaConfig(**fields)
    assert "librdkafka refuses" in str(info.value)


def test_librdkafka_refusal_never_shows_the_password():
    # A refused option next to a password: the message must not carry it.
    with pytest.raises(InvalidConfigError) as info:
        KafkaConfig(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            username="u",
            password=PASSWORD,
            producer_options={"sasl.oauthbearer.config": PASSWORD, "no.such": 1},
        )
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)


def test_passthrough_options_reach_librdkafka_settings():
    c = KafkaConfig(
        producer_options={"queue.buffering.max.messages": 1000},
        consumer_options={"session.timeout.ms": 10_000},
    )
    assert c.producer_conf()["queue.buffering.max.messages"] == 1000
    assert c.consumer_conf("g")["session.timeout.ms"] == 10_000
    assert isinstance(c.producer_options, Options) and hash(c) == hash(attrs.evolve(c))
    assert pickle.loads(pickle.dumps(c)) == c


def test_validate_reruns_every_check():
    c = KafkaConfig()
    c.validate()
    check_with_librdkafka(c)
    broken = attrs.evolve(c)
    object.__setattr__(broken, "acks", "1")
    with pytest.raises(InvalidConfigError):
        broken.validate()


def test_config_imports_without_the_driver():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["confluent_kafka"] = None
        from dictamesh_connectors.kafka import KafkaConfig
        c = KafkaConfig.from_url("kafka://h:9092?linger_ms=1")
        assert c.linger_ms == 1
        try:
            from dictamesh_connectors.kafka import KafkaConnector
        except Exception as err:
            assert type(err).__name__ == "MissingDependencyError", err
            assert "dictamesh-connectors[kafka]" in str(err)
        else:
            raise AssertionError("imported without the driver")
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    name=st.sampled_from([a.name for a in attrs.fields(KafkaConfig)]),
    value=_garbage,
)
def test_garbage_in_any_field_is_an_invalid_config_error(name, value):
    try:
        c = KafkaConfig(**{name: value})
    except InvalidConfigError:
        return
    # Accepted: it must then be fully usable.
    c.validate()
    c.producer_conf()
    c.connection_string()
    pickle.loads(pickle.dumps(c))
