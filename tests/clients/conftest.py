"""Session fixtures for the real-client tests: the npm packages and Debian's Chromium are
installed here once per session, and only when missing or stale (tests/clients/node.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.node import NodeTools, install_chromium, install_node_clients


@pytest.fixture(scope="session")
def node_clients() -> NodeTools:
    return install_node_clients()


@pytest.fixture(scope="session")
def chromium() -> Path:
    return install_chromium()
