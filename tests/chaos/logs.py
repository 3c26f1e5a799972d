"""The campaign's log capture: every record in a file, a few on stderr, the count in the summary.

Under faults the connectors and their drivers log what they meet: psycopg's
pool warns on every connection a fault killed ("discarding closed
connection"), librdkafka logs each broker restart at ERROR. Thousands of
such lines on stderr (or in pytest's captured log) bury the summary table,
and silencing those loggers would hide a real problem with them.

``CampaignLog`` is attached to those loggers for the run (their records no
longer propagate; restored at exit):

* every record at ``level`` (WARNING) or above is written to the log file,
  with its thread and traceback;
* the first ``shown_per_kind`` records of each kind (logger, level, message
  template) still go on to the root logger's handlers (stderr, pytest), so
  a new kind of message is seen at once; a record with a traceback always
  does;
* the rest are counted (``counts``, by logger and level), and the summary
  table prints the counts and the file's path.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TextIO

# The loggers of the connectors, of the drivers they use, and the campaign's own.
CAPTURED = ("dictamesh_connectors", "psycopg", "pymongo", "urllib3", "tests.chaos")
SHOWN_PER_KIND = 3

_FORMAT = "%(asctime)s %(threadName)s %(levelname)s %(name)s: %(message)s"


@dataclass
class LogSummary:
    """What a ``CampaignLog`` saw: the summary table's part."""

    path: Path
    counts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    shown: int = 0
    shown_per_kind: int = SHOWN_PER_KIND

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class CampaignLog(logging.Handler):
    """A context manager and handler: see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        loggers: tuple[str, ...] = CAPTURED,
        level: int = logging.WARNING,
        shown_per_kind: int = SHOWN_PER_KIND,
    ) -> None:
        super().__init__(logging.NOTSET)
        self.path = path
        self.loggers = loggers
        self.capture_level = level
        self.shown_per_kind = shown_per_kind
        self.setFormatter(logging.Formatter(_FORMAT))
        # Guarded by the handler's own lock (held around emit).
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._kinds: collections.Counter[tuple[str, int, str]] = collections.Counter()
        self.shown = 0
        self._file: TextIO | None = None
        self._saved: dict[str, tuple[int, bool]] = {}

    def __enter__(self) -> CampaignLog:
        self._file = open(self.path, "a", encoding="utf-8")
        for name in self.loggers:
            lg = logging.getLogger(name)
            self._saved[name] = (lg.level, lg.propagate)
            lg.setLevel(self.capture_level)
            lg.propagate = False
            lg.addHandler(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for name, (level, propagate) in self._saved.items():
            lg = logging.getLogger(name)
            lg.removeHandler(self)
            lg.setLevel(level)
            lg.propagate = propagate
        self._saved.clear()
        self.acquire()
        try:
            if self._file is not None:
                self._file.close()
                self._file = None
        finally:
            self.release()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def suppressed(self) -> int:
        """Records kept out of stderr (they are in the file)."""
        return self.total - self.shown

    def summary(self) -> LogSummary:
        self.acquire()
        try:
            return LogSummary(self.path, collections.Counter(self.counts), self.shown,
                              self.shown_per_kind)  # fmt: skip
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held (logging.Handler.handle).
        self.counts[(record.name, record.levelname)] += 1
        kind = (record.name, record.levelno, str(record.msg))
        self._kinds[kind] += 1
        show = record.exc_info is not None or self._kinds[kind] <= self.shown_per_kind
        try:
            if self._file is not None:
                self._file.write(self.format(record) + "\n")
                self._file.flush()
        except Exception:
            self.handleError(record)
        if show:
            self.shown += 1
            # On to where the record would have gone: the root logger's handlers.
            logging.getLogger().handle(record)
