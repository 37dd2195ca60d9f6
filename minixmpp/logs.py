"""Logging for ``minixmpp serve``: the sinks of the ``log`` option (Prosody's forms), opened
again at every configuration reload (so that logrotate can move the files away), with repeated
lines rate-limited.

Rate limit (``RateLimit``, one per sink): a sink lets through the first ``BURST`` records that
say the same thing (same logger, level and message text, arguments filled in; the ``c2s<id>``
prefix of a connection is not part of it, so the same failure on many connections counts as
one) within ``WINDOW`` seconds of the first of them, and counts the rest. When that window is
over, one line at the same level says how many were suppressed and what they said: written
with the next line the sink gets, or when the sinks close (reload, shutdown). Debug records
are never held back: whoever turns on debug logging wants to see everything.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from minixmpp.config import Config, ConfigError

BURST = 10  # identical lines let through per window
WINDOW = 60.0  # seconds
MAX_KEYS = 1000  # distinct lines tracked at once; the oldest window is closed beyond that

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_SUMMARY = "rate_limit_summary"  # marks the records RateLimit makes itself

_installed: list[logging.Handler] = []


def sinks(config: Config) -> dict[str, str]:
    """Level name -> sink, from the ``log`` option (a bare sink is logged at ``info``)."""
    log = config.options.log
    return {"info": log} if isinstance(log, str) else dict(log)


def configure(config: Config) -> None:
    """Open the sinks ``config`` names and make them the ``minixmpp`` logger's, closing the
    previous ones (files are opened again: after a logrotate move, a new file starts). The new
    sinks are opened first: when one cannot be, ConfigError, and logging stays as it was."""
    handlers = _open(config)
    root = logging.getLogger("minixmpp")
    _close_installed(root)
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    _installed.extend(handlers)
    root.setLevel(min((h.level for h in handlers), default=logging.INFO))
    root.propagate = False


def shutdown() -> None:
    """Write what the rate limit still holds and close the sinks."""
    _close_installed(logging.getLogger("minixmpp"))


def _close_installed(root: logging.Logger) -> None:
    while _installed:
        handler = _installed.pop()
        for f in handler.filters:
            if isinstance(f, RateLimit):
                f.flush()
        root.removeHandler(handler)
        handler.close()


def _open(config: Config) -> list[logging.Handler]:
    handlers: list[logging.Handler] = []
    try:
        for level_name, sink in sinks(config).items():
            handler: logging.Handler
            if sink in ("*console", "*stderr"):
                handler = logging.StreamHandler(sys.stderr)
            elif sink == "*stdout":
                handler = logging.StreamHandler(sys.stdout)
            else:
                path = config.resolve(sink)
                try:
                    handler = logging.FileHandler(path)
                except OSError as exc:
                    raise ConfigError(
                        f"{config.path}: option 'log': cannot open {path}: {exc.strerror}"
                    ) from None
            handler.setLevel(_LEVELS[level_name])
            handler.setFormatter(Formatter())
            handler.addFilter(RateLimit(handler))
            handlers.append(handler)
    except BaseException:
        for handler in handlers:
            handler.close()
        raise
    return handlers


class Formatter(logging.Formatter):
    """``time level logger [c2s<id>] message``; the connection prefix comes from the
    ``session`` extra of a connection's LoggerAdapter (the record itself is not changed: every
    sink formats the same record)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s", "%Y-%m-%d %H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        session = getattr(record, "session", None)
        if not session:
            return super().formatMessage(record)
        values = dict(record.__dict__, message=f"{session} {record.message}")
        return self._fmt % values if self._fmt else values["message"]


@dataclass
class _Window:
    start: float
    name: str
    level: int
    message: str
    count: int = 1
    suppressed: int = 0


class RateLimit(logging.Filter):
    """Holds back repeated lines (see the module docstring). ``clock`` is for tests."""

    def __init__(
        self,
        handler: logging.Handler,
        *,
        burst: int = BURST,
        window: float = WINDOW,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.burst = burst
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._seen: OrderedDict[tuple[str, int, str], _Window] = OrderedDict()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO or getattr(record, _SUMMARY, False):
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True  # let the handler report the broken record as it does
        key = (record.name, record.levelno, message)
        with self._lock:
            now = self.clock()
            ended = self._expire(now)
            window = self._seen.get(key)
            if window is None:
                self._seen[key] = _Window(now, record.name, record.levelno, message)
                if len(self._seen) > self.max_keys:
                    ended.append(self._seen.popitem(last=False)[1])
                passed = True
            else:
                window.count += 1
                passed = window.count <= self.burst
                if not passed:
                    window.suppressed += 1
        self._report(ended)
        return passed

    def flush(self) -> None:
        """Report every window that suppressed something, and forget them all."""
        with self._lock:
            ended = list(self._seen.values())
            self._seen.clear()
        self._report(ended)

    def _expire(self, now: float) -> list[_Window]:
        # Windows start in insertion order, so the ended ones are at the front.
        ended = []
        while self._seen:
            window = next(iter(self._seen.values()))
            if now - window.start < self.window:
                break
            ended.append(self._seen.popitem(last=False)[1])
        return ended

    def _report(self, ended: list[_Window]) -> None:
        for window in ended:
            if window.suppressed:
                record = logging.makeLogRecord(
                    {
                        "name": window.name,
                        "levelno": window.level,
                        "levelname": logging.getLevelName(window.level),
                        "msg": "%d similar %s suppressed: %s",
                        "args": (
                            window.suppressed,
                            "message" if window.suppressed == 1 else "messages",
                            window.message,
                        ),
                        _SUMMARY: True,
                    }
                )
                self.handler.handle(record)
