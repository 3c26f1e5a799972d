"""HTTPConfig: defaults, validation, from_url/from_env, redaction, garbage in any field."""

import pickle

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dictamesh_connectors.config import Secret
from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.http import AuthType, Credentials, HTTPConfig
from dictamesh_connectors.retry import RetryPolicy

PASSWORD = "pa55-W0rd-x9"
BASE = "https://api.example.com/v1"


def test_defaults_are_careful():
    cfg = HTTPConfig(base_url=BASE)
    assert cfg.timeout == 30.0 and cfg.connect_timeout == 10.0
    assert cfg.verify is True and cfg.skip_verify is False and cfg.tls_verify is True
    assert cfg.auth_type is AuthType.NONE
    assert cfg.max_response_bytes == 100 * 1024 * 1024
    assert cfg.follow_redirects is True and cfg.max_redirects == 10
    assert cfg.user_agent.startswith("dictamesh-connectors/")
    assert cfg.health_method == "HEAD" and cfg.health_ok_below == 500
    assert cfg.retry == RetryPolicy()


def test_base_url_is_required_and_checked():
    with pytest.raises(InvalidConfigError, match="base_url is required"):
        HTTPConfig()
    for bad in ("ftp://host", "https://", "not a url", "https://h/x?q=1", "https://u:p@h/"):
        with pytest.raises(InvalidConfigError):
            HTTPConfig(base_url=bad)


def test_from_url_reads_credentials_and_options():
    cfg = HTTPConfig.from_url(f"https://alice:{PASSWORD}@api.example.com:8443/base?timeout=5")
    assert cfg.base_url == "https://api.example.com:8443/base"
    assert cfg.timeout == 5.0
    assert cfg.auth_type is AuthType.BASIC
    assert cfg.credentials.username == "alice"
    assert cfg.credentials.password == Secret(PASSWORD)
    assert PASSWORD not in repr(cfg) and PASSWORD not in str(cfg)
    assert cfg.connection_string() == "https://alice:***@api.example.com:8443/base?timeout=5.0"
    again = HTTPConfig.from_url(cfg.connection_string(redact=False))
    assert again == cfg


def test_from_url_rejects_unknown_options_and_schemes():
    with pytest.raises(InvalidConfigError, match="unknown option"):
        HTTPConfig.from_url("https://h/?bogus=1")
    with pytest.raises(InvalidConfigError):
        HTTPConfig.from_url(f"ftp://u:{PASSWORD}@h/")
    with pytest.raises(InvalidConfigError) as info:
        HTTPConfig.from_url(f"https://u:{PASSWORD}@h/?timeout=soon")
    assert PASSWORD not in str(info.value)


def test_from_url_api_key_in_query_options():
    cfg = HTTPConfig.from_url("https://h/?api_key=k3y&api_key_in=query&api_key_name=key")
    assert cfg.auth_type is AuthType.APIKEY
    assert cfg.credentials.api_key == Secret("k3y") and cfg.credentials.api_key_in == "query"
    assert "k3y" not in cfg.connection_string()


def test_from_env():
    env = {
        "API_URL": f"https://bob:{PASSWORD}@h/x",
        "API_TIMEOUT": "7",
        "API_MAX_RETRIES": "4",
        "API_ALLOWED_HOSTS": "cdn.example.com, *.files.example.com",
        "API_HEADERS": "X-Tenant: 42; X-Env: prod",
        "API_SKIP_VERIFY": "no",
    }
    cfg = HTTPConfig.from_env("API_", environ=env)
    assert cfg.timeout == 7.0 and cfg.retry.max_attempts == 5
    assert cfg.credentials.username == "bob" and cfg.credentials.password == Secret(PASSWORD)
    assert cfg.allowed_hosts == ("*.files.example.com", "cdn.example.com")
    assert dict(cfg.headers) == {"X-Tenant": "42", "X-Env": "prod"}
    cfg = HTTPConfig.from_env(
        "API_",
        environ={
            "API_BASE_URL": BASE,
            "API_OAUTH2_TOKEN_URL": "https://auth/token",
            "API_OAUTH2_CLIENT_ID": "cid",
            "API_OAUTH2_CLIENT_SECRET": PASSWORD,
        },
    )
    assert cfg.auth_type is AuthType.OAUTH2
    assert PASSWORD not in repr(cfg)


def test_auth_type_inferred_and_checked():
    assert HTTPConfig(base_url=BASE, credentials={"token": "t"}).auth_type is AuthType.BEARER
    assert HTTPConfig(base_url=BASE, credentials={"api_key": "k"}).auth_type is AuthType.APIKEY
    assert (
        HTTPConfig(base_url=BASE, credentials=Credentials(username="u")).auth_type is AuthType.BASIC
    )
    with pytest.raises(InvalidConfigError, match="bearer needs"):
        HTTPConfig(base_url=BASE, auth_type="bearer")
    with pytest.raises(InvalidConfigError, match="oauth2 needs"):
        HTTPConfig(base_url=BASE, credentials={"client_id": "x"})
    with pytest.raises(InvalidConfigError, match="unknown credential"):
        HTTPConfig(base_url=BASE, credentials={"tokn": "x"})
    with pytest.raises(InvalidConfigError):
        HTTPConfig(base_url=BASE, auth_type="kerberos")
    assert HTTPConfig(base_url=BASE, auth_type="API-KEY", credentials={"api_key": "k"})


def test_max_retries_overrides_the_policy_attempts():
    cfg = HTTPConfig(base_url=BASE, max_retries=0)
    assert cfg.retry.max_attempts == 1
    assert HTTPConfig(base_url=BASE, retry=RetryPolicy(max_attempts=7)).retry.max_attempts == 7


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": "ok\r\nInjected: 1"},
        {"Bad Name": "v"},
        {"X-A\n": "v"},
        {"X-A": "v\x00"},
        "X-A",
        [("X-A",)],
        42,
    ],
)
def test_headers_with_injection_are_rejected(headers):
    with pytest.raises(InvalidConfigError):
        HTTPConfig(base_url=BASE, headers=headers)


def test_headers_accept_mapping_pairs_json_and_env_string():
    expected = (("X-A", "1"), ("X-B", "two"))
    for form in (
        {"X-A": "1", "X-B": "two"},
        [("X-A", "1"), ("X-B", "two")],
        '{"X-A": "1", "X-B": "two"}',
        "X-A: 1\nX-B: two",
    ):
        assert HTTPConfig(base_url=BASE, headers=form).headers == expected


def test_other_cross_field_rules():
    with pytest.raises(InvalidConfigError, match="client_key needs client_cert"):
        HTTPConfig(base_url=BASE, client_key="/k.pem")
    with pytest.raises(InvalidConfigError):
        HTTPConfig(base_url=BASE, allowed_hosts=["ok.com", "bad host"])
    with pytest.raises(InvalidConfigError):
        HTTPConfig(base_url=BASE, user_agent="x\r\ny")
    with pytest.raises(InvalidConfigError):
        HTTPConfig(base_url=BASE, health_method="GE T")
    capped = HTTPConfig(base_url=BASE, max_conns_per_host=4, max_idle_conns_per_host=10)
    assert capped.max_idle_conns_per_host == 4
    assert HTTPConfig(base_url=BASE, skip_verify=True).tls_verify is False


def test_config_pickles_compares_and_hides_secrets():
    cfg = HTTPConfig(
        base_url=BASE,
        credentials={"token_url": "https://auth/t", "client_id": "c", "client_secret": PASSWORD},
        headers={"X-A": "1"},
    )
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert hash(cfg) == hash(pickle.loads(pickle.dumps(cfg)))
    assert PASSWORD not in repr(cfg) and PASSWORD not in cfg.connection_string()
    assert cfg.evolve(timeout=3).timeout == 3
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.timeout = 1


garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.builds(object),
    st.just("\r\n"),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_garbage_in_any_field_is_invalid_config_or_accepted(data):
    field = data.draw(st.sampled_from([a.name for a in attrs.fields(HTTPConfig)]))
    value = data.draw(garbage)
    fields = {"base_url": BASE, field: value}
    try:
        cfg = HTTPConfig.create(**fields)
    except InvalidConfigError as err:
        assert err.code.value == "INVALID_CONFIG"
    else:
        cfg.validate()
        repr(cfg)
        cfg.connection_string()


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from([a.name for a in attrs.fields(Credentials)]),
    value=garbage,
)
def test_garbage_in_any_credential_never_echoes_a_secret(name, value):
    try:
        HTTPConfig(base_url=BASE, credentials={name: value})
    except InvalidConfigError as err:
        if name in ("password", "token", "api_key", "client_secret") and isinstance(value, str):
            assert value not in str(err) or len(value) < 3


def test_credential_headers_are_masked_in_config_and_request_reprs():
    from dictamesh_connectors.http import Request

    config = HTTPConfig(
        base_url="https://h",
        headers={"Authorization": "Bearer s3cr3t", "X-Api-Key": "k3y", "Accept": "text/plain"},
    )
    request = Request("GET", "/", headers={"Cookie": "sid=s3cr3t", "X-Trace": "abc"})
    for text in (repr(config), repr(request)):
        assert "s3cr3t" not in text and "k3y" not in text and "***" in text
    assert "text/plain" in repr(config) and "abc" in repr(request)
    assert dict(config.headers)["Authorization"] == "Bearer s3cr3t"  # still sent as given


def test_every_field_name_the_issue_mandates_is_accepted():
    from dictamesh_connectors.http import AuthType

    cfg = HTTPConfig(
        base_url="https://api.example.com/v1",
        timeout=5,
        connect_timeout=2,
        max_retries=4,
        verify=True,
        skip_verify=False,
        ca_bundle="/etc/ssl/ca.pem",
        client_cert="/etc/ssl/client.pem",
        client_key="/etc/ssl/client.key",
        auth_type=AuthType.BEARER,
        credentials={"token": "t"},
        max_idle_conns=20,
        max_idle_conns_per_host=8,
        max_conns_per_host=16,
        pool_block=True,
        headers={"X-Tenant": "7"},
        user_agent="adapter/1.0",
        max_response_bytes=1024,
    )
    assert cfg.retry.max_attempts == 5 and cfg.tls_verify and cfg.max_conns_per_host == 16
    assert cfg.evolve(retry=RetryPolicy(max_attempts=2)).retry.max_attempts == 5  # max_retries wins
