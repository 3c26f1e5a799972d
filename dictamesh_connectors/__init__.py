"""dictamesh-connectors: synchronous, thread-safe, fork-safe connectors.

Public names only; each connector lives in its own subpackage
(``dictamesh_connectors.postgresql``, ...), imported on demand so that a
missing optional driver never breaks ``import dictamesh_connectors``.
"""

import logging

from dictamesh_connectors._version import __version__
from dictamesh_connectors.base import Connector, State
from dictamesh_connectors.config import BaseConfig, Secret
from dictamesh_connectors.errors import (
    ArgumentTypeError,
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    MissingDependencyError,
    NotConnectedError,
    RetryHint,
)
from dictamesh_connectors.registry import connect, known_schemes, register
from dictamesh_connectors.retry import RetryPolicy, retry_call

__all__ = [
    "ArgumentTypeError",
    "AuthenticationError",
    "BaseConfig",
    "Connector",
    "ConnectorError",
    "ConnectorTimeoutError",
    "ErrorCode",
    "InvalidConfigError",
    "MissingDependencyError",
    "NotConnectedError",
    "RetryHint",
    "RetryPolicy",
    "Secret",
    "State",
    "__version__",
    "connect",
    "known_schemes",
    "register",
    "retry_call",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
