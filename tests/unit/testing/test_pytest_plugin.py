"""The pytest plugin: its fixtures, seen from a test run of their own (pytester)."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from dictamesh_connectors.testing import pytest_plugin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = "dictamesh_connectors.testing.pytest_plugin"


def plugin_args() -> list[str]:
    """``-p`` the plugin unless the installed package's entry point already loads it."""
    installed = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    return [] if PLUGIN in installed else ["-p", PLUGIN]


def test_the_entry_point_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"dictamesh_connectors": PLUGIN}


def test_every_fixture_has_a_docstring():
    for name in pytest_plugin.__all__:
        assert (getattr(pytest_plugin, name).__doc__ or "").strip(), name


def test_fixtures_yield_connected_fakes_and_disconnect_them(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import pytest
        from dictamesh_connectors.errors import ErrorCode, NotConnectedError
        from dictamesh_connectors.testing.fakes import FakeFile, FakeHTTP, FakePostgreSQL

        SEEN = []

        def test_http(fake_http):
            assert isinstance(fake_http, FakeHTTP) and fake_http.is_connected
            fake_http.add("GET", "/x", json=[1])
            fake_http.fail_next("get", code=ErrorCode.UNAVAILABLE, times=2)
            assert fake_http.get("/x").json() == [1]   # retried without sleeping
            SEEN.append(fake_http)

        def test_postgresql(fake_postgresql):
            assert isinstance(fake_postgresql, FakePostgreSQL) and fake_postgresql.is_connected
            fake_postgresql.add_result("SELECT 1", rows=[(1,)])
            assert fake_postgresql.query("SELECT 1").scalar() == 1
            SEEN.append(fake_postgresql)

        def test_file(fake_file):
            assert isinstance(fake_file, FakeFile) and fake_file.is_connected
            fake_file.write_text("a", "x")
            SEEN.append(fake_file)

        def test_mongodb_and_kafka(fake_mongodb, fake_kafka):
            assert type(fake_mongodb).__name__ == "FakeMongoDB" and fake_mongodb.is_connected
            assert type(fake_kafka).__name__ == "FakeKafka" and fake_kafka.is_connected
            SEEN.extend([fake_mongodb, fake_kafka])

        def test_each_test_gets_a_fresh_fake(fake_file):
            assert fake_file.contents == {}

        def test_all_were_disconnected_after_their_test():
            assert len(SEEN) == 5
            assert not any(fake.is_connected for fake in SEEN)
            with pytest.raises(NotConnectedError):
                SEEN[0].get("/x")
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args(), "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_fixtures_of_fakes_that_are_missing_skip_cleanly(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import sys
        import importlib.abc

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name in ("psycopg", "dictamesh_connectors.testing.fakes.kafka"):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        def test_kafka(fake_kafka):
            pass

        def test_postgresql_without_its_driver(fake_postgresql):
            pass

        sys.meta_path.insert(0, Block())
        GONE = ("psycopg", "dictamesh_connectors.postgresql", "dictamesh_connectors.testing.fakes.")
        for name in [m for m in sys.modules if m.startswith(GONE)]:
            del sys.modules[name]
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args(), "-q", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*fake_kafka: FakeKafka is not available in this version*",
            "*fake_postgresql:*pip install 'dictamesh-connectors?postgresql?'*",
        ]
    )


def test_fault_proxy_fixture_starts_proxies_and_closes_them(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import socket
        import socketserver
        import threading

        import pytest

        from dictamesh_connectors.testing.faultproxy import FaultProxy

        STARTED = []


        class Echo(socketserver.BaseRequestHandler):
            def handle(self):
                while data := self.request.recv(1024):
                    self.request.sendall(data)


        @pytest.fixture(scope="module")
        def echo():
            server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            yield server.server_address
            server.shutdown()
            server.server_close()


        def roundtrip(port):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"ping")
                return sock.recv(4)


        def test_factory(fault_proxy, echo):
            host, port = echo
            proxies = [fault_proxy(echo), fault_proxy(f"{host}:{port}"), fault_proxy(port, seed=1)]
            for proxy in proxies:
                assert isinstance(proxy, FaultProxy) and not proxy.closed
                assert proxy.upstream == (host, port) and proxy.port != port
                assert roundtrip(proxy.port) == b"ping"
            proxies[0].refuse(True)
            with pytest.raises(ConnectionRefusedError):
                roundtrip(proxies[0].port)
            proxies[1].close()  # closed by the test: teardown closes it again, harmlessly
            STARTED.extend(proxies)


        @pytest.mark.parametrize("bad", [None, True, "no-port", "host:", ("h", "1"), ("h",)])
        def test_bad_upstream(fault_proxy, bad):
            with pytest.raises((TypeError, ValueError)):
                fault_proxy(bad)


        def test_every_proxy_was_closed_at_teardown():
            assert len(STARTED) == 3
            assert all(proxy.closed for proxy in STARTED)
            alive = [t.name for t in threading.enumerate() if t.name.startswith("faultproxy-")]
            assert alive == []  # every loop thread joined
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args(), "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)


PY_BLOCK = re.compile(r"^```py[ \t]*\n(.*?)^```", re.S | re.M)


def test_the_guides_fixture_examples_run(pytester: pytest.Pytester):
    """The ```py examples of docs/testing.md's "pytest fixtures" section pass as tests."""
    text = (ROOT / "docs" / "testing.md").read_text()
    section = text.split("### pytest fixtures", 1)[1].split("\n### ", 1)[0]
    blocks = PY_BLOCK.findall(section)
    assert len(blocks) >= 2  # the fakes' fixture and fault_proxy
    for number, block in enumerate(blocks, 1):
        pytester.makepyfile(**{f"test_guide_{number}": block})
    tests = sum(len(re.findall(r"^def test_", block, re.M)) for block in blocks)
    result = pytester.runpytest_subprocess(*plugin_args(), "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=tests)
