"""The real-client tests never skip: without Chromium or Node.js they fail, saying what to
install (tests/clients/node.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients import node


def test_no_chromium_and_no_way_to_install_it_fails_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "install-chromium.sh"
    script.write_text("echo 'install-chromium.sh: installing needs root' >&2\nexit 1\n")
    monkeypatch.setattr(node, "CHROMIUM", tmp_path / "no" / "chromium")
    monkeypatch.setattr(node, "INSTALL_CHROMIUM", script)
    with pytest.raises(pytest.fail.Exception) as failed:
        node.install_chromium()
    message = str(failed.value)
    assert f"the browser tests need {tmp_path / 'no' / 'chromium'}" in message
    assert f"`sh {script}` could not install it (exit 1)" in message
    assert "installing needs root" in message


def test_no_node_fails_saying_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.shutil, "which", lambda _name: None)
    with pytest.raises(pytest.fail.Exception) as failed:
        node.install_node_clients()
    assert "need Node.js >= 20.10 and npm on PATH (Debian: apt-get install nodejs npm)" in str(
        failed.value
    )
    assert "npm ci --ignore-scripts" in str(failed.value)
