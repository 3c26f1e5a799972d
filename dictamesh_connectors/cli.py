"""``dictamesh-connectors``: check connectivity to any URL from the command line.

Examples::

    dictamesh-connectors schemes
    dictamesh-connectors ping postgresql://app@db:5432/app
    dictamesh-connectors ping postgresql://app@db/app --option password_env=DB_PASSWORD
    dictamesh-connectors check --config connectors.toml --json
    python -m dictamesh_connectors check      # the DICTAMESH_CONNECTOR_* variables

Exit status: 0 healthy, 1 unhealthy (the classified error is printed), 2 bad
usage or configuration. Every URL printed goes through ``config.redact_url``:
the password and the secret query parameters of every config (``token``,
``api_key``, ``client_secret``, PostgreSQL's ``password``...) are masked, and
error messages never carry credentials.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence

from dictamesh_connectors._convert import check_timeout
from dictamesh_connectors.config import redact_url
from dictamesh_connectors.connectors import Connectors
from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError
from dictamesh_connectors.registry import connector_class, known_schemes

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _options(pairs: Sequence[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidConfigError(f"--option needs NAME=VALUE, got {name!r:.40}")
        if name.endswith("_env"):
            # Read a secret from the environment rather than the command line.
            variable = value
            name = name[: -len("_env")]
            if variable not in os.environ:
                raise InvalidConfigError(f"environment variable {variable} is not set")
            value = os.environ[variable]
        options[name] = value
    return options


def _ping(url: str, pairs: Sequence[str], timeout: float | None, as_json: bool) -> int:
    scheme = url.split(":", 1)[0]
    cls = connector_class(scheme)
    config = cls.config_class.from_url(url, **_options(pairs))
    shown = redact_url(url, config.secret_query_params())
    connector = cls(config)
    start = time.monotonic()
    try:
        connector.connect()
        connector.ping(timeout=timeout)
    except InvalidConfigError:
        raise
    except ConnectorError as err:
        if not as_json:
            raise
        _print_json({"healthy": False, "target": shown, **_error_dict(err)})
        return 1
    finally:
        connector.disconnect(timeout=timeout)
    elapsed = (time.monotonic() - start) * 1000
    if as_json:
        _print_json({"healthy": True, "target": shown, "latency_ms": round(elapsed, 3)})
    else:
        print(f"ok: {shown} answered in {elapsed:.1f} ms")
    return 0


def _check(path: str | None, timeout: float | None, as_json: bool) -> int:
    connectors = Connectors.load(path)
    if not len(connectors):
        raise InvalidConfigError(
            "no connectors configured: pass --config FILE or set DICTAMESH_CONNECTOR_<NAME>_URL"
        )
    try:
        report = connectors.health(timeout=timeout)
    finally:
        connectors.close_all(timeout=timeout)
    healthy = all(h.healthy for h in report.values())
    if as_json:
        _print_json({"healthy": healthy, "connectors": [h.to_dict() for h in report.values()]})
    else:
        width = max(len(name) for name in report)
        for h in report.values():
            if h.healthy:
                print(f"ok      {h.name:<{width}}  {h.kind}  {h.target}  {h.latency_ms:.1f} ms")
            else:
                hint = "transient, may succeed later" if h.transient else "permanent"
                print(
                    f"FAILED  {h.name:<{width}}  {h.kind}  {h.target}  "
                    f"{h.error_code} ({hint}): {h.error}"
                )
        bad = sum(not h.healthy for h in report.values())
        summary = f"{len(report) - bad} of {len(report)} connectors healthy"
        print(summary if not bad else f"{summary}; {bad} unhealthy", file=sys.stderr)
    if healthy:
        return 0
    # A config the connector itself refused on connect (a missing TLS file...) is bad config.
    config_errors = any(h.error_code == ErrorCode.INVALID_CONFIG.value for h in report.values())
    return 2 if config_errors else 1


def _error_dict(err: ConnectorError) -> dict[str, object]:
    error: dict[str, object] = {
        "code": err.code.value,
        "transient": err.transient,
        "message": err.message,
    }
    for key in ("connector", "field"):
        if err.details.get(key):
            error[key] = err.details[key]
    return {"error": error}


def _print_json(data: dict[str, object]) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line tool; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="dictamesh-connectors", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("schemes", help="list the URL schemes a connector is registered for")
    ping = commands.add_parser("ping", help="connect to URL and check it answers")
    ping.add_argument("url")
    ping.add_argument("--timeout", type=float, default=10.0)
    ping.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="config override; NAME_env=VAR reads the value from $VAR",
    )
    ping.add_argument("--json", action="store_true", help="print the result as JSON")
    check = commands.add_parser(
        "check", help="connect to and ping every connector of a configuration"
    )
    check.add_argument(
        "--config",
        metavar="FILE",
        help="a TOML file with [connectors.NAME] tables (default: the "
        "DICTAMESH_CONNECTOR_<NAME>_URL environment variables)",
    )
    check.add_argument("--timeout", type=float, default=10.0, help="seconds per ping")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        if args.command == "schemes":
            print("\n".join(known_schemes()))
            return 0
        # Checked before anything connects (NaN, 0, negative: exit 2; inf: no limit).
        timeout = check_timeout(args.timeout, name="--timeout", positive=True)
        if args.command == "check":
            return _check(args.config, timeout, as_json)
        return _ping(args.url, args.option, timeout, as_json)
    except InvalidConfigError as err:
        if as_json:
            _print_json({"healthy": False, **_error_dict(err)})
        else:
            print(f"error: {err}", file=sys.stderr)
        return 2
    except ConnectorError as err:
        if as_json:
            _print_json({"healthy": False, **_error_dict(err)})
            return 1
        hint = "transient, may succeed later" if err.transient else "permanent"
        print(f"failed: {err.code.value} ({hint}): {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
