import pytest

from dictamesh_connectors import cli, registry

from .fakes import FakeConnector


@pytest.fixture
def fake_scheme():
    registry.register("fake", FakeConnector)
    yield
    registry._registered.pop("fake", None)


def test_schemes_lists_registered(fake_scheme, capsys):
    assert cli.main(["schemes"]) == 0
    assert "fake" in capsys.readouterr().out.split()


def test_ping_ok_masks_password(fake_scheme, capsys):
    assert cli.main(["ping", "fake://alice:topsecret@db"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: fake://alice:***@db")
    assert "topsecret" not in out


def test_ping_reads_secret_options_from_env(fake_scheme, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_PW", "from-env")
    assert cli.main(["ping", "fake://alice@db", "--option", "password_env=FAKE_PW"]) == 0
    assert "from-env" not in capsys.readouterr().out


def test_bad_usage_exit_2(fake_scheme, capsys):
    assert cli.main(["ping", "nope://x"]) == 2
    assert cli.main(["ping", "fake://db", "--option", "broken"]) == 2
    assert cli.main(["ping", "fake://db", "--option", "colour=red"]) == 2
    assert cli.main(["ping", "fake://db", "--option", "password_env=UNSET_VAR_XYZ"]) == 2


def test_connector_error_exit_1(fake_scheme, capsys, monkeypatch):
    from .fakes import FakeDriverError

    def broken_open(self):
        raise FakeDriverError("refused", lost=True)

    monkeypatch.setattr(FakeConnector, "_open", broken_open)
    assert cli.main(["ping", "fake://db"]) == 1
    assert "CONNECTION_LOST (transient" in capsys.readouterr().err


def _toml(tmp_path, body):
    path = tmp_path / "connectors.toml"
    path.write_text(body)
    return str(path)


def test_check_all_healthy_exit_0(fake_scheme, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_CHECK_PW", "MARKER-CHECK-PW")
    path = _toml(
        tmp_path,
        "[connectors.db]\nurl = 'fake://alice@db'\npassword = { env = 'FAKE_CHECK_PW' }\n"
        "[connectors.cache]\nurl = 'fake://cache'\n",
    )
    assert cli.main(["check", "--config", path]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].split()[:3] == ["ok", "db", "fake"] and "fake://alice:***@db" in lines[0]
    assert lines[1].split()[:2] == ["ok", "cache"]
    assert "2 of 2 connectors healthy" in out.err
    assert "MARKER-CHECK-PW" not in out.out + out.err


def test_check_json_and_unhealthy_exit_1(fake_scheme, tmp_path, capsys, monkeypatch):
    import json

    from .fakes import FakeDriverError

    def broken_open(self):
        if self.config.host == "down":
            raise FakeDriverError("refused", lost=True)
        return FakeConnector._real_open(self)

    monkeypatch.setattr(FakeConnector, "_real_open", FakeConnector._open, raising=False)
    monkeypatch.setattr(FakeConnector, "_open", broken_open)
    path = _toml(
        tmp_path, "[connectors.up]\nurl = 'fake://up'\n[connectors.down]\nurl = 'fake://down'\n"
    )
    assert cli.main(["check", "--config", path, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"] is False
    by_name = {c["name"]: c for c in report["connectors"]}
    assert by_name["up"]["healthy"] is True and by_name["up"]["error_code"] is None
    assert by_name["down"]["error_code"] == "CONNECTION_LOST"
    assert by_name["down"]["transient"] is True
    assert cli.main(["check", "--config", path]) == 1
    out = capsys.readouterr()
    assert "FAILED  down" in out.out and "CONNECTION_LOST (transient" in out.out
    assert "1 unhealthy" in out.err


def test_check_bad_config_exit_2_names_connector_and_field(fake_scheme, tmp_path, capsys):
    import json

    path = _toml(tmp_path, "[connectors.orders]\nurl = 'fake://h'\nopen_delay = 'soon'\n")
    assert cli.main(["check", "--config", path]) == 2
    err = capsys.readouterr().err
    assert "connector 'orders', field 'open_delay'" in err
    assert cli.main(["check", "--config", path, "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["error"]["code"] == "INVALID_CONFIG"
    assert report["error"]["connector"] == "orders" and report["error"]["field"] == "open_delay"
    assert cli.main(["check", "--config", str(tmp_path / "missing.toml")]) == 2
    assert cli.main(["check", "--config", path, "--timeout", "nan"]) == 2


def test_check_from_environment(fake_scheme, capsys, monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("DICTAMESH_CONNECTOR_"):
            monkeypatch.delenv(key)
    assert cli.main(["check"]) == 2
    assert "no connectors configured" in capsys.readouterr().err
    monkeypatch.setenv("DICTAMESH_CONNECTOR_ENVDB_URL", "fake://envdb")
    assert cli.main(["check"]) == 0
    assert "envdb" in capsys.readouterr().out


def test_ping_json(fake_scheme, capsys):
    import json

    assert cli.main(["ping", "fake://alice:topsecret@db", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["healthy"] is True and out["target"] == "fake://alice:***@db"
    assert cli.main(["ping", "nope://x", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "INVALID_CONFIG"


@pytest.mark.parametrize("command", ["ping", "check"])
@pytest.mark.parametrize("timeout", ["nan", "0", "-1", "1e300"])
def test_a_bad_timeout_is_exit_2_before_anything_connects(
    fake_scheme, capsys, monkeypatch, command, timeout
):
    # It was checked only by ping(), after connect() had opened the connection,
    # and the disconnect(timeout=nan) in the finally block then failed too,
    # leaving the connector connected.
    opened = []
    real_open = FakeConnector._open

    def counting_open(self):
        opened.append(self)
        return real_open(self)

    monkeypatch.setattr(FakeConnector, "_open", counting_open)
    monkeypatch.setenv("DICTAMESH_CONNECTOR_ONE_URL", "fake://db")
    argv = ["ping", "fake://db"] if command == "ping" else ["check"]
    assert cli.main([*argv, "--timeout", timeout]) == 2
    assert "--timeout" in capsys.readouterr().err
    assert opened == []


def test_an_infinite_timeout_means_no_limit(fake_scheme, capsys):
    assert cli.main(["ping", "fake://db", "--timeout", "inf"]) == 0
    assert capsys.readouterr().out.startswith("ok: fake://db")
