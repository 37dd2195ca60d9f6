"""One error boundary: a handler that raises at any hook point is logged once, the client gets
internal-server-error (a stanza error or a stream error, whichever fits) at once, never a hang,
and the server goes on serving everyone else."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from minixmpp.testing import running_server
from tests.xmpp import HEADER, NS_BIND, RawClient, login, stanza_error

BOOM = '''
    """Raises wherever the boom_at option says."""
    from dataclasses import dataclass

    from minixmpp.events import RESOURCE_BIND, RESOURCE_UNBIND, STREAM_FEATURES
    from minixmpp.module import Module


    @dataclass
    class Options:
        boom_at: str = ""


    def load(module: Module) -> None:
        at = module.options(Options).boom_at

        async def boom(event: object) -> None:
            raise RuntimeError("secret internal detail")

        if at == "features":
            module.hook(STREAM_FEATURES)(boom)
        elif at == "bind":
            module.hook(RESOURCE_BIND)(boom)
        elif at == "unbind":
            module.hook(RESOURCE_UNBIND)(boom)
        elif at == "stanza":
            module.hook("iq-get/host/urn:test:boom:boom")(boom)
        elif at == "filter":

            async def add_filter(event) -> None:
                def explode(stanza):
                    if stanza.tag == "message":
                        raise RuntimeError("secret internal detail")
                    return stanza

                event.session.filters.add(explode)

            module.hook(RESOURCE_BIND)(add_filter)
'''


async def boom_server(tmp_path: Path, at: str):  # type: ignore[no-untyped-def]
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_boom.py").write_text(textwrap.dedent(BOOM))
    options = {"plugin_paths": [str(plugins)], "boom_at": at}
    return running_server(tmp_path, modules=["ping", "boom"], options=options)


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info]


async def test_a_failing_stream_features_handler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="minixmpp")
    async with await boom_server(tmp_path, "features") as srv:
        client = await RawClient.connect(srv.c2s_port)
        await client.send(HEADER.format(to="localhost"))
        assert await client.stream_error(timeout=5) == ("internal-server-error", None)
        assert client.header is not None  # the header, then the error: no silent hang
        assert len(tracebacks(caplog)) == 1
        assert "secret internal detail" not in client.raw.decode()


async def test_a_failing_resource_bind_handler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="minixmpp")
    async with await boom_server(tmp_path, "bind") as srv:
        await srv.create_user("alice", "pw")
        client = await RawClient.connect(srv.c2s_port)
        await client.open()
        await client.starttls(srv.ca_file)
        await client.scram("alice", "pw")
        await client.open()
        await client.send(f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>")
        assert (await client.stream_error(timeout=5))[0] == "internal-server-error"
        assert len(tracebacks(caplog)) == 1
        # and the resource is free again
        host = srv.server.hosts["localhost"]
        assert len(host.sessions) == 0


async def test_a_failing_resource_unbind_handler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="minixmpp")
    async with await boom_server(tmp_path, "unbind") as srv:
        await srv.create_user("alice", "pw")
        client, jid = await login(srv.c2s_port, srv.ca_file, "alice", "pw", "r")
        await client.send("</stream:stream>")
        await client.closed()
        again, jid2 = await login(srv.c2s_port, srv.ca_file, "alice", "pw", "r")
        assert jid2 == jid
        reply = await again.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
        assert reply.get("type") == "result"
        assert len(tracebacks(caplog)) == 1


async def test_a_failing_stanza_handler(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="minixmpp")
    async with await boom_server(tmp_path, "stanza") as srv:
        await srv.create_user("alice", "pw")
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        reply = await client.iq("<boom xmlns='urn:test:boom'/>", to="localhost")
        assert stanza_error(reply) == ("wait", "internal-server-error", None)
        reply = await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost", id="after")
        assert reply.get("type") == "result"
        assert len(tracebacks(caplog)) == 1


async def test_a_failing_outbound_filter(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="minixmpp")
    async with await boom_server(tmp_path, "filter") as srv:
        await srv.create_user("alice", "pw")
        await srv.create_user("bob", "pw")
        bob, bob_jid = await login(srv.c2s_port, srv.ca_file, "bob", "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        await alice.send(f"<message to='{bob_jid}' type='chat'><body>hi</body></message>")
        # bob's filter fails: bob's stream ends with internal-server-error; alice goes on
        assert (await bob.stream_error(timeout=5))[0] == "internal-server-error"
        reply = await alice.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
        assert reply.get("type") == "result"
        assert len(tracebacks(caplog)) == 1
