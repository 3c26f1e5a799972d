"""A private, single-node Kafka broker for the tests that kill, restart or reconfigure one.

The shared test broker (``scripts/services/kafka.sh``, 127.0.0.1:59092) is
used by everyone at once and must never be disturbed; tests that SIGKILL a
broker, or need a SASL listener, start this one instead, from the same
cached jars (``~/.cache/dictamesh-connectors/kafka-<version>/libs``), on
free ports and in a temporary directory. It has two listeners:

* ``PLAINTEXT`` (``bootstrap``), and
* ``SASL_PLAINTEXT`` with SCRAM-SHA-256 (``sasl_bootstrap``), whose one
  user (``SCRAM_USER`` / ``SCRAM_PASSWORD``) is created when the storage is
  formatted (``kafka-storage format --add-scram``).

``PrivateBroker(workdir, advertised_port=P)`` advertises its PLAINTEXT
listener as ``127.0.0.1:P`` (a ``FaultProxy`` listening there and forwarding
to ``broker.port``), so clients that bootstrap through the proxy stay on it;
the broker's own inter-broker traffic then uses a separate INTERNAL
listener that bypasses the proxy.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import REPO_ROOT

SCRAM_USER = "alice"
SCRAM_PASSWORD = "alice-Scram-Secret-4711"
READY_TIMEOUT = 120.0


def _kafka_version() -> str:
    env = os.environ.get("DICTAMESH_KAFKA_VERSION")
    if env:
        return env
    script = (REPO_ROOT / "scripts" / "services" / "kafka.sh").read_text()
    for line in script.splitlines():
        if line.startswith("KAFKA_VERSION="):
            return line.split(":-", 1)[1].rstrip('}"')
    raise RuntimeError("no KAFKA_VERSION in scripts/services/kafka.sh")


def jar_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "dictamesh-connectors" / f"kafka-{_kafka_version()}" / "libs"


def available() -> str | None:
    """``None`` when a private broker can start here, else why not."""
    libs = jar_dir()
    if not any(libs.glob("kafka_2.13-*.jar")):
        return f"no cached Kafka jars in {libs} (run scripts/services/kafka.sh up once)"
    try:
        subprocess.run(["java", "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "no usable java on PATH"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateBroker:
    """One KRaft broker+controller; ``start()``, ``kill()``, ``start()`` again, ``stop()``."""

    def __init__(self, workdir: Path, *, advertised_port: int | None = None) -> None:
        self.workdir = workdir
        self.advertised_port = advertised_port
        self.internal_port = _free_port() if advertised_port is not None else None
        self.port = _free_port()
        self.sasl_port = _free_port()
        self.controller_port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.sasl_bootstrap = f"127.0.0.1:{self.sasl_port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "broker.log"
        self._write_config()
        self._format()

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            f"{jar_dir()}/*",
        ]

    def _write_config(self) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        listeners = (
            f"PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}"
        )
        advertised = (
            f"PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
        )
        inter_broker = "PLAINTEXT"
        protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
        if self.advertised_port is not None:
            listeners += f",INTERNAL://127.0.0.1:{self.internal_port}"
            advertised = (
                f"PLAINTEXT://127.0.0.1:{self.advertised_port},"
                f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},"
                f"INTERNAL://127.0.0.1:{self.internal_port}"
            )
            inter_broker = "INTERNAL"
            protocols += ",INTERNAL:PLAINTEXT"
        (self.workdir / "server.properties").write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners={listeners}",
                    f"advertised.listeners={advertised}",
                    "controller.listener.names=CONTROLLER",
                    f"inter.broker.listener.name={inter_broker}",
                    f"listener.security.protocol.map={protocols}",
                    "sasl.enabled.mechanisms=SCRAM-SHA-256",
                    "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config="
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                    f"log.dirs={data}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "num.network.threads=2",
                    "num.io.threads=2",
                    "",
                ]
            )
        )
        (self.workdir / "log4j2.properties").write_text(
            "\n".join(
                [
                    "status = warn",
                    "appender.file.type = File",
                    "appender.file.name = FILE",
                    f"appender.file.fileName = {self.log_path}",
                    "appender.file.layout.type = PatternLayout",
                    "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = INFO",
                    "rootLogger.appenderRef.file.ref = FILE",
                    "",
                ]
            )
        )

    def _format(self) -> None:
        # As Kafka's own Uuid.randomUuid(): never one starting with "-",
        # which StorageTool's argument parser takes for an option (one id in
        # 64 did, and failed every test of the private broker at once).
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        subprocess.run(
            [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.workdir / "server.properties"),
                "--add-scram",
                f"SCRAM-SHA-256=[name={SCRAM_USER},password={SCRAM_PASSWORD}]",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        """Start the broker (again, on the same data and ports) and wait until it answers."""
        assert self.process is None or self.process.poll() is not None
        out = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(self.workdir / "server.properties")],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        self.wait_ready()

    def wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + READY_TIMEOUT
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the private broker exited; see {self.log_path}")
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except Exception:
                time.sleep(0.5)
        raise RuntimeError(f"the private broker did not answer in {READY_TIMEOUT}s")

    def kill(self) -> None:
        """SIGKILL the broker (no clean shutdown) and wait for it to die."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(60)
