"""Which public names of a package lack a docstring (the package tests assert none do)."""

from __future__ import annotations

import inspect
from types import ModuleType


def missing_docstrings(package: ModuleType) -> list[str]:
    """Names in ``package.__all__``, and public methods of its classes, without a docstring.

    Example::

        assert missing_docstrings(dictamesh_connectors.http) == []
    """
    missing = []
    for name in package.__all__:
        obj = getattr(package, name)
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                public = not attr.startswith("_") and callable(member)
                if public and not (member.__doc__ or "").strip():
                    missing.append(f"{name}.{attr}")
    return missing
