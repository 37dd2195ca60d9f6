from minixmpp.testing import TestServer
from tests.xmpp import login


async def test_login_and_ping(server: TestServer) -> None:
    client, jid = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "r1")
    assert jid == "alice@localhost/r1"
    reply = await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    assert reply.get("type") == "result"
    await client.close()
