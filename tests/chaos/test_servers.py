"""The campaign's own instruments: the reaper and the HTTP write server (no database needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.retry import RetryPolicy
from tests.chaos.servers import WriteServer

pytestmark = pytest.mark.integration  # real processes and sockets (no shared service)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by its parent) is dead for our purpose.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


def test_the_reaper_kills_the_servers_of_a_campaign_that_was_sigkilled(tmp_path):
    # A campaign process starts a "server" in its own process group and is
    # then SIGKILLed: no atexit, no finally. The server must not survive it.
    script = textwrap.dedent(
        """
        import subprocess, sys, time
        from tests.chaos.servers import Reaper
        reaper = Reaper()
        server = subprocess.Popen(["sleep", "600"], start_new_session=True)
        reaper.watch(server.pid)
        print(server.pid, flush=True)
        time.sleep(600)
        """
    )
    campaign = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert campaign.stdout is not None
    server_pid = int(campaign.stdout.readline())
    try:
        assert _alive(server_pid)
        campaign.send_signal(signal.SIGKILL)
        campaign.wait(30)
        deadline = time.monotonic() + 30
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(server_pid), "the server outlived its SIGKILLed campaign"
    finally:
        if _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


@pytest.fixture
def write_server():
    server = WriteServer()
    server.start()
    yield server
    server.stop()


def _connector(server: WriteServer, **fields) -> HTTPConnector:
    policy = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, deadline=10)
    api = HTTPConnector(HTTPConfig(base_url=server.base_url, timeout=5, retry=policy, **fields))
    api.connect()
    return api


def test_a_write_is_applied_once_per_key_whatever_the_fault(write_server):
    api = _connector(write_server)
    try:
        for n, fault in enumerate(["503", "500_after_apply", "drop_before_apply",
                                   "drop_after_apply"]):  # fmt: skip
            write_server.arm([fault])
            api.post("/writes", json={"id": f"w{n}"}, idempotency_key=f"k{n}")
        assert write_server.snapshot() == {"w0": 1, "w1": 1, "w2": 1, "w3": 1}
        assert write_server.replays == 2  # after 500_after_apply and drop_after_apply
        # The same write under a second key is applied again: a duplicate the
        # checker sees.
        api.post("/writes", json={"id": "w0"}, idempotency_key="another")
        assert write_server.snapshot()["w0"] == 2
    finally:
        api.disconnect()


def test_a_restart_keeps_the_applied_writes_and_refuses_while_down(write_server):
    api = _connector(write_server)
    try:
        api.post("/writes", json={"id": "before"}, idempotency_key="k-before")
        write_server.stop()
        with pytest.raises(ConnectorError) as info:
            api.post("/writes", json={"id": "down"}, idempotency_key="k-down")
        assert info.value.code.value == "CONNECTION_FAILED" and not info.value.maybe_applied
        write_server.start()
        api.post("/writes", json={"id": "after"}, idempotency_key="k-after")
        assert write_server.snapshot() == {"before": 1, "after": 1}
    finally:
        api.disconnect()
