"""The log sinks (``logs.py``): repeated lines rate-limited; a sink that cannot be opened
refused with one line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from minixmpp.logs import RateLimit
from tests.core.test_cli import run, write_config

# -- the rate limit ---------------------------------------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


@pytest.fixture
def limited() -> Iterator[tuple[logging.Logger, Lines, RateLimit, list[float]]]:
    now = [1000.0]
    handler = Lines()
    limit = RateLimit(handler, burst=3, window=60, max_keys=4, clock=lambda: now[0])
    handler.addFilter(limit)
    logger = logging.getLogger("minixmpp.test-rate-limit")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, handler, limit, now
    finally:
        logger.removeHandler(handler)


def test_the_first_identical_lines_pass_then_a_count_of_the_rest(
    limited: tuple[logging.Logger, Lines, RateLimit, list[float]],
) -> None:
    logger, handler, _, now = limited
    for _ in range(10):
        logger.info("authentication failed from %s", "192.0.2.1")
    logger.info("authentication failed from %s", "192.0.2.2")  # not identical: its own count
    logger.warning("authentication failed from %s", "192.0.2.1")  # another level, too
    assert handler.lines == [
        ("INFO", "authentication failed from 192.0.2.1"),
        ("INFO", "authentication failed from 192.0.2.1"),
        ("INFO", "authentication failed from 192.0.2.1"),
        ("INFO", "authentication failed from 192.0.2.2"),
        ("WARNING", "authentication failed from 192.0.2.1"),
    ]
    now[0] += 59.9
    logger.info("authentication failed from %s", "192.0.2.1")  # same window: held back
    assert len(handler.lines) == 5
    now[0] += 0.1  # the window is over: the next line, whatever it is, comes after the count
    logger.info("something else")
    assert handler.lines[5:] == [
        ("INFO", "8 similar messages suppressed: authentication failed from 192.0.2.1"),
        ("INFO", "something else"),
    ]
    logger.info("authentication failed from %s", "192.0.2.1")  # a new window
    assert handler.lines[-1] == ("INFO", "authentication failed from 192.0.2.1")


def test_debug_lines_are_never_held_back(
    limited: tuple[logging.Logger, Lines, RateLimit, list[float]],
) -> None:
    logger, handler, _, _ = limited
    handler.setLevel(logging.DEBUG)
    for _ in range(5):
        logger.debug("RECV <presence/>")
    assert handler.lines == [("DEBUG", "RECV <presence/>")] * 5


def test_the_count_is_written_when_the_sink_closes_and_when_too_many_lines_are_tracked(
    limited: tuple[logging.Logger, Lines, RateLimit, list[float]],
) -> None:
    logger, handler, limit, _ = limited
    for _ in range(5):
        logger.error("disk full")
    for n in range(4):  # max_keys=4: the oldest window ("disk full") is closed early
        logger.info("line %d", n)
    assert handler.lines[-2:] == [
        ("ERROR", "2 similar messages suppressed: disk full"),
        ("INFO", "line 3"),
    ]
    for _ in range(4):
        logger.info("line 0")
    limit.flush()  # reload or shutdown
    assert handler.lines[-1] == ("INFO", "2 similar messages suppressed: line 0")
    limit.flush()
    assert handler.lines[-1] == ("INFO", "2 similar messages suppressed: line 0")  # once


# -- sinks -------------------------------------------------------------------------------------


def test_a_log_file_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    missing = tmp_path / "no-such-folder" / "server.log"
    path.write_text(path.read_text().replace('"*console"', f'"{missing}"'))
    result = run("serve", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"minixmpp: {path}: option 'log': cannot open {missing}: No such file or directory\n"
    )
