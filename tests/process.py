"""``minixmpp serve`` as a child process, for what only a process has: signals, its own logging.

Its stderr (the ``*console`` log) is read as it comes; ``line()`` waits, bounded, for a line
containing a text, from a given position on, so a test can wait for what the server says
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from tests.xmpp import TIMEOUT


class ServerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, folder: Path) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.folder = folder
        self.ca_file = folder / "certs" / "ca.pem"
        self.lines: list[str] = []
        self.port = 0
        self.ended = False
        self._grown = asyncio.Event()

    async def _collect(self) -> None:
        assert self.proc.stderr is not None
        while line := (await self.proc.stderr.readline()).decode():
            self.lines.append(line)
            self._grown.set()
        self.ended = True
        self._grown.set()

    async def line(self, text: str, start: int = 0, timeout: float = TIMEOUT) -> str:
        """The first line from ``start`` on that contains ``text``, waiting for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = start
        while True:
            for line in self.lines[seen:]:
                if text in line:
                    return line
            seen = len(self.lines)
            if self.ended:
                raise AssertionError(f"the server exited without saying {text!r}:\n{self.log}")
            self._grown.clear()
            try:
                await asyncio.wait_for(self._grown.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise AssertionError(f"no line with {text!r} in {timeout} s:\n{self.log}") from None

    def after(self, start: int) -> list[str]:
        return self.lines[start:]

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def exit_code(self) -> int:
        """Wait for the process to end (its log read to the end); its exit code."""
        code = await asyncio.wait_for(self.proc.wait(), TIMEOUT * 3)
        while not self.ended:
            self._grown.clear()
            await asyncio.wait_for(self._grown.wait(), TIMEOUT)
        return code


@contextlib.asynccontextmanager
async def server_process(config: Path) -> AsyncIterator[ServerProcess]:
    """``minixmpp serve -c config``, once it serves; terminated at the end if still running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minixmpp", "serve", "-c", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    server = ServerProcess(proc, config.parent)
    reader = asyncio.ensure_future(server._collect())
    try:
        serving = await server.line("minixmpp.server serving ", timeout=30)
        match = re.search(r"c2s ports \[(\d+)\]", serving)
        assert match, serving
        server.port = int(match.group(1))
        yield server
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        await asyncio.wait_for(reader, 30)
