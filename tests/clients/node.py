"""Real non-Python clients for the tests: the npm packages in tests/node (xmpp.js, Converse.js,
playwright-core) and Debian's Chromium, installed once per session by the project's own files,
and node scripts run as subprocesses with every wait bounded.

A missing or broken tool fails the test with the command that installs it; it is never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"
INSTALL_CHROMIUM = ROOT / "tests" / "browser" / "install-chromium.sh"
CHROMIUM = Path("/usr/bin/chromium")
STAMP = NODE_DIR / "node_modules" / ".minixmpp-installed"  # the hash of what npm ci installed
NPM_CI = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
NPM_TIMEOUT = 300.0
APT_TIMEOUT = 600.0
INSTALL_TIMEOUT = NPM_TIMEOUT + APT_TIMEOUT  # a cold first test waits for both installs
OVERTIME = 5.0  # seconds the test waits for a script beyond the script's own deadline
STOP_GRACE = 15.0  # seconds a script may take to end after SIGTERM
MIN_NODE = (20, 10)  # @xmpp/client 0.14's engines field


@dataclass(frozen=True)
class NodeTools:
    node: str
    flags: tuple[str, ...]  # e.g. --experimental-websocket on Node 20 (xmpp.js needs WebSocket)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _lock_hash() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((NODE_DIR / name).read_bytes())
    return digest.hexdigest()


def install_node_clients() -> NodeTools:
    """``npm ci`` in tests/node unless node_modules holds exactly what package-lock.json pins."""
    cd = f"cd {NODE_DIR} && {' '.join(NPM_CI)}"
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            f"the node client tests need Node.js >= {MIN_NODE[0]}.{MIN_NODE[1]} and npm on PATH"
            f" (Debian: apt-get install nodejs npm), then `{cd}`",
            pytrace=False,
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    found = re.match(r"v(\d+)\.(\d+)", version)
    if found is None or (int(found[1]), int(found[2])) < MIN_NODE:
        pytest.fail(
            f"{node} is {version or 'unusable'}: the node client tests need Node.js >= "
            f"{MIN_NODE[0]}.{MIN_NODE[1]}",
            pytrace=False,
        )
    wanted = _lock_hash()
    with _exclusive(NODE_DIR / ".install.lock"):  # pytest-xdist workers install once
        if not (STAMP.is_file() and STAMP.read_text() == wanted):
            _npm_ci(cd, wanted)
    flags = ("--experimental-websocket",) if int(found[1]) < 22 else ()
    return NodeTools(node, flags)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (other pytest-xdist workers wait for it)."""
    with path.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _npm_ci(cd: str, wanted: str) -> None:
    env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
    try:
        done = subprocess.run(
            NPM_CI,
            cwd=NODE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{cd}` did not finish within {NPM_TIMEOUT:.0f} s", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"`{cd}` failed (exit {done.returncode}):\n{_tail(done.stdout + done.stderr)}",
            pytrace=False,
        )
    STAMP.write_text(wanted)


def install_chromium() -> Path:
    """Debian's chromium package, installed by tests/browser/install-chromium.sh if missing."""
    with _exclusive(NODE_DIR / ".install.lock"):
        _install_chromium()
    return CHROMIUM


def _install_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        try:
            done = subprocess.run(
                ["sh", str(INSTALL_CHROMIUM)],
                capture_output=True,
                text=True,
                timeout=APT_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"`sh {INSTALL_CHROMIUM}` did not install Chromium within {APT_TIMEOUT:.0f} s",
                pytrace=False,
            )
        if done.returncode != 0 or not os.access(CHROMIUM, os.X_OK):
            pytest.fail(
                f"the browser tests need {CHROMIUM} (Debian's chromium package); "
                f"`sh {INSTALL_CHROMIUM}` could not install it (exit {done.returncode}):\n"
                f"{_tail(done.stdout + done.stderr)}",
                pytrace=False,
            )


def _new_file(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")


class NodeScript:
    """A node script from tests/node run as a subprocess in its own process group (so that
    Chromium, which playwright starts under it, goes with it). It prints JSON lines on stdout;
    its stderr goes to a file in the test's tmp folder.

    The script bounds itself (``config["timeout_ms"]``) and says what failed; the test waits
    for it a little longer than that, so that the script's own message (and screenshot) comes
    first."""

    def __init__(
        self, proc: asyncio.subprocess.Process, name: str, stderr: Path, deadline: float
    ) -> None:
        self.proc, self.name, self.stderr, self.deadline = proc, name, stderr, deadline

    @classmethod
    async def start(
        cls,
        tools: NodeTools,
        script: str,
        config: dict[str, Any],
        output: Path,
        env: dict[str, str] | None = None,
        *,
        commands: bool = False,
    ) -> NodeScript:
        """``commands``: the script reads commands from its stdin, one a line (``tell``)."""
        stderr = output / f"{Path(script).stem}.stderr"
        with _new_file(stderr) as err:
            proc = await asyncio.create_subprocess_exec(
                tools.node,
                *tools.flags,
                str(NODE_DIR / script),
                json.dumps(config),
                cwd=NODE_DIR,
                stdin=asyncio.subprocess.PIPE if commands else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        limit = config["timeout_ms"] / 1000 + OVERTIME
        return cls(proc, script, stderr, asyncio.get_running_loop().time() + limit)

    def _left(self) -> float:
        return max(0.1, self.deadline - asyncio.get_running_loop().time())

    def errors(self) -> str:
        return _tail(self.stderr.read_text(errors="replace")) if self.stderr.exists() else ""

    async def event(self, name: str) -> dict[str, Any]:
        """The script's next JSON line, which must be the event ``name``."""
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), self._left())
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: no {name!r} before its deadline; stderr:\n{self.errors()}"
            ) from None
        if not line:
            code = await self.exit_code(5)
            raise AssertionError(
                f"{self.name} ended (exit {code}) before {name!r}; stderr:\n{self.errors()}"
            )
        event: dict[str, Any] = json.loads(line)
        assert event.get("event") == name, f"{self.name}: expected {name!r}, got {event}"
        return event

    async def tell(self, command: str) -> None:
        """One line to the script's stdin (started with ``commands=True``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await asyncio.wait_for(self.proc.stdin.drain(), self._left())

    async def exit_code(self, timeout: float) -> int | None:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self.proc.wait(), timeout)
        return None

    async def finished(self) -> None:
        """The script ends by itself, with exit code 0."""
        code = await self.exit_code(self._left())
        assert code == 0, f"{self.name} exit {code}; stderr:\n{self.errors()}"

    async def kill(self) -> None:
        """End the script if it is still running: SIGTERM first (a script may keep a screenshot
        then), after ``STOP_GRACE`` seconds SIGKILL to its process group (node and what it
        started, e.g. Chromium)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            if await self.exit_code(STOP_GRACE) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.exit_code(10)
