"""``DictameshConnectorsConfig``: loads, validates and later closes the project's connectors."""

from __future__ import annotations

import atexit
import logging
import sys

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dictamesh_connectors import _fork
from dictamesh_connectors.connectors import Connectors
from dictamesh_connectors.errors import InvalidConfigError

__all__ = ["DictameshConnectorsConfig", "load_error", "loaded_connectors"]

logger = logging.getLogger(__name__)

_lock = _fork.create_lock()  # guards _connectors and _load_error
_connectors: Connectors | None = None
_load_error: InvalidConfigError | None = None
CHECK_COMMAND = "connectors_check"


def loaded_connectors() -> Connectors:
    """The ``Connectors`` the app loaded in ``ready()``.

    Raises:
        ImproperlyConfigured: The app is not installed, or its configuration
            is invalid.
    """
    with _lock:  # _connectors, _load_error
        connectors, error = _connectors, _load_error
    if connectors is None:
        if error is not None:
            raise ImproperlyConfigured(f"DICTAMESH_CONNECTORS: {error}")
        raise ImproperlyConfigured(
            "dictamesh-connectors: add 'dictamesh_connectors.contrib.django' to INSTALLED_APPS"
        )
    return connectors


def load_error() -> InvalidConfigError | None:
    """The configuration error ``ready()`` kept for ``connectors_check`` (else ``None``)."""
    with _lock:  # _load_error
        return _load_error


def _running_check_command() -> bool:
    # `manage.py connectors_check` reports a bad configuration itself, with
    # exit status 2, instead of dying in django.setup().
    return len(sys.argv) > 1 and sys.argv[1] == CHECK_COMMAND


class DictameshConnectorsConfig(AppConfig):  # type: ignore[misc]
    """Reads ``settings.DICTAMESH_CONNECTORS`` when Django starts."""

    name = "dictamesh_connectors.contrib.django"
    label = "dictamesh_connectors"
    verbose_name = "dictamesh-connectors"
    default = True

    def ready(self) -> None:
        """Load and validate the connectors (none is built or connected yet).

        Raises:
            ImproperlyConfigured: The configuration is invalid; the message
                names the connector and the field.
        """
        global _connectors, _load_error
        source = getattr(settings, "DICTAMESH_CONNECTORS", None)
        timeout = getattr(settings, "DICTAMESH_CONNECTORS_CLOSE_TIMEOUT", 30.0)
        try:
            connectors = Connectors.load(source)
        except InvalidConfigError as err:
            if not _running_check_command():
                raise ImproperlyConfigured(f"DICTAMESH_CONNECTORS: {err}") from err
            with _lock:  # _load_error
                _load_error = err
            return
        with _lock:  # _connectors
            previous, _connectors, _load_error = _connectors, connectors, None
        if previous is not None:  # ready() ran again (tests): close the old set
            previous.close_all(timeout)
        # Django has no "process stopping" signal: close on interpreter exit
        # (runserver's Ctrl-C, gunicorn/uwsgi worker exit all run atexit).
        atexit.register(connectors.close_all, timeout)
        logger.debug("dictamesh-connectors: loaded %s", ", ".join(connectors.names) or "(none)")
