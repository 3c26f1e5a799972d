"""Import optional drivers with an error that names the extra to install, and lazily."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from dictamesh_connectors.errors import MissingDependencyError

__all__ = ["lazy_attribute", "require"]

logger = logging.getLogger(__name__)


def require(module: str, *, extra: str, connector: str) -> ModuleType:
    """Import ``module`` or raise ``MissingDependencyError`` naming ``extra``.

    Raises:
        MissingDependencyError: ``module`` cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"{connector}: the {module!r} package is not installed; "
            f"install it with: pip install 'dictamesh-connectors[{extra}]'",
            connector=connector,
        ) from err


def lazy_attribute(package: str, names: Mapping[str, str], name: str) -> Any:
    """The body of a package's ``__getattr__`` (PEP 562): import on first use.

    ``names`` maps each public name to the module that defines it, so a
    package re-exports its driver-backed classes without importing the driver
    until one is used (``MongoDBConfig`` works without pymongo).

    Example::

        def __getattr__(name: str) -> Any:
            return lazy_attribute(__name__, _LAZY, name)

    Raises:
        AttributeError: ``name`` is not one of ``names``.
        MissingDependencyError: The module needs a driver that is not installed.
    """
    module = names.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
