"""The conformance suite for connectors built on ``dictamesh_connectors.base.Connector``.

Point it at your connector class and a server, in a test module of your own::

    from dictamesh_connectors.testing.conformance import ConnectorConformance

    class TestMyRedis(ConnectorConformance):
        connector_class = RedisConnector
        url = "redis://:s3cret-MARKER@127.0.0.1:6379/0"
        secret_marker = "s3cret-MARKER"

        def slow_operation(self, connector, seconds):
            connector.blpop("conformance-empty", timeout=seconds)

and run pytest: each check of the contract is its own named test (see
``suite`` for the list). The building blocks are usable on their own:

- ``SecretScan``, ``observable_texts``, ``exception_chain``
  (``secretscan``): collect every repr, str, attribute, cause, traceback,
  pickle, log record (every attribute of it, from any logger) and warning
  of a failure and assert a marker secret is in none;
- ``run_in_child`` (``forking``): run a function in a real ``os.fork()``
  child, with a time limit;
- ``assert_round_trips``, ``ErrorRecorder`` (``pickling``): errors
  through pickle with every attribute kept;
- ``check_config_field``, ``check_from_url``, ``check_call`` and the
  hypothesis strategies (``fuzzing``): hostile input, only
  ``ConnectorError``/``InvalidConfigError`` out.

``ConnectorConformance`` needs pytest and hypothesis, and the ``fuzzing``
names need hypothesis (install the ``testing`` extra:
``pip install 'dictamesh-connectors[testing]'``); the rest imports with the
standard library alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import lazy_attribute
from dictamesh_connectors.testing.conformance.forking import run_in_child
from dictamesh_connectors.testing.conformance.pickling import ErrorRecorder, assert_round_trips
from dictamesh_connectors.testing.conformance.secretscan import (
    SecretScan,
    exception_chain,
    observable_texts,
)

if TYPE_CHECKING:
    from dictamesh_connectors.testing.conformance.fuzzing import (
        Call,
        check_call,
        check_config_field,
        check_from_url,
        garbage,
        hostile_text,
        hostile_urls,
    )
    from dictamesh_connectors.testing.conformance.suite import ConnectorConformance

__all__ = [
    "Call",
    "ConnectorConformance",
    "ErrorRecorder",
    "SecretScan",
    "assert_round_trips",
    "check_call",
    "check_config_field",
    "check_from_url",
    "exception_chain",
    "garbage",
    "hostile_text",
    "hostile_urls",
    "observable_texts",
    "run_in_child",
]

# Names that need a test dependency, imported on first use.
_LAZY = {
    "ConnectorConformance": "suite",
    "Call": "fuzzing",
    "check_call": "fuzzing",
    "check_config_field": "fuzzing",
    "check_from_url": "fuzzing",
    "garbage": "fuzzing",
    "hostile_text": "fuzzing",
    "hostile_urls": "fuzzing",
}
_MODULES = {name: f"{__name__}.{module}" for name, module in _LAZY.items()}


def __getattr__(name: str) -> Any:
    try:
        return lazy_attribute(__name__, _MODULES, name)
    except ImportError as exc:
        raise ImportError(
            f"dictamesh_connectors.testing.conformance.{name} needs pytest and hypothesis: "
            f"pip install 'dictamesh-connectors[testing]' ({exc})"
        ) from exc
