"""Tutorial 2 runs: a Node script starts `minixmpp testserver`, drives it through the control
API and tests an xmpp.js client against it (tests/node/testserver_tutorial.mjs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.clients.node import NPM_TIMEOUT, NodeScript, NodeTools

pytestmark = pytest.mark.timeout(NPM_TIMEOUT + 60)


async def test_a_node_suite_drives_testserver(tmp_path: Path, node_clients: NodeTools) -> None:
    config = {"minixmpp": [sys.executable, "-m", "minixmpp"], "timeout_ms": 40_000}
    node = await NodeScript.start(node_clients, "testserver_tutorial.mjs", config, tmp_path)
    try:
        passed = await node.event("passed")
        assert passed["checks"] == 8
        await node.finished()
    finally:
        await node.kill()
