"""What the framework tests share: PostgreSQL backends by application name, ports, HTTP fan-out."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


def unique_name(prefix: str) -> str:
    """An application_name / table suffix no other test (or run) uses."""
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def backends(dsn: str, application_name: str) -> list[int]:
    """Backend pids of the sessions PostgreSQL has open with ``application_name``."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True, application_name="framework-test-observer") as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
        ).fetchall()
    return sorted(row[0] for row in rows)


def wait_no_backends(dsn: str, application_name: str, limit: float = 20.0) -> list[int]:
    """Poll until no session with ``application_name`` is left; return what is left at the end.

    A backend leaves pg_stat_activity a moment after its client closed the
    socket, so a clean shutdown is seen as "none left within ``limit``".
    """
    end = time.monotonic() + limit
    left = backends(dsn, application_name)
    while left and time.monotonic() < end:
        time.sleep(0.1)
        left = backends(dsn, application_name)
    return left


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 30.0) -> tuple[int, Any]:
    """GET ``url``; the status and the decoded JSON body (error statuses too).

    A body that is not JSON (a server's HTML error page) is returned as text.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode("utf-8", "replace")


def fan_out(urls: Sequence[str], workers: int = 32) -> list[tuple[int, Any]]:
    """GET every URL, ``workers`` at once (each its own connection), in order."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(get_json, urls))


def wait_until_serving(url: str, process: subprocess.Popen[Any], limit: float = 60.0) -> None:
    """Poll ``url`` until it answers (any status) or ``process`` dies."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"the server exited early with status {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {limit}s")


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python process that imports this checkout first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICTAMESH_CONNECTOR_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


PYTHON = sys.executable
