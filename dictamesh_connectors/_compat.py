"""Import optional drivers with an error that names the extra to install."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

from dictamesh_connectors.errors import MissingDependencyError

__all__ = ["require"]

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
