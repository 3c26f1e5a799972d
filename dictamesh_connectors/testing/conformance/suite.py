"""``ConnectorConformance``: the contract of ``base.Connector``, as pytest tests.

A connector author subclasses it in a test module of their own, names their
connector class and a server, and fills in a hook or two; pytest then runs
every check below against the real server, each as its own named test:

==========================================  ===========================================
test                                        what it proves
==========================================  ===========================================
``test_lifecycle_states_in_order``          DISCONNECTED -> CONNECTING (while opening)
                                            -> CONNECTED -> DISCONNECTING (while
                                            closing) -> DISCONNECTED
``test_connect_disconnect_idempotent``      repeated and 32-thread racing connect()
                                            opens one handle; disconnect() closes it once
``test_operations_need_a_connection``       operations and ping() before connect() and
                                            after disconnect() raise NotConnectedError
``test_reconnect_after_disconnect``         connect/disconnect cycles and the context
                                            manager, each working afterwards
``test_failed_connect_is_reusable``         a connect() that fails leaves DISCONNECTED
``test_disconnect_drains_under_threads``    32 threads: in-flight operations finish,
                                            later ones get NotConnectedError, no hang
``test_disconnect_timeout_never_hangs``     disconnect(timeout) returns with operations
                                            still running; they end with ConnectorErrors
``test_no_lock_held_across_io``             ping() and operation() complete, repeatedly,
                                            while a slow operation runs in another thread,
                                            and no lock reachable from the connector is
                                            held all through it (``locks_held_across_io``)
``test_fork_child_uses_own_connection``     a real os.fork(): the child works on its own
                                            connection, the parent's keeps working (no
                                            error, no retry: its sockets were not used)
``test_fork_with_locks_held``               every lock reachable from the connector (nested
                                            ones, Conditions) comes from ``_fork``, and held
                                            by another thread at fork time, does not
                                            deadlock the child
``test_fork_with_operation_in_flight``      the child does not wait for the parent's
                                            in-flight operation; the parent's finishes
``test_errors_pickle``                      each ConnectorError keeps code, transient,
                                            hint, retry_after... through pickle (and every
                                            error raised in any test is checked too)
``test_secrets_redacted``                   the marker secret is in no repr, str, log
                                            record, exception, cause chain or traceback
``test_config_fields_reject_garbage``       hypothesis garbage in each config field:
                                            only InvalidConfigError (or TypeError)
``test_from_url_rejects_garbage``           the same for hostile ``from_url`` input
==========================================  ===========================================

No check asserts a speed: the lock check compares the order of events (pings
that *finished* while the slow operation was still running), with the
measured latencies in the failure message. Every wait is bounded
(``join_timeout``, ``fork_timeout``), so a deadlock fails the test instead
of hanging the run.

Example::

    from dictamesh_connectors.testing.conformance import ConnectorConformance
    from myredis import RedisConnector

    class TestMyRedis(ConnectorConformance):
        connector_class = RedisConnector
        url = "redis://:s3cret-MARKER@127.0.0.1:6379/0"
        secret_marker = "s3cret-MARKER"

        def operation(self, connector):
            connector.get("conformance")

        def slow_operation(self, connector, seconds):
            connector.blpop("conformance-empty", timeout=seconds)

Needs pytest and hypothesis (the ``testing`` extra).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable

import attrs
import pytest

from dictamesh_connectors.base import State
from dictamesh_connectors.errors import ConnectorError, InvalidConfigError, NotConnectedError
from dictamesh_connectors.testing.conformance._harness import Harness, Outcome, closed_port
from dictamesh_connectors.testing.conformance._locks import (
    fork_registered,
    is_locked,
    owner_of,
    reachable_locks,
    underlying,
)
from dictamesh_connectors.testing.conformance.forking import run_in_child
from dictamesh_connectors.testing.conformance.fuzzing import check_config_field, check_from_url
from dictamesh_connectors.testing.conformance.pickling import assert_round_trips
from dictamesh_connectors.testing.conformance.secretscan import SecretScan

__all__ = ["ConnectorConformance", "closed_port"]


class ConnectorConformance(Harness):
    """Base class of a connector's conformance tests; subclass it as ``Test<Something>``.

    Set ``connector_class`` and either ``url`` or ``config`` (or override
    ``make_config()``), and ``secret_marker``; implement
    ``slow_operation()``; override ``operation()``, ``failing_operation()``
    and ``unreachable_config()`` where the defaults do not fit (the hooks
    and knobs are documented on ``Harness``).

    Each test gets a fresh instance; connectors made with
    ``make_connector()`` are disconnected after the test, and every
    ``ConnectorError`` they raised is checked to survive pickling.
    """

    # -------------------------------------------------------------- lifecycle

    def test_lifecycle_states_in_order(self) -> None:
        """DISCONNECTED -> CONNECTING -> CONNECTED -> DISCONNECTING -> DISCONNECTED."""
        connector, seen = self._probe()
        observed = [connector.state]
        assert connector.is_connected is False
        connector.connect()
        observed += [s for _, s in seen] + [connector.state]
        assert connector.is_connected is True
        self.operation(connector)
        seen.clear()
        connector.disconnect()
        observed += [s for _, s in seen] + [connector.state]
        assert connector.is_connected is False
        expected = [
            State.DISCONNECTED,
            State.CONNECTING,
            State.CONNECTED,
            State.DISCONNECTING,
            State.DISCONNECTED,
        ]
        assert observed == expected, (
            f"states seen (start, inside _open, after connect, inside _close, after "
            f"disconnect): {[s.name for s in observed]}"
        )

    def test_connect_disconnect_idempotent(self) -> None:
        """connect() twice, or from 32 threads at once, opens one handle; disconnect closes once."""
        connector, seen = self._probe()
        connector.disconnect()  # never connected: nothing to do
        assert seen == [] and connector.state is State.DISCONNECTED
        connector.connect()
        connector.connect()
        assert [what for what, _ in seen] == ["open"], seen
        connector.disconnect()
        connector.disconnect()
        assert [what for what, _ in seen] == ["open", "close"], seen

        seen.clear()
        barrier = threading.Barrier(self.threads)
        outcomes = [Outcome() for _ in range(self.threads)]

        def racing(call: Callable[[], object]) -> Callable[[], object]:
            def run() -> object:
                barrier.wait(self.join_timeout)
                return call()

            return run

        workers = [self._worker(racing(connector.connect), o) for o in outcomes]
        self._join(workers, "connect()")
        errors = [o.error or o.refused for o in outcomes if o.error or o.refused]
        assert not errors, f"racing connect() failed: {errors[0]!r}"
        assert [what for what, _ in seen] == ["open"], f"{self.threads} racing connect(): {seen}"
        assert connector.is_connected
        self.operation(connector)

        barrier.reset()
        outcomes = [Outcome() for _ in range(self.threads)]
        workers = [self._worker(racing(connector.disconnect), o) for o in outcomes]
        self._join(workers, "disconnect()")
        errors = [o.error or o.refused for o in outcomes if o.error or o.refused]
        assert not errors, f"racing disconnect() failed: {errors[0]!r}"
        assert [what for what, _ in seen] == ["open", "close"], seen
        assert connector.state is State.DISCONNECTED

    def test_operations_need_a_connection(self) -> None:
        """Before connect() and after disconnect(): NotConnectedError, for operations and ping."""
        connector = self.make_connector()
        self._expect(NotConnectedError, lambda: self.operation(connector))
        self._expect(NotConnectedError, connector.ping)
        connector.connect()
        self.operation(connector)
        connector.disconnect()
        err = self._expect(NotConnectedError, lambda: self.operation(connector))
        self._expect(NotConnectedError, connector.ping)
        assert err.code.value == "NOT_CONNECTED" and err.connector == connector.name

    def test_reconnect_after_disconnect(self) -> None:
        """connect() after disconnect() works, again and again, and so does ``with``."""
        connector = self.make_connector()
        for _ in range(3):
            connector.connect()
            self.operation(connector)
            connector.ping()
            connector.disconnect()
            assert connector.state is State.DISCONNECTED
        with connector as same:
            assert same is connector and connector.is_connected
            self.operation(connector)
        assert connector.state is State.DISCONNECTED

    def test_failed_connect_is_reusable(self) -> None:
        """Connecting to nothing: a ConnectorError, DISCONNECTED after, connect() works again."""
        config = self.unreachable_config(self.make_config())
        if config is None:
            pytest.skip("unreachable_config() returned None: no unreachable server to try")
        connector = self.make_connector(config)
        self._unreachable_error(connector)
        assert connector.state is State.DISCONNECTED and not connector.is_connected
        self._unreachable_error(connector)
        assert connector.state is State.DISCONNECTED
        self._expect(NotConnectedError, lambda: self.operation(connector))

    # ------------------------------------------------------------------ drain

    def test_disconnect_drains_under_threads(self) -> None:
        """32 threads; disconnect(): in-flight work finishes, new work is refused, no hang."""
        connector = self.make_connector()
        connector.connect()
        self.operation(connector)
        slow_count = min(self.concurrent_slow_operations, self.threads)
        hammer = [Outcome() for _ in range(self.threads - slow_count)]
        started = threading.Semaphore(0)

        def hammering(outcome: Outcome) -> Callable[[], object]:
            def run() -> None:
                started.release()
                while True:  # until disconnect() refuses us
                    self.operation(connector)
                    outcome.ok += 1
                    # Yield the GIL between operations, as a caller does: an
                    # in-memory connector's operation never blocks (and the
                    # base class's hot path contends no lock), so 31 such
                    # threads would hold the GIL for whole switch intervals
                    # and starve the threads still starting.
                    time.sleep(0)

            return run

        workers = [self._worker(hammering(o), o) for o in hammer]
        deadline = time.monotonic() + self.join_timeout
        for _ in hammer:
            ready = started.acquire(timeout=max(0.0, deadline - time.monotonic()))
            assert ready, "the hammering threads did not all start"
        slow = [Outcome() for _ in range(slow_count)]
        workers += [
            self._worker(lambda: self.slow_operation(connector, self.slow_seconds), o) for o in slow
        ]
        self._wait_in_flight(connector, slow)
        still_running = sum(not o.done.is_set() for o in slow)
        assert still_running, "the slow operations ended before disconnect(); raise slow_seconds"

        connector.disconnect()

        assert connector.state is State.DISCONNECTED
        assert connector.stats().in_flight == 0, "disconnect() returned with work in flight"
        self._expect(NotConnectedError, lambda: self.operation(connector))
        self._join(workers, "operations after disconnect()")
        failed = [o.error for o in slow + hammer if o.error is not None]
        assert not failed, f"an operation in flight at disconnect() failed: {failed[0]!r}"
        errors = [o.error for o in hammer if o.error is not None]
        assert not errors, f"operation() failed under {self.threads} threads: {errors[0]!r}"
        killed = [o.refused for o in slow if o.refused is not None]
        assert not killed, f"a slow operation in flight was refused, not drained: {killed[0]!r}"
        assert all(o.ok == 1 for o in slow), "a slow operation did not finish"
        not_refused = [o for o in hammer if o.refused is None]
        assert not not_refused, "a thread's operation after disconnect() was not refused"

    def test_disconnect_timeout_never_hangs(self) -> None:
        """disconnect(timeout) returns with work still running; that work ends classified."""
        connector = self.make_connector()
        connector.connect()
        slow_count = min(self.concurrent_slow_operations, self.threads)
        slow = [Outcome() for _ in range(slow_count)]
        workers = [
            self._worker(lambda: self.slow_operation(connector, self.slow_seconds * 2), o)
            for o in slow
        ]
        self._wait_in_flight(connector, slow)
        closer = Outcome()
        self._join([self._worker(lambda: connector.disconnect(timeout=0.1), closer)], "disconnect")
        assert closer.error is None, f"disconnect(timeout=0.1) raised {closer.error!r}"
        assert connector.state is State.DISCONNECTED
        self._join(workers, "operations abandoned by disconnect(timeout)")
        raw = [o.error for o in slow if o.error and not isinstance(o.error, ConnectorError)]
        assert not raw, f"an abandoned operation raised a raw exception: {raw[0]!r}"
        connector.connect()  # reusable afterwards
        self.operation(connector)
        connector.disconnect()

    # ------------------------------------------------------------------- locks

    def test_no_lock_held_across_io(self) -> None:
        """ping() and operation() complete, again and again, while a slow operation waits on
        the server; no lock of the connector's own objects is held all through it."""
        connector = self.make_connector()
        connector.connect()
        self.operation(connector)
        baseline = []
        for _ in range(5):
            start = time.perf_counter()
            connector.ping()
            baseline.append(time.perf_counter() - start)
        own = self._own_modules()
        # Locks held before the slow operation (all along) are not its doing.
        locks = reachable_locks(connector, own)
        before = {id(lock) for _, lock in locks if is_locked(lock)}
        slow = Outcome()
        began = time.perf_counter()
        worker = self._worker(lambda: self.slow_operation(connector, self.slow_seconds), slow)
        self._wait_in_flight(connector, [slow])
        slow_thread = worker.ident
        # Found again now: objects the slow operation made (a transaction) count too.
        seen = {id(lock): (path, lock) for path, lock in locks}
        for path, lock in reachable_locks(connector, own):
            seen.setdefault(id(lock), (path, lock))
        samples: dict[int, list[bool]] = {key: [] for key in seen}
        operations: list[float] = []
        failures: list[BaseException] = []

        # The threads inside a ping() or operation() call now: the sampler
        # looks only while none is, so a lock those calls take in turn (a
        # connection's own) is seen free between them; what is still held then
        # is held by the slow operation (or for it).
        calling: set[str] = set()

        def sample() -> None:
            while not slow.done.is_set():
                if not calling:
                    for key, (_, lock) in seen.items():
                        owner = owner_of(lock)
                        samples[key].append(is_locked(lock) and owner in (None, slow_thread))
                time.sleep(0.001)

        def operate() -> None:
            while not slow.done.is_set():
                start = time.perf_counter()
                calling.add("operation")
                try:
                    self.operation(connector)
                except BaseException as exc:
                    failures.append(exc)
                    return
                finally:
                    calling.discard("operation")
                latency = time.perf_counter() - start
                if not slow.done.is_set():  # it finished while the slow one still ran
                    operations.append(latency)
                time.sleep(0.002)  # room for the sampler

        helpers = [
            threading.Thread(target=fn, daemon=True, name=f"conformance-{fn.__name__}")
            for fn in (sample, operate)
        ]
        for helper in helpers:
            helper.start()
        during: list[float] = []
        while not slow.done.is_set():
            start = time.perf_counter()
            calling.add("ping")
            try:
                connector.ping()
            finally:
                calling.discard("ping")
            latency = time.perf_counter() - start
            if not slow.done.is_set():  # this ping finished while the slow one still ran
                during.append(latency)
            time.sleep(0.002)  # room for the sampler
        self._join([worker, *helpers], "slow_operation, operation() and the lock sampler")
        duration = time.perf_counter() - began
        assert slow.error is None, f"slow_operation failed: {slow.error!r}"
        assert not failures, f"operation() failed beside the slow operation: {failures[0]!r}"

        def median_ms(values: list[float]) -> float:
            return statistics.median(values) * 1000 if values else float("nan")

        figures = (
            f"slow operation {duration * 1000:.0f} ms; ping before it "
            f"{median_ms(baseline):.1f} ms (median); {len(during)} ping(s) finished during "
            f"it, median {median_ms(during):.1f} ms; {len(operations)} operation() call(s), "
            f"median {median_ms(operations):.1f} ms"
        )
        # With a lock held across the slow I/O, every ping would wait for it:
        # at most one could slip in between its end and the flag.
        assert len(during) >= 3, f"ping() waited for the slow operation: {figures}"
        assert statistics.median(during) < duration / 2, f"ping() was delayed: {figures}"
        assert len(operations) >= 3, f"operation() waited for the slow operation: {figures}"
        assert statistics.median(operations) < duration / 2, f"operation() was delayed: {figures}"
        # Held in every sample of the middle of the slow operation (its first
        # and last tenth are its own start and end): held across it.
        held = []
        for key, values in samples.items():
            middle = values[len(values) // 10 : len(values) - len(values) // 10]
            if len(middle) >= 5 and all(middle) and key not in before:
                held.append(seen[key][0])
        allowed = set(self.locks_held_across_io)
        held_across = sorted(path for path in held if path not in allowed)
        assert not held_across, (
            f"lock(s) of the connector held all through the slow operation: {held_across} "
            f"(never hold a lock across I/O; one held by design goes in "
            f"locks_held_across_io, with the reason); {figures}"
        )

    # -------------------------------------------------------------------- fork

    def test_fork_child_uses_own_connection(self) -> None:
        """A forked child works on a connection of its own; the parent's keeps working."""
        connector = self.make_connector()
        connector.connect()
        self.operation(connector)
        connector.ping()
        before = connector.stats()

        def child() -> bool:
            for _ in range(3):
                self.operation(connector)
            connector.ping()
            connector.disconnect(timeout=10)
            connector.connect()
            self.operation(connector)
            connector.disconnect(timeout=10)
            return connector.state is State.DISCONNECTED

        assert run_in_child(child, timeout=self.fork_timeout) == 0, "the child failed (stderr)"
        assert connector.is_connected
        for _ in range(3):
            self.operation(connector)
        connector.ping()
        after = connector.stats()
        # A child that talked on the parent's sockets leaves them out of step:
        # the parent's next operations fail (perhaps hidden by a retry).
        assert (after.errors, after.retries) == (before.errors, before.retries), (
            f"the parent's operations failed after the child worked (the child used the "
            f"parent's connection?): errors {before.errors} -> {after.errors}, retries "
            f"{before.retries} -> {after.retries}"
        )

    def test_fork_with_locks_held(self) -> None:
        """Every lock of the connector held by another thread at fork time: no child deadlock."""
        connector = self.make_connector()
        connector.connect()
        self.operation(connector)
        found = reachable_locks(connector, self._own_modules())
        assert found, "the connector has no lock to hold"
        unsafe = [path for path, lock in found if not fork_registered(lock)]
        assert not unsafe, (
            f"lock(s) a forked child would inherit as they were (held, if another thread held "
            f"them): {unsafe}; make them with dictamesh_connectors._fork.create_lock(), "
            f"create_rlock() or create_condition()"
        )
        # Each underlying lock once (a Condition over the connector's RLock is that RLock).
        locks = list({id(underlying(lock)): lock for _, lock in found}.values())
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with contextlib.ExitStack() as stack:
                for lock in locks:
                    if not lock.acquire(timeout=self.join_timeout):
                        return
                    stack.callback(lock.release)
                held.set()
                release.wait(self.join_timeout)

        holder = threading.Thread(target=hold, daemon=True, name="conformance-lock-holder")
        holder.start()
        try:
            assert held.wait(self.join_timeout), "could not take the connector's locks"

            def child() -> bool:
                self.operation(connector)
                connector.ping()
                connector.disconnect(timeout=10)
                return True

            status = run_in_child(child, timeout=self.fork_timeout)
        finally:
            release.set()
            holder.join(self.join_timeout)
        assert status == 0, f"the child failed or deadlocked (exit status {status})"
        self.operation(connector)

    def test_fork_with_operation_in_flight(self) -> None:
        """The child neither waits for nor breaks the parent's in-flight operation."""
        connector = self.make_connector()
        connector.connect()
        slow = Outcome()
        worker = self._worker(lambda: self.slow_operation(connector, self.slow_seconds), slow)
        self._wait_in_flight(connector, [slow])

        def child() -> bool:
            self.operation(connector)
            connector.disconnect()  # no timeout: must not wait for the parent's operation
            return connector.state is State.DISCONNECTED

        status = run_in_child(child, timeout=self.fork_timeout)
        self._join([worker], "slow_operation")
        assert status == 0, f"the child failed or hung (exit status {status})"
        assert slow.error is None, f"the parent's in-flight operation failed: {slow.error!r}"
        self.operation(connector)

    # ------------------------------------------------------------------ errors

    def test_errors_pickle(self) -> None:
        """Errors the connector raises keep every attribute through pickle."""
        errors: list[ConnectorError] = []
        connector = self.make_connector()
        errors.append(self._expect(NotConnectedError, lambda: self.operation(connector)))
        errors.append(self._expect(InvalidConfigError, lambda: connector.disconnect(-1.0)))
        errors.append(self._expect(InvalidConfigError, lambda: self.connector_class(object())))
        unreachable = self.unreachable_config(self.make_config())
        if unreachable is not None:
            errors.append(self._unreachable_error(self.make_connector(unreachable)))
        connector.connect()
        err = self._attempt(lambda: self.failing_operation(connector))
        if err is not None:
            errors.append(err)
        connector.disconnect()
        errors.append(self._expect(NotConnectedError, connector.ping))
        # The connector package's own error classes, built with every field set.
        for cls in self._error_classes():
            try:
                made = cls(
                    f"{connector.name}: conformance",
                    retry_after=2.5,
                    maybe_applied=True,
                    connector=connector.name,
                    details={"where": "conformance"},
                )
            except TypeError as exc:
                pytest.fail(f"{cls.__qualname__} is not keyword-constructible: {exc}")
            errors.append(made)
        for error in errors:
            copy = assert_round_trips(error)
            assert copy.retry_after == error.retry_after

    # ----------------------------------------------------------------- secrets

    def test_secrets_redacted(self) -> None:
        """The marker secret shows in no repr, str, log record, error, cause or traceback."""
        marker = self.secret_marker
        assert marker, f"{type(self).__name__}: set secret_marker (a secret in secret_config())"
        config = self.secret_config()
        assert self._holds_marker(config), (
            f"secret_config() does not hold secret_marker {marker!r}: the check would prove nothing"
        )
        errors: list[ConnectorError] = []
        texts: list[str] = []

        def note(err: ConnectorError | None) -> None:
            if err is not None:
                errors.append(err)

        with SecretScan() as scan:
            texts += [repr(config), str(config)]
            with contextlib.suppress(NotImplementedError):
                texts.append(config.connection_string())
            connector = self.make_connector(config)
            texts += [repr(connector), str(connector)]
            note(self._attempt(connector.connect))
            if connector.is_connected:
                texts += [repr(connector), str(connector), repr(connector.stats())]
                note(self._attempt(lambda: self.operation(connector)))
                note(self._attempt(connector.ping))
                note(self._attempt(lambda: self.failing_operation(connector)))
                connector.disconnect()
            note(self._attempt(lambda: self.operation(connector)))
            unreachable = self.unreachable_config(config)
            if unreachable is not None:
                texts.append(repr(unreachable))
                note(self._unreachable_error(self.make_connector(unreachable)))
            url = self.url
            if url is not None:
                joiner = "&" if "?" in url else "?"
                note(
                    self._attempt(
                        lambda: self.connector_class.config_class.from_url(
                            f"{url}{joiner}no_such_option_conformance=1"
                        )
                    )
                )
                note(
                    self._attempt(
                        lambda: self.connector_class.config_class.from_url(
                            url, retry="not a policy"
                        )
                    )
                )
        scan.assert_clean(marker, *errors, texts=texts)

    # ------------------------------------------------------------------ config

    def test_config_fields_reject_garbage(self) -> None:
        """Garbage in any config field: InvalidConfigError (or TypeError), nothing else."""
        config = self.make_config()
        for field in attrs.fields(type(config)):
            check_config_field(
                config,
                field.name,
                connector_class=self.connector_class,
                max_examples=self.config_examples,
            )

    def test_from_url_rejects_garbage(self) -> None:
        """Hostile ``from_url`` input: InvalidConfigError (TypeError for a non-string) only."""
        config_class = self.connector_class.config_class
        if not config_class.url_schemes:
            pytest.skip(f"{config_class.__name__} has no URL form (url_schemes is empty)")
        check_from_url(
            config_class, connector_class=self.connector_class, max_examples=self.url_examples
        )
