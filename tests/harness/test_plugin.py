"""The pytest plugin, run as users run it: an inner pytest session in a subprocess (pytester),
with the plugin loaded through its entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

SUITE = '''
import socket
import pytest
from minixmpp.testing import match


def read_features(address, ca_file):
    """A bare TCP client: the server's first words."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"<stream:stream xmlns='jabber:client' to='localhost' version='1.0'"
                     b" xmlns:stream='http://etherx.jabber.org/streams'>")
        data = b""
        while b"</stream:features>" not in data:
            data += sock.recv(4096)
        return data


def test_sync_user_and_invite(xmpp_server, xmpp_user, xmpp_invite):
    assert xmpp_user.jid.endswith("@localhost")
    assert xmpp_invite.uri.startswith("xmpp:localhost?register;preauth=")
    xmpp_server.create_user("carol", "pw")
    assert b"starttls" in read_features(xmpp_server.c2s_address, xmpp_server.ca_file)
    assert xmpp_server.wait_for(match("features")) is not None


def test_reset_between_tests(xmpp_server):
    assert xmpp_server.create_user("carol", "pw").jid == "carol@localhost"  # made again


async def test_async_style(xmpp_server):
    account = await xmpp_server.create_user("dave", "pw")
    invite = await xmpp_server.create_invite(token="tok-1")
    assert (account.jid, invite.token) == ("dave@localhost", "tok-1")
    await xmpp_server.assert_nothing_sent_to("dave@localhost")


@pytest.mark.xmpp_server(modules=["ping"], plaintext=True, profile="xep")
def test_marker(xmpp_server):
    features = read_features(xmpp_server.c2s_address, xmpp_server.ca_file)
    assert b"SCRAM-SHA-1" in features  # plaintext: SASL without TLS


def test_factory(xmpp_server, xmpp_server_factory):
    other = xmpp_server_factory(users={"erin": "pw"})
    assert other.c2s_address != xmpp_server.c2s_address
'''


def test_fixtures_marker_and_reset(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_a_failing_test_leaves_its_transcript(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_failing=SUITE.split("def test_sync")[0]
        + """
def test_fails(xmpp_server):
    read_features(xmpp_server.c2s_address, xmpp_server.ca_file)
    assert False, "on purpose"
"""
    )
    folder = tmp_path / "transcripts"
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", f"--xmpp-transcripts={folder}"
    )
    result.assert_outcomes(failed=1)
    [written] = list(folder.iterdir())
    assert written.name == "test_failing.py_test_fails.txt"
    text = written.read_text()
    assert "C: <stream:stream to='localhost'" in text and "S: <stream:features>" in text
    result.stdout.fnmatch_lines(["*xmpp transcript*", f"written to {written}"])


def test_xdist_workers_share_no_ports_or_state(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeini(INI)
    out = tmp_path / "seen"
    out.mkdir()
    tests = "\n".join(
        f"""
def test_{i}(xmpp_server):
    import json, os
    xmpp_server.create_user("same-name", "pw")  # would clash if two workers shared a server
    seen = {{"worker": os.environ.get("PYTEST_XDIST_WORKER"), "port": xmpp_server.c2s_address[1],
            "data": str(xmpp_server.data_path)}}
    with open({str(out)!r} + "/{i}.json", "w") as file:
        file.write(json.dumps(seen))
"""
        for i in range(6)
    )
    pytester.makepyfile(test_parallel=tests)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=6)
    seen = [json.loads(p.read_text()) for p in out.iterdir()]
    by_worker: dict[str, set[tuple[int, str]]] = {}
    for entry in seen:
        by_worker.setdefault(entry["worker"], set()).add((entry["port"], entry["data"]))
    assert len(by_worker) == 2, by_worker  # both workers ran tests
    servers = [s for per in by_worker.values() for s in per]
    assert all(len(per) == 1 for per in by_worker.values())  # one server per worker
    assert len({port for port, _ in servers}) == 2 and len({d for _, d in servers}) == 2
