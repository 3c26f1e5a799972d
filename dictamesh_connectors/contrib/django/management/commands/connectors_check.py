"""``manage.py connectors_check [--json] [--timeout S]``: connect to and ping every connector.

Exit status as ``dictamesh-connectors check``: 0 healthy, 1 unhealthy (the
classified error is printed), 2 bad configuration.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dictamesh_connectors.contrib.django.apps import load_error, loaded_connectors
from dictamesh_connectors.errors import ErrorCode, InvalidConfigError


class Command(BaseCommand):  # type: ignore[misc]
    help = "Connect to and ping every connector of settings.DICTAMESH_CONNECTORS."
    requires_system_checks: list[str] = []  # a health check must run even on a broken project

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds per ping")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        as_json = bool(options["json"])
        deferred = load_error()
        try:
            if deferred is not None:
                raise deferred
            connectors = loaded_connectors()
            report = connectors.health(timeout=options["timeout"])
        except InvalidConfigError as err:
            if as_json:
                error = {"code": err.code.value, "message": err.message, **err.details}
                body = {"healthy": False, "error": error}
                self.stdout.write(json.dumps(body, indent=2, sort_keys=True))
            raise CommandError(f"DICTAMESH_CONNECTORS: {err}", returncode=2) from None
        healthy = all(h.healthy for h in report.values())
        if as_json:
            body = {"healthy": healthy, "connectors": [h.to_dict() for h in report.values()]}
            self.stdout.write(json.dumps(body, indent=2, sort_keys=True))
        else:
            for h in report.values():
                if h.healthy:
                    self.stdout.write(
                        f"ok      {h.name}  {h.kind}  {h.target}  {h.latency_ms:.1f} ms"
                    )
                else:
                    hint = "transient, may succeed later" if h.transient else "permanent"
                    self.stdout.write(
                        f"FAILED  {h.name}  {h.kind}  {h.target}  "
                        f"{h.error_code} ({hint}): {h.error}"
                    )
        if not healthy:
            bad = [h.name for h in report.values() if not h.healthy]
            config = any(h.error_code == ErrorCode.INVALID_CONFIG.value for h in report.values())
            raise CommandError(f"unhealthy: {', '.join(bad)}", returncode=2 if config else 1)
