"""Collect everything observable from a failure and assert a marker secret is in none of it.

The one secret-scan helper every secret test uses. What it looks at:

* ``str`` and ``repr`` of the error and of every exception in its
  ``__cause__`` / ``__context__`` chain (exception groups included);
* every attribute of those exceptions (``args``, ``details``, the
  ``object`` of a ``UnicodeError``, a driver's own fields...), walked
  through containers;
* ``traceback.format_exception`` of the error, with every frame's source line;
* the pickle of the error (what Celery ships to another process);
* every log record of every logger at DEBUG while the scan was active
  (caught in ``Logger.handle``, so a logger with ``propagate=False``, a
  disabled one or one whose handlers drop the record counts too),
  formatted with its traceback, and every attribute of the record (the
  ``extra=`` fields, ``args``, ``exc_info``...) walked like an error's;
* every warning issued while the scan was active (``warnings.warn``: inside
  the scan every warning is shown, so none is hidden by an "ignore" or
  "once" filter, except that "error" filters still raise; each is passed
  on to the ``showwarning`` that was in place unless a filter in place
  ignores it);
* any other text given (CLI output, a repr of the connector).

The marker is searched raw, percent-encoded and ``quote_plus``-encoded.

Example::

    with SecretScan() as scan:
        with pytest.raises(ConnectorError) as info:
            connector.get("/x")
    scan.assert_clean("MARKER-SECRET", info.value, texts=[repr(connector)])
"""

from __future__ import annotations

import logging
import pickle
import traceback
import urllib.parse
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from dictamesh_connectors import _fork

__all__ = ["SecretScan", "exception_chain", "observable_texts"]


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception reachable through cause, context and groups."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        exc = stack.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        for linked in (exc.__cause__, exc.__context__):
            if linked is not None:
                stack.append(linked)
        stack.extend(getattr(exc, "exceptions", ()) or ())


def _walk(value: Any, depth: int = 0) -> Iterator[str]:
    if depth > 6:
        return
    if isinstance(value, (str, bytes)):
        yield value if isinstance(value, str) else value.decode("utf-8", "backslashreplace")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(key, depth + 1)
            yield from _walk(item, depth + 1)
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _walk(item, depth + 1)
        return
    try:
        yield repr(value)
    except Exception as exc:  # a hostile repr is still a finding, not a crash
        yield f"<repr failed: {type(exc).__name__}>"
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and not isinstance(value, type):
        yield from _walk(attributes, depth + 1)


def observable_texts(error: BaseException) -> list[str]:
    """Every text a user, a log or another process could see of ``error``."""
    texts: list[str] = []
    for exc in exception_chain(error):
        texts.append(str(exc))
        texts.append(repr(exc))
        texts.extend(_walk(exc.args))
        for name in dir(exc):
            if name.startswith("__") or name in ("args", "with_traceback", "add_note"):
                continue
            try:
                with warnings.catch_warnings():  # deprecated driver properties still count
                    warnings.simplefilter("ignore")
                    value = getattr(exc, name)
            except Exception:
                continue
            if callable(value) and not isinstance(value, (str, bytes)):
                continue
            texts.extend(_walk(value))
    texts.append("".join(traceback.format_exception(error)))
    try:
        texts.append(pickle.dumps(error).decode("latin-1"))
    except Exception as exc:  # unpicklable errors are a bug of their own, caught elsewhere
        texts.append(f"<pickle failed: {type(exc).__name__}>")
    return texts


_FORMATTER = logging.Formatter("%(name)s %(levelname)s %(message)s")

# The scans active now (nested or in several threads at once): the one
# Logger.handle wrapper feeds them all, and is removed with the last one.
_active: list[SecretScan] = []
_active_lock = _fork.create_lock()
_original_handle: Any = None


def _record_texts(record: logging.LogRecord) -> list[str]:
    """The record formatted (message, traceback, stack) and every attribute of it walked."""
    texts: list[str] = []
    try:
        # A copy: formatting caches exc_text on the record, which the real
        # handlers' formatters (a redacting formatException) would then reuse.
        texts.append(_FORMATTER.format(logging.makeLogRecord(dict(vars(record)))))
    except Exception as exc:  # a hostile argument is still a finding, not a crash
        texts.append(f"<log record failed to format: {type(exc).__name__}>")
    try:
        texts.extend(_walk(dict(vars(record))))
    except Exception as exc:
        texts.append(f"<log record failed to walk: {type(exc).__name__}>")
    return texts


def _handle(self: logging.Logger, record: logging.LogRecord) -> None:
    # Logger.handle, for every logger: seen before the logger's own
    # disabled flag, filters, handlers and propagation decide anything.
    scans = _active
    if scans:
        texts = _record_texts(record)
        for scan in list(scans):
            scan._log_texts.extend(texts)
    _original_handle(self, record)


def _ignored(
    filters: list[Any], message: Warning | str, category: type[Warning], filename: str, lineno: int
) -> bool:
    """Whether the first of ``filters`` matching the warning (as ``warnings`` matches) ignores it.

    The module is matched against the file's path and name without ``.py``
    (``showwarning`` is not told the module's ``__name__``).
    """
    text = str(message)
    stem = filename[:-3] if filename.lower().endswith(".py") else filename
    modules = (stem, stem.rsplit("/", 1)[-1])
    for action, msg, cat, module, line in filters:
        if (
            (msg is None or msg.match(text))
            and isinstance(cat, type)
            and issubclass(category, cat)
            and (module is None or any(module.match(m) for m in modules))
            and (line == 0 or line == lineno)
        ):
            return bool(action == "ignore")
    return False


class SecretScan:
    """A context manager capturing every log record and warning; then ``assert_clean``.

    While it is active, every logger is at DEBUG and enabled (a logger
    disabled by a logging config is not disabled everywhere), ``logging.disable``
    is lifted, every record any logger handles is captured (whatever its
    handlers and ``propagate``), and every warning is captured.
    """

    def __init__(self) -> None:
        self._log_texts: list[str] = []
        self._warning_texts: list[str] = []
        self._levels: dict[logging.Logger, int] = {}
        self._disabled_loggers: dict[logging.Logger, bool] = {}
        self._disabled = logging.root.manager.disable
        self._warnings: Any = None

    def __enter__(self) -> SecretScan:
        global _original_handle
        self._disabled = logging.root.manager.disable
        logging.disable(logging.NOTSET)
        with _active_lock:
            if not _active:
                _original_handle = logging.Logger.handle
                logging.Logger.handle = _handle  # type: ignore[method-assign]
            _active.append(self)
        root = logging.getLogger()
        loggers = [root] + [
            lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
        ]
        for lg in loggers:
            self._levels[lg] = lg.level
            self._disabled_loggers[lg] = lg.disabled
            lg.setLevel(logging.DEBUG)
            lg.disabled = False  # a logger disabled here may not be elsewhere
        outer = list(warnings.filters)
        errors = [f for f in outer if f[0] == "error"]
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("always")
        for _, message, category, module, lineno in reversed(errors):
            if not isinstance(category, type):
                continue
            # A warning that was an error stays one (the code under test sees it raised).
            warnings.filterwarnings(
                "error",
                message.pattern if message is not None else "",
                category,
                module.pattern if module is not None else "",
                lineno,
            )
        previous = warnings.showwarning

        def showwarning(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: Any = None,
            line: str | None = None,
        ) -> None:
            try:
                self._warning_texts.append(
                    warnings.formatwarning(message, category, filename, lineno, line)
                )
                self._warning_texts.extend(_walk(message))
            except Exception as exc:
                self._warning_texts.append(f"<warning failed to format: {type(exc).__name__}>")
            if not _ignored(outer, message, category, filename, lineno):
                previous(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._warnings.__exit__(*exc_info)
        with _active_lock:
            _active.remove(self)
            if not _active:
                logging.Logger.handle = _original_handle  # type: ignore[method-assign]
        for lg, level in self._levels.items():
            lg.setLevel(level)
        for lg, disabled in self._disabled_loggers.items():
            lg.disabled = disabled
        logging.disable(self._disabled)

    @property
    def log_texts(self) -> list[str]:
        """The log records captured so far (formatted, then each attribute's text)."""
        return list(self._log_texts)

    @property
    def warning_texts(self) -> list[str]:
        """The warnings captured so far (formatted, then the warning's attributes)."""
        return list(self._warning_texts)

    def assert_clean(self, marker: str, *errors: BaseException, texts: Iterable[str] = ()) -> None:
        """Fail if ``marker`` shows in the errors, the captured logs and warnings or ``texts``."""
        forms = {marker, urllib.parse.quote(marker, safe=""), urllib.parse.quote_plus(marker)}
        places: list[tuple[str, str]] = [("log", t) for t in self._log_texts]
        places += [("warning", t) for t in self._warning_texts]
        places += [("text", t) for t in texts]
        for error in errors:
            places += [(f"error {type(error).__name__}", t) for t in observable_texts(error)]
        for where, text in places:
            for form in forms:
                assert form not in text, f"secret found in {where}: {text[:2000]}"
