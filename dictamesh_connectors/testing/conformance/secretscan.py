"""Collect everything observable from a failure and assert a marker secret is in none of it.

The one secret-scan helper every secret test uses. What it looks at:

* ``str`` and ``repr`` of the error and of every exception in its
  ``__cause__`` / ``__context__`` chain (exception groups included);
* every attribute of those exceptions (``args``, ``details``, the
  ``object`` of a ``UnicodeError``, a driver's own fields...), walked
  through containers;
* ``traceback.format_exception`` of the error, with every frame's source line;
* the pickle of the error (what Celery ships to another process);
* every log record of every logger at DEBUG while the scan was active,
  formatted with its traceback;
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


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(self.format(record))
            self.texts.append(repr(record.args))
        except Exception as exc:
            self.texts.append(f"<log record failed to format: {type(exc).__name__}>")


class SecretScan:
    """A context manager capturing every logger at DEBUG; then ``assert_clean``."""

    def __init__(self) -> None:
        self._handler = _Collect()
        self._levels: dict[logging.Logger, int] = {}
        self._disabled = logging.root.manager.disable

    def __enter__(self) -> SecretScan:
        logging.disable(logging.NOTSET)
        root = logging.getLogger()
        root.addHandler(self._handler)
        loggers = [root] + [
            lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
        ]
        for lg in loggers:
            self._levels[lg] = lg.level
            lg.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger().removeHandler(self._handler)
        for lg, level in self._levels.items():
            lg.setLevel(level)
        logging.disable(self._disabled)

    @property
    def log_texts(self) -> list[str]:
        """The formatted log records captured so far."""
        return list(self._handler.texts)

    def assert_clean(self, marker: str, *errors: BaseException, texts: Iterable[str] = ()) -> None:
        """Fail if ``marker`` shows in the errors, the captured logs or ``texts``."""
        forms = {marker, urllib.parse.quote(marker, safe=""), urllib.parse.quote_plus(marker)}
        places: list[tuple[str, str]] = [("log", t) for t in self._handler.texts]
        places += [("text", t) for t in texts]
        for error in errors:
            places += [(f"error {type(error).__name__}", t) for t in observable_texts(error)]
        for where, text in places:
            for form in forms:
                assert form not in text, f"secret found in {where}: {text[:2000]}"
