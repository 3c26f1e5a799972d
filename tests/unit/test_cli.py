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
