"""The conformance suite's harness: the hooks a connector author fills in, and the plumbing.

Worker threads with bounded joins, the wait for operations to be in flight,
the error recorder every test's teardown checks, and a probe subclass that
records the lifecycle state inside ``_open``/``_close``. The checks
themselves are in ``suite``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import attrs
import pytest

from dictamesh_connectors.base import Connector, State
from dictamesh_connectors.config import BaseConfig, Secret
from dictamesh_connectors.errors import ConnectorError, NotConnectedError
from dictamesh_connectors.testing.conformance.pickling import ErrorRecorder, assert_round_trips

__all__ = ["Harness", "Outcome", "closed_port"]


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (it was just free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Outcome:
    """What one worker thread saw: results, errors, whether it finished."""

    def __init__(self) -> None:
        self.ok = 0
        """Operations that returned."""
        self.refused: NotConnectedError | None = None
        """The NotConnectedError that stopped it, if one did."""
        self.error: BaseException | None = None
        """Any other exception that stopped it."""
        self.done = threading.Event()
        """Set when the thread's target returned or raised."""
        self.thread: threading.Thread | None = None
        """The worker thread."""


class Harness:
    """The hooks an author fills in, and the plumbing every check shares.

    ``ConnectorConformance`` (``suite``) adds the checks. Each test gets a
    fresh instance; connectors made with ``make_connector()`` are
    disconnected after the test, and every ``ConnectorError`` they raised
    is checked to survive pickling.
    """

    connector_class: ClassVar[type[Connector[Any, Any]]]
    """The connector under test (a ``dictamesh_connectors.base.Connector`` subclass)."""
    url: str | None = None
    """The server, as a URL for ``connector_class.config_class.from_url``."""
    config: BaseConfig | None = None
    """The server, as a ready config (instead of ``url``)."""
    secret_marker: ClassVar[str] = ""
    """A secret that ``secret_config()`` holds (a password, a token) and nothing may show."""
    threads: ClassVar[int] = 32
    """Threads of the drain check."""
    concurrent_slow_operations: ClassVar[int] = 4
    """Slow operations the drain checks run at once (1 if the connector serialises them)."""
    slow_seconds: ClassVar[float] = 2.0
    """How long ``slow_operation`` is asked to take."""
    join_timeout: ClassVar[float] = 120.0
    """Seconds any wait for a thread may take before the check fails as a hang."""
    fork_timeout: ClassVar[float] = 60.0
    """Seconds a forked child may take before it is killed and the check fails."""
    config_examples: ClassVar[int] = 25
    """Hypothesis examples per config field."""
    url_examples: ClassVar[int] = 150
    """Hypothesis examples for ``from_url``."""
    locks_held_across_io: ClassVar[tuple[str, ...]] = ()
    """Paths of locks the connector holds across its slow operation by design.

    The lock check names each lock it finds held all through the slow
    operation by its path from the connector (``"_txn_lock"``,
    ``"_session._lock"``); a path listed here is allowed. Only for a lock
    that serialises what must be serialised (Kafka's one transaction at a
    time per producer) and that nothing else waits for: ``ping()`` and
    ``operation()`` are still required to complete meanwhile.
    """

    _recorder: ErrorRecorder
    _made: list[Connector[Any, Any]]

    # ------------------------------------------------------------------ hooks

    def make_config(self) -> BaseConfig:
        """The config every check uses (from ``config`` or ``url`` by default)."""
        if self.config is not None:
            return self.config
        if self.url is not None:
            return self.connector_class.config_class.from_url(self.url)
        raise NotImplementedError(
            f"{type(self).__name__}: set `url` or `config`, or override make_config()"
        )

    def secret_config(self) -> BaseConfig:
        """A config holding ``secret_marker`` (default: ``make_config()``).

        It need not be accepted by the server: a connect refused for a bad
        password is scanned like a working connection.
        """
        return self.make_config()

    def operation(self, connector: Any) -> object:
        """A cheap operation that succeeds on a connected connector (default: ``ping()``)."""
        connector.ping()
        return None

    def slow_operation(self, connector: Any, seconds: float) -> object:
        """An operation that takes about ``seconds`` (waiting on the server) and succeeds.

        It must be one in-flight operation of the connector for all that time
        (one ``_run``/``_use``): a server-side sleep, a blocking pop, a held
        transaction, a stream read slowly. It may run in several threads at
        once (``concurrent_slow_operations``).
        """
        raise NotImplementedError(
            f"{type(self).__name__}: implement slow_operation(connector, seconds)"
        )

    def failing_operation(self, connector: Any) -> object:
        """An operation the server refuses with a ``ConnectorError`` (for the pickle check).

        The default does nothing (no such error is checked).
        """
        return None

    def unreachable_config(self, config: BaseConfig) -> BaseConfig | None:
        """``config`` pointed at a server that is not there (its ``connect()`` must fail).

        The default moves a ``port`` field to a closed port on 127.0.0.1 (and
        ``host`` to 127.0.0.1). Return ``None`` when the idea does not apply.
        """
        names = {a.name for a in attrs.fields(type(config))}
        if "port" not in names:
            return None
        changes: dict[str, Any] = {"port": closed_port()}
        if "host" in names:
            changes["host"] = "127.0.0.1"
        return config.evolve(**changes)

    def make_connector(self, config: BaseConfig | None = None) -> Any:
        """A new, DISCONNECTED connector (disconnected and error-checked after the test)."""
        connector = self.connector_class(config if config is not None else self.make_config())
        return self._track(connector)

    # ---------------------------------------------------------------- plumbing

    @pytest.fixture(autouse=True)
    def _conformance_run(self) -> Iterator[None]:
        self._recorder = ErrorRecorder()
        self._made = []
        yield
        for connector in self._made:
            with contextlib.suppress(Exception):
                connector.disconnect(timeout=30)
        failures = []
        for error in self._recorder.errors:
            try:
                assert_round_trips(error)
            except AssertionError as exc:
                failures.append(str(exc))
        assert not failures, "errors raised in this test do not pickle:\n" + "\n".join(failures)

    def _track(self, connector: Any) -> Any:
        connector.add_listener(self._recorder)
        self._made.append(connector)
        return connector

    def _expect(self, error_class: type[BaseException], fn: Callable[[], object]) -> Any:
        """Run ``fn``; it must raise ``error_class``; the error is recorded and returned."""
        try:
            fn()
        except error_class as err:
            self._recorder.add(err)
            return err
        except ConnectorError as err:
            self._recorder.add(err)
            pytest.fail(f"expected {error_class.__name__}, got {err!r}")
        pytest.fail(f"expected {error_class.__name__}, nothing was raised")

    def _attempt(self, fn: Callable[[], object]) -> ConnectorError | None:
        """Run ``fn``; return (and record) the ConnectorError it raised, if any."""
        try:
            fn()
        except ConnectorError as err:
            self._recorder.add(err)
            return err
        return None

    def _worker(self, target: Callable[[], object], outcome: Outcome) -> threading.Thread:
        def run() -> None:
            try:
                target()
                outcome.ok += 1
            except NotConnectedError as err:
                self._recorder.add(err)
                outcome.refused = err
            except BaseException as err:
                self._recorder.add(err)
                outcome.error = err
            finally:
                outcome.done.set()

        thread = threading.Thread(target=run, daemon=True, name="conformance-worker")
        outcome.thread = thread
        thread.start()
        return thread

    def _join(self, threads: list[threading.Thread], what: str) -> None:
        deadline = time.monotonic() + self.join_timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = sum(t.is_alive() for t in threads)
        assert not alive, f"{alive} thread(s) still running {what} after {self.join_timeout}s"

    def _in_flight(self, connector: Any, outcomes: list[Outcome]) -> bool:
        """Whether the operation of every worker of ``outcomes`` is admitted in flight.

        Asked of the workers' own threads (``Connector._in_flight_threads``):
        a count (``stats().in_flight``) would also count the drain check's
        hammering threads, and the check would disconnect before the slow
        operations even began (they were then refused, not drained).
        """
        if not isinstance(connector, Connector):
            raise TypeError(
                f"{type(connector).__name__} is not a dictamesh_connectors.base.Connector: "
                "the conformance suite checks connectors built on it"
            )
        idents = {o.thread.ident for o in outcomes if o.thread is not None}
        return idents <= set(connector._in_flight_threads())

    def _wait_in_flight(self, connector: Any, outcomes: list[Outcome]) -> None:
        """Wait (bounded) until the workers' slow operations are all in flight together."""
        deadline = time.monotonic() + self.join_timeout
        while not self._in_flight(connector, outcomes):
            failed = [o.error for o in outcomes if o.error is not None]
            if failed:
                pytest.fail(f"slow_operation failed: {failed[0]!r}")
            if all(o.done.is_set() for o in outcomes):
                pytest.fail(
                    "slow_operation returned before it was seen in flight: it must take "
                    f"about {self.slow_seconds}s inside one operation of the connector"
                )
            assert time.monotonic() < deadline, (
                f"{len(outcomes)} slow operation(s) never were in flight together "
                f"(stats().in_flight = {connector.stats().in_flight})"
            )
            time.sleep(0.005)

    def _own_modules(self) -> tuple[str, ...]:
        """The module prefixes whose objects the lock walks enter (the connector's, ours)."""
        top = self.connector_class.__module__.split(".")[0]
        return tuple(dict.fromkeys((top, "dictamesh_connectors")))

    def _probe(self) -> tuple[Any, list[tuple[str, State]]]:
        """A connector of a subclass recording its state inside ``_open`` and ``_close``."""
        seen: list[tuple[str, State]] = []
        base: Any = self.connector_class

        def _open(connector: Any) -> Any:
            seen.append(("open", connector.state))
            return base._open(connector)

        def _close(connector: Any, handle: Any, timeout: float | None) -> None:
            seen.append(("close", connector.state))
            base._close(connector, handle, timeout)

        probe = type(base.__name__, (base,), {"_open": _open, "_close": _close})
        probe.__qualname__ = base.__qualname__
        return self._track(probe(self.make_config())), seen

    def _unreachable_error(self, connector: Any) -> ConnectorError:
        """Connect ``connector`` (to a server that is not there) and return how it failed.

        A connector that opens its pool lazily (HTTP) may connect fine; then
        ``ping()`` must fail, with a ConnectorError.
        """
        err = self._attempt(connector.connect)
        if err is None:
            err = self._attempt(connector.ping)
            assert err is not None, "neither connect() nor ping() to an unreachable server failed"
            connector.disconnect()
        return err

    def _error_classes(self) -> list[type[ConnectorError]]:
        """The ConnectorError classes of the connector's module, or of its package.

        The package when it exports the connector (``mypkg/__init__.py``
        re-exports ``MyConnector``), else the connector's module alone.
        """
        cls = self.connector_class
        module_name = cls.__module__
        scope = module_name
        package_name = module_name.rpartition(".")[0]
        package = sys.modules.get(package_name) if package_name else None
        if package is not None and getattr(package, cls.__name__, None) is cls:
            scope = package_name
        found: dict[str, type[ConnectorError]] = {}
        for name, mod in list(sys.modules.items()):
            if mod is None or not (name == scope or name.startswith(scope + ".")):
                continue
            for value in vars(mod).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, ConnectorError)
                    and (value.__module__ == scope or value.__module__.startswith(scope + "."))
                ):
                    found[f"{value.__module__}.{value.__qualname__}"] = value
        return [found[k] for k in sorted(found)]

    def _holds_marker(self, config: BaseConfig) -> bool:
        """Whether ``config`` (its connection string, any field, nested configs) holds it."""
        marker = self.secret_marker
        with contextlib.suppress(NotImplementedError):
            if marker in config.connection_string(redact=False):
                return True

        def holds(value: Any, depth: int) -> bool:
            if isinstance(value, Secret):
                return marker in value.get_secret_value()
            if isinstance(value, str):
                return marker in value
            if depth < 4 and attrs.has(type(value)):
                fields = attrs.fields(type(value))
                return any(holds(getattr(value, f.name), depth + 1) for f in fields)
            if depth < 4 and isinstance(value, (list, tuple, dict)):
                items = value.values() if isinstance(value, dict) else value
                return any(holds(item, depth + 1) for item in items)
            return False

        return holds(config, 0)
