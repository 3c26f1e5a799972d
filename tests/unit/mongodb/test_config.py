"""MongoDBConfig: defaults, validation, from_url (every URI option), from_env, connection_string."""

import contextlib
import pickle
import subprocess
import sys
import textwrap
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dictamesh_connectors.config import Secret
from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.mongodb.config import MongoDBConfig

PASSWORD = "s3cr3t/p@ss:word%"


def test_defaults_are_bounded_and_sensible():
    c = MongoDBConfig()
    assert c.hosts == ("localhost:27017",) and c.database == "test" and not c.srv
    assert c.retry_writes and c.retry_reads and c.tz_aware
    assert c.read_preference == "primary" and c.uuid_representation == "standard"
    # Timeouts that bound waiting are never infinite by default.
    assert 0 < c.connect_timeout <= 30 and 0 < c.server_selection_timeout <= 30
    assert 0 < c.wait_queue_timeout <= 60 and c.heartbeat_frequency >= 0.5
    assert c.max_pool_size == 100 and c.min_pool_size == 0
    assert c.target == "test@localhost:27017"


def test_from_url_reads_every_modelled_option():
    c = MongoDBConfig.from_url(
        f"mongodb://app%40corp:{quote(PASSWORD, safe='')}"
        "@db1.example.org:27018,db2,[::1]:27019/my_db"
        "?replicaSet=rs0&authSource=admin&authMechanism=SCRAM-SHA-256&tls=true"
        "&tlsCAFile=/ca.pem&tlsCertificateKeyFile=/client.pem&tlsAllowInvalidHostnames=true"
        "&maxPoolSize=50&minPoolSize=5&maxIdleTimeMS=60000&waitQueueTimeoutMS=2500"
        "&connectTimeoutMS=3000&serverSelectionTimeoutMS=4000&socketTimeoutMS=90000"
        "&heartbeatFrequencyMS=1500&retryWrites=false&retryReads=false"
        "&readPreference=secondaryPreferred&readConcernLevel=majority&w=majority"
        "&journal=true&wTimeoutMS=5000&appName=svc&uuidRepresentation=javaLegacy&tz_aware=false"
    )
    assert c.username == "app@corp" and c.password == Secret(PASSWORD)
    assert c.hosts == ("db1.example.org:27018", "db2", "[::1]:27019")
    assert c.database == "my_db" and c.replica_set == "rs0"
    assert (c.auth_source, c.auth_mechanism) == ("admin", "SCRAM-SHA-256")
    assert c.tls and c.ca_file == "/ca.pem" and c.cert_key_file == "/client.pem"
    assert c.allow_invalid_hostnames
    assert (c.max_pool_size, c.min_pool_size, c.max_idle_time) == (50, 5, 60.0)
    assert (c.wait_queue_timeout, c.connect_timeout, c.server_selection_timeout) == (2.5, 3.0, 4.0)
    assert (c.socket_timeout, c.heartbeat_frequency) == (90.0, 1.5)
    assert not c.retry_writes and not c.retry_reads
    assert (c.read_preference, c.read_concern) == ("secondaryPreferred", "majority")
    assert (c.w, c.journal, c.wtimeout) == ("majority", True, 5.0)
    assert c.write_concern == {"w": "majority", "j": True, "wtimeout": 5000}
    assert (c.app_name, c.uuid_representation, c.tz_aware) == ("svc", "javaLegacy", False)


def test_option_names_are_case_insensitive_and_ssl_is_tls():
    c = MongoDBConfig.from_url("mongodb://h/?REPLICASET=rs&ssl=true&w=2&directconnection=false")
    assert c.replica_set == "rs" and c.tls and c.w == 2 and c.direct_connection is False


def test_srv_urls():
    c = MongoDBConfig.from_url("mongodb+srv://u:pw@cluster0.example.net/app?retryWrites=true")
    assert c.srv and c.hosts == ("cluster0.example.net",) and c.database == "app"
    assert c.connection_string().startswith("mongodb+srv://u:***@cluster0.example.net/app")


def test_unknown_uri_options_are_named_and_the_password_is_not_echoed():
    quoted = quote(PASSWORD, safe="")
    with pytest.raises(InvalidConfigError) as info:
        MongoDBConfig.from_url(f"mongodb://u:{quoted}@h/?compressors=zstd&bogus=1&w=1")
    message = str(info.value)
    assert "'bogus'" in message and "'compressors'" in message
    assert PASSWORD not in message and quoted not in message
    assert "replicaSet" in message  # says what is supported
    # Unescaped, its "/" ends the host part: refused, quoting no piece of it
    # (it said "invalid port in host 'u:s3cr3t'" once the options were right).
    for query in ("?compressors=zstd&bogus=1", "?w=1"):
        with pytest.raises(InvalidConfigError) as info:
            MongoDBConfig.from_url(f"mongodb://u:{PASSWORD}@h/{query}")
        assert "s3cr3t" not in str(info.value) and "p@ss" not in str(info.value)


@pytest.mark.parametrize(
    "url, match",
    [
        ("mongodb://a,b/?directConnection=true", "direct_connection needs exactly one host"),
        ("mongodb+srv://cluster.example.net:27017/", "must not have a port"),
        ("mongodb+srv://a.example.net,b.example.net/", "exactly one host"),
        ("mongodb+srv://cluster.example.net/?directConnection=true", "mongodb\\+srv"),
        ("mongodb://h/?readPreference=fastest", "read_preference"),
        ("mongodb://h/?readConcernLevel=eventual", "read_concern"),
        ("mongodb://h/?w=-1", "w:"),
        ("mongodb://h/?w=0&journal=true", "w=0"),
        ("mongodb://h/?connectTimeoutMS=-5", "connect_timeout"),
        ("mongodb://h/?socketTimeoutMS=abc", "socket_timeout"),
        ("mongodb://h/?wTimeoutMS=-1", "wtimeout"),
        ("mongodb://h/?maxPoolSize=0", "max_pool_size"),
        ("mongodb://h/?maxPoolSize=5&minPoolSize=6", "min_pool_size"),
        ("mongodb://h/?heartbeatFrequencyMS=100", "heartbeat_frequency"),
        ("mongodb://h/?authMechanism=MAGIC", "auth_mechanism"),
        ("mongodb://h/?uuidRepresentation=weird", "uuid_representation"),
        ("mongodb://h:99999/", "port"),
        ("mongodb://h/bad.db", "database"),
        ("mongodb://h/?tlsCAFile=/ca.pem", "need tls=True"),
        ("mongodb://:pw@h/", "password needs username"),
        ("redis://h/", "scheme"),
    ],
)
def test_invalid_combinations_fail_before_any_io(url, match):
    with pytest.raises(InvalidConfigError, match=match):
        MongoDBConfig.from_url(url)


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"hosts": []}, "at least one host"),
        ({"hosts": ["a b"]}, "invalid host"),
        ({"hosts": "::1"}, "brackets"),
        ({"hosts": [1]}, "host string"),
        ({"hosts": ["h"] * 1001}, "at most"),
        ({"database": ""}, "database"),
        ({"database": "x" * 64}, "database"),
        ({"username": "\ud800"}, "username"),
        ({"username": "u", "password": "\udfff"}, "password"),
        ({"app_name": "é" * 100}, "app_name"),
        ({"server_selection_timeout": float("inf")}, "server_selection_timeout"),
        ({"server_selection_timeout": 86_401}, "maximum"),
        ({"socket_timeout": float("nan")}, "socket_timeout"),
        ({"max_pool_size": 10_001}, "maximum"),
        ({"w": True}, "w:"),
        ({"w": "\x00"}, "w:"),
        ({"w": 1001}, "node count"),
        ({"replica_set": ""}, "replica_set"),
    ],
)
def test_invalid_values_name_the_field(fields, match):
    with pytest.raises(InvalidConfigError, match=match):
        MongoDBConfig.create(**fields)


def test_from_env_url_then_fields():
    env = {
        "APP_MONGO_URL": "mongodb://u:pw@h1,h2/app?replicaSet=rs0",
        "APP_MONGO_DATABASE": "other",
        "APP_MONGO_MAX_POOL_SIZE": "7",
        "APP_MONGO_RETRY_WRITES": "off",
        "APP_MONGO_RETRY_MAX_ATTEMPTS": "5",
    }
    c = MongoDBConfig.from_env("APP_MONGO_", env)
    assert c.hosts == ("h1", "h2") and c.replica_set == "rs0" and c.database == "other"
    assert c.max_pool_size == 7 and not c.retry_writes and c.retry.max_attempts == 5
    c = MongoDBConfig.from_env("X_", {"X_HOSTS": "a:1, b:2", "X_PASSWORD": "p", "X_USERNAME": "u"})
    assert c.hosts == ("a:1", "b:2") and c.password == Secret("p")


def test_connection_string_redacts_and_round_trips():
    c = MongoDBConfig.from_url(
        f"mongodb://u:{quote(PASSWORD, safe='')}@h1:1,h2/app?replicaSet=rs&w=majority"
        "&wTimeoutMS=2500&socketTimeoutMS=1500&retryWrites=false&journal=false"
    )
    shown = c.connection_string()
    assert PASSWORD not in shown and "u:***@" in shown
    assert MongoDBConfig.from_url(c.connection_string(redact=False)) == c
    assert (
        MongoDBConfig.from_url(MongoDBConfig().connection_string(redact=False)) == MongoDBConfig()
    )


def test_password_never_in_repr_str_or_pickle_text():
    c = MongoDBConfig(username="u", password=PASSWORD)
    assert PASSWORD not in repr(c) and PASSWORD not in str(c)
    assert PASSWORD not in c.connection_string()
    assert pickle.loads(pickle.dumps(c)) == c


def test_config_is_frozen_and_evolve_validates():
    c = MongoDBConfig()
    with pytest.raises(AttributeError):
        c.database = "x"  # type: ignore[misc]
    assert c.evolve(database="x").database == "x"
    with pytest.raises(InvalidConfigError):
        c.evolve(hosts=["a", "b"], direct_connection=True)
    with pytest.raises(InvalidConfigError, match="unknown"):
        c.evolve(nope=1)


_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(
    user=_text,
    password=_text,
    database=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
    port=st.integers(1, 65535),
)
def test_connection_string_round_trips_any_credentials(user, password, database, port):
    c = MongoDBConfig(hosts=[f"h:{port}"], username=user, password=password, database=database)
    assert MongoDBConfig.from_url(c.connection_string(redact=False)) == c


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "hosts",
                "database",
                "max_pool_size",
                "min_pool_size",
                "connect_timeout",
                "w",
                "socket_timeout",
                "read_preference",
                "direct_connection",
                "journal",
                "srv",
                "username",
                "password",
                "heartbeat_frequency",
                "wtimeout",
                "tls",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**70), 2**70),
            st.floats(),
            st.text(max_size=10),
            st.lists(st.text(max_size=5), max_size=3),
            st.binary(max_size=4),
        ),
        max_size=5,
    )
)
def test_garbage_is_invalid_config_or_a_valid_config(fields):
    try:
        c = MongoDBConfig.create(**fields)
    except InvalidConfigError:
        return
    c.validate()
    c.connection_string()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_garbage_urls_are_invalid_config_or_a_valid_config(text):
    for url in ("mongodb://" + text, "mongodb+srv://" + text, "mongodb://h/?" + text):
        with contextlib.suppress(InvalidConfigError):
            MongoDBConfig.from_url(url)


def test_config_imports_without_pymongo():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pymongo"] = None
        sys.modules["bson"] = None
        from dictamesh_connectors.mongodb import MongoDBConfig
        MongoDBConfig.from_url("mongodb://u:p@h/db")
        from dictamesh_connectors.errors import MissingDependencyError
        try:
            from dictamesh_connectors.mongodb import MongoDBConnector
        except MissingDependencyError as err:
            assert "dictamesh-connectors[mongodb]" in str(err), err
        else:
            raise SystemExit("imported without pymongo")
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
