"""Operator safety (issue 10) as an operator meets it, through real processes: the command
line, the data folder a server owns, one-line errors, the start-up checks and limits.

Permission checks run the CLI bound by file permissions: as this user, or, when the tests run
as root, as root without the capabilities that let it read and write everything.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.test_cli import run, write_config

# -- helpers --------------------------------------------------------------------------------------


def accounts(folder: Path) -> list[str]:
    database = folder / "data" / "minixmpp.sqlite"
    if not database.exists():
        return []
    with sqlite3.connect(database) as db:
        names = [row[0] for row in db.execute("SELECT username FROM accounts ORDER BY 1")]
    db.close()
    return names


def unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI bound by file permissions: as this user, or as root without the capabilities
    that override them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop the override capabilities")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "minixmpp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr, result.stderr
    assert f"minixmpp: {message}\n" in result.stderr, result.stderr


# -- -c before or after the command ---------------------------------------------------------------


def test_config_before_the_command_is_used(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    elsewhere = tmp_path / "elsewhere"  # no server.toml here
    elsewhere.mkdir()
    checked = run("-c", config, "check-config", cwd=elsewhere)
    assert (checked.returncode, checked.stdout.splitlines()[-1]) == (0, f"{config}: OK")
    assert run("--config", config, "user", "add", "dan@localhost", "pw", cwd=elsewhere).stdout == (
        "created dan@localhost\n"
    )
    assert run("user", "list", "localhost", "-c", config, cwd=elsewhere).stdout == "dan\n"


def test_config_before_and_after_the_command_is_refused(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    for args in (
        ["-c", config, "check-config", "-c", config],
        ["-c", config, "user", "list", "localhost", "--config", "other.toml"],
    ):
        result = run(*args)
        assert (result.returncode, result.stdout) == (2, ""), result
        assert result.stderr == (
            "minixmpp: -c given both before and after the command; give it once\n"
        )
