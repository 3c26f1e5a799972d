"""``dictamesh-connectors``: check connectivity to any URL from the command line.

Examples::

    dictamesh-connectors schemes
    dictamesh-connectors ping postgresql://app@db:5432/app
    dictamesh-connectors ping postgresql://app@db/app --option password_env=DB_PASSWORD

Exit status: 0 healthy, 1 the connector raised a ConnectorError, 2 bad usage
or configuration. Every URL printed goes through ``config.redact_url``: the
password and the secret query parameters of every config (``token``,
``api_key``, ``client_secret``, PostgreSQL's ``password``...) are masked.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

from dictamesh_connectors.config import redact_url
from dictamesh_connectors.errors import ConnectorError, InvalidConfigError
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


def _ping(url: str, pairs: Sequence[str], timeout: float) -> int:
    scheme = url.split(":", 1)[0]
    cls = connector_class(scheme)
    config = cls.config_class.from_url(url, **_options(pairs))
    shown = redact_url(url, config.secret_query_params())
    connector = cls(config)
    start = time.monotonic()
    try:
        connector.connect()
        connector.ping(timeout=timeout)
    finally:
        connector.disconnect(timeout=timeout)
    print(f"ok: {shown} answered in {(time.monotonic() - start) * 1000:.1f} ms")
    return 0


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
    args = parser.parse_args(argv)
    try:
        if args.command == "schemes":
            print("\n".join(known_schemes()))
            return 0
        return _ping(args.url, args.option, args.timeout)
    except InvalidConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ConnectorError as err:
        hint = "transient, may succeed later" if err.transient else "permanent"
        print(f"failed: {err.code.value} ({hint}): {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
