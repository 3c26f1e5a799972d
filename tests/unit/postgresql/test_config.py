"""PostgreSQLConfig: defaults, validation, from_url, from_env (+ libpq PG*), connection_string."""

import pickle
import subprocess
import sys
import textwrap
import warnings
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dictamesh_connectors.config import Secret
from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.postgresql.config import PostgreSQLConfig

PASSWORD = "s3cr3t/p@ss:word%"


def test_defaults_are_bounded_and_sensible():
    c = PostgreSQLConfig()
    assert (c.host, c.port, c.database, c.username, c.password) == (
        "localhost",
        5432,
        None,
        None,
        None,
    )
    assert c.max_open_conns == 10 and c.min_open_conns == 2
    assert c.ssl_mode == "prefer" and c.health_check == "auto"
    # Timeouts are never infinite by default.
    assert 0 < c.connect_timeout < 60 and 0 < c.pool_timeout < 120
    assert c.statement_timeout > 0 and c.conn_max_lifetime > 0 and c.conn_max_idle_time > 0


def test_from_url_reads_every_part():
    c = PostgreSQLConfig.from_url(
        "postgresql://app%40corp:s3cr3t%2Fp%40ss%3Aword%25@db.example.org:6543/my%20db"
        "?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem"
        "&application_name=svc&connect_timeout=7&options=-c%20work_mem%3D64MB"
        "&search_path=reporting&max_open_conns=20&min_open_conns=5&pool_timeout=2.5"
        "&statement_timeout=30&conn_max_lifetime=600&conn_max_idle_time=60"
    )
    assert c.username == "app@corp"
    assert c.password == Secret(PASSWORD)
    assert (c.host, c.port, c.database) == ("db.example.org", 6543, "my db")
    assert (c.ssl_mode, c.ssl_root_cert, c.ssl_cert, c.ssl_key) == (
        "verify-full",
        "/ca.pem",
        "/c.pem",
        "/k.pem",
    )
    assert c.application_name == "svc" and c.connect_timeout == 7.0
    assert c.options == "-c work_mem=64MB" and c.schema == "reporting"
    assert (c.max_open_conns, c.min_open_conns, c.pool_timeout) == (20, 5, 2.5)
    assert (c.statement_timeout, c.conn_max_lifetime, c.conn_max_idle_time) == (30, 600, 60)
    assert c.target == "my db@db.example.org:6543"


def test_both_schemes_and_overrides():
    a = PostgreSQLConfig.from_url("postgres://u@h/d")
    b = PostgreSQLConfig.from_url("postgresql://u@h/d")
    assert a == b
    assert PostgreSQLConfig.from_url("postgres://u@h/d", port=7000).port == 7000
    with pytest.raises(InvalidConfigError, match="scheme"):
        PostgreSQLConfig.from_url("mysql://u:pw@h/d")


def test_ipv6_and_unix_socket_hosts():
    assert PostgreSQLConfig.from_url("postgresql://u@[::1]:5433/d").host == "::1"
    c = PostgreSQLConfig.from_url("postgresql://u@/d?host=/var/run/postgresql")
    assert c.host == "/var/run/postgresql"
    for config in (c, PostgreSQLConfig(host="::1", port=5433, database="d", username="u")):
        assert PostgreSQLConfig.from_url(config.connection_string(redact=False)) == config


def test_unknown_url_option_is_rejected_without_echoing_the_password():
    with pytest.raises(InvalidConfigError, match="unknown option") as info:
        PostgreSQLConfig.from_url(f"postgresql://u:{quote(PASSWORD, safe='')}@h/d?colour=blue")
    assert PASSWORD not in str(info.value) and quote(PASSWORD, safe="") not in str(info.value)


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"max_open_conns": 0}, "max_open_conns"),
        ({"max_open_conns": 2, "min_open_conns": 3}, "min_open_conns"),
        ({"port": 70000}, "port"),
        ({"port": "abc"}, "port"),
        ({"ssl_mode": "sometimes"}, "ssl_mode"),
        ({"ssl_key": "/k.pem"}, "ssl_key"),
        ({"pool_timeout": 0}, "pool_timeout"),
        ({"statement_timeout": -1}, "statement_timeout"),
        ({"connect_timeout": 0.5}, "connect_timeout"),
        ({"health_check": "sometimes"}, "health_check"),
        ({"schema": ""}, "schema"),
        ({"host": ""}, "host"),
    ],
)
def test_invalid_values_name_the_field(fields, match):
    with pytest.raises(InvalidConfigError, match=match):
        PostgreSQLConfig.create(**fields)


def test_from_env_prefix_and_libpq_variables():
    env = {
        "PGHOST": "pg-host",
        "PGPORT": "6000",
        "PGDATABASE": "pgdb",
        "PGUSER": "pguser",
        "PGPASSWORD": PASSWORD,
        "PGSSLMODE": "require",
        "PGAPPNAME": "from-pg",
        "PGCONNECT_TIMEOUT": "4",
        "PGOPTIONS": "-c geqo=off",
        "APP_DB_MAX_OPEN_CONNS": "7",
    }
    c = PostgreSQLConfig.from_env("APP_DB_", environ=env)
    assert (c.host, c.port, c.database, c.username) == ("pg-host", 6000, "pgdb", "pguser")
    assert c.password == Secret(PASSWORD) and c.ssl_mode == "require"
    assert (c.application_name, c.connect_timeout, c.options) == ("from-pg", 4.0, "-c geqo=off")
    assert c.max_open_conns == 7


def test_from_env_precedence_pg_then_url_then_fields():
    env = {
        "PGHOST": "pg-host",
        "PGUSER": "pguser",
        "PGSSLMODE": "require",
        "DB_URL": "postgresql://urluser@url-host/urldb",
        "DB_PORT": "7777",
        "DB_DATABASE": "fielddb",
    }
    c = PostgreSQLConfig.from_env("DB_", environ=env)
    assert c.host == "url-host"  # the URL beats PGHOST
    assert c.username == "urluser"
    assert c.ssl_mode == "require"  # PG* fills what the URL does not say
    assert c.port == 7777 and c.database == "fielddb"  # DB_FIELD beats both


def test_from_env_ignores_empty_pg_variables_and_reports_bad_ones():
    assert PostgreSQLConfig.from_env("X_", environ={"PGHOST": ""}).host == "localhost"
    with pytest.raises(InvalidConfigError, match="port"):
        PostgreSQLConfig.from_env("X_", environ={"PGPORT": "not-a-port"})


def test_connection_string_redacts_and_round_trips():
    c = PostgreSQLConfig(
        host="db",
        port=5433,
        database="app",
        username="me@corp",
        password=PASSWORD,
        schema="s",
        ssl_mode="require",
        max_open_conns=4,
    )
    shown = c.connection_string()
    assert PASSWORD not in shown and "***" in shown
    assert shown.startswith("postgresql://me%40corp:***@db:5433/app?")
    assert "ssl_mode=require" in shown and "schema=s" in shown and "max_open_conns=4" in shown
    assert PostgreSQLConfig.from_url(c.connection_string(redact=False)) == c


def test_password_never_in_repr_str_or_pickle_text():
    c = PostgreSQLConfig(username="u", password=PASSWORD)
    for text in (repr(c), str(c), c.connection_string(), repr(c.password)):
        assert PASSWORD not in text
    assert pickle.loads(pickle.dumps(c)) == c


def test_config_is_frozen_and_evolve_validates():
    c = PostgreSQLConfig()
    with pytest.raises(AttributeError):
        c.port = 1  # type: ignore[misc]
    assert c.evolve(port=1).port == 1
    with pytest.raises(InvalidConfigError):
        c.evolve(min_open_conns=c.max_open_conns + 1)


@settings(max_examples=100, deadline=None)
@given(
    user=st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
    password=st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
    database=st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
    port=st.integers(1, 65535),
)
def test_connection_string_round_trips_any_credentials(user, password, database, port):
    c = PostgreSQLConfig(host="h", port=port, database=database, username=user, password=password)
    assert PostgreSQLConfig.from_url(c.connection_string(redact=False)) == c
    # The redacted form does not depend on the password at all.
    assert c.connection_string() == c.evolve(password="other").connection_string()


def test_config_imports_without_psycopg():
    code = textwrap.dedent(
        """
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"psycopg", "psycopg_pool"}:
                    raise ImportError(f"No module named {name!r} (blocked)")
        sys.meta_path.insert(0, Block())
        from dictamesh_connectors.postgresql import PostgreSQLConfig
        PostgreSQLConfig.from_url("postgresql://u:pw@h/d")
        assert not [m for m in sys.modules if m.startswith("psycopg")]
        from dictamesh_connectors.errors import MissingDependencyError
        try:
            from dictamesh_connectors.postgresql import PostgreSQLConnector
        except MissingDependencyError as err:
            assert "pip install 'dictamesh-connectors[postgresql]'" in str(err), err
            print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ------------------------------------------------- max_idle_conns, the old name


def deprecated():
    return pytest.warns(
        DeprecationWarning, match="max_idle_conns is deprecated, use min_open_conns"
    )


def test_min_open_conns_is_the_pool_floor_and_cannot_exceed_the_ceiling():
    c = PostgreSQLConfig(min_open_conns=0, max_open_conns=3)
    assert c.min_open_conns == 0
    with pytest.raises(
        InvalidConfigError, match=r"min_open_conns \(3\) cannot exceed max_open_conns"
    ):
        PostgreSQLConfig(min_open_conns=3, max_open_conns=2)
    assert PostgreSQLConfig.from_url("postgresql://u@h/d?pool_min_conns=4").min_open_conns == 4


def test_max_idle_conns_keyword_still_works_with_a_deprecation_warning():
    with deprecated() as record:
        c = PostgreSQLConfig(max_idle_conns=1, max_open_conns=1)
    assert record[0].filename == __file__  # attributed to the caller, not to the library
    assert c.min_open_conns == 1 and c == PostgreSQLConfig(min_open_conns=1, max_open_conns=1)
    assert "max_idle_conns" not in repr(c)
    # Resolved once: copies and pickles carry min_open_conns only, and do not warn again.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert c.evolve(min_open_conns=0).min_open_conns == 0
        assert pickle.loads(pickle.dumps(c)) == c
        assert "idle" not in c.connection_string().replace("conn_max_idle_time", "")
    with deprecated():
        assert c.max_idle_conns == 1  # reading the old attribute


def test_max_idle_conns_is_validated_like_min_open_conns():
    with (
        deprecated(),
        pytest.raises(InvalidConfigError, match=r"max_idle_conns \(3\) cannot exceed"),
    ):
        PostgreSQLConfig(max_idle_conns=3, max_open_conns=2)
    with deprecated(), pytest.raises(InvalidConfigError, match="max_idle_conns: not a valid"):
        PostgreSQLConfig(max_idle_conns="many")
    with deprecated(), pytest.raises(InvalidConfigError, match="disagree"):
        PostgreSQLConfig(max_idle_conns=3, min_open_conns=1)
    with deprecated():
        assert PostgreSQLConfig(max_idle_conns=3, min_open_conns=3).min_open_conns == 3


def test_max_idle_conns_in_create_evolve_url_and_env():
    with deprecated() as record:
        assert PostgreSQLConfig.create(max_idle_conns="4").min_open_conns == 4
    assert record[0].filename == __file__
    with deprecated():
        assert PostgreSQLConfig().evolve(max_idle_conns=3).min_open_conns == 3
    with deprecated():
        url = PostgreSQLConfig.from_url("postgresql://u@h/d?max_idle_conns=5")
    assert url.min_open_conns == 5
    with deprecated():
        env = PostgreSQLConfig.from_env("DB_", environ={"DB_MAX_IDLE_CONNS": "6"})
    assert env.min_open_conns == 6
    with deprecated(), pytest.raises(InvalidConfigError, match="disagree"):
        PostgreSQLConfig.from_env(
            "DB_", environ={"DB_MAX_IDLE_CONNS": "6", "DB_MIN_OPEN_CONNS": "1"}
        )
    with (
        deprecated(),
        pytest.raises(InvalidConfigError, match=r"min_open_conns \(3\) cannot exceed"),
    ):
        PostgreSQLConfig.create(max_idle_conns=3, max_open_conns=2)
    with pytest.raises(InvalidConfigError, match="unknown option"):
        PostgreSQLConfig.create(_max_idle_conns=1)


def test_the_new_name_never_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PostgreSQLConfig(min_open_conns=1)
        PostgreSQLConfig.from_url("postgresql://u@h/d?min_open_conns=1")
        PostgreSQLConfig.from_env("DB_", environ={"DB_MIN_OPEN_CONNS": "1"})
        PostgreSQLConfig()
