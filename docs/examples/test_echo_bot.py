"""Tutorial 1: a slixmpp bot tested with minixmpp's pytest fixtures.

Run it with `pytest docs/examples/test_echo_bot.py` once minixmpp is installed (its pytest
plugin is registered by the package): `xmpp_server` is a real server, reset before each test;
`xmpp_user` is a fresh account on it.
"""

import asyncio
import ssl

import slixmpp


class EchoBot(slixmpp.ClientXMPP):
    """The code under test: answers every chat message with the same text."""

    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.echo)

    async def start(self, _event):
        self.send_presence()
        await self.get_roster()

    def echo(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            msg.reply(f"echo: {msg['body']}").send()


def client_for(server, account, cls=slixmpp.ClientXMPP):
    client = cls(account.jid, account.password)
    client.ssl_context = ssl.create_default_context(cafile=str(server.ca_file))
    return client


async def connected(client, server):
    started = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _e: started.done() or started.set_result(None))
    client.connect(*server.c2s_address)
    await asyncio.wait_for(started, 10)
    return client


async def test_the_bot_echoes(xmpp_server, xmpp_user):
    bot_account = await xmpp_server.new_user("bot")
    bot = await connected(client_for(xmpp_server, bot_account, EchoBot), xmpp_server)
    alice = await connected(client_for(xmpp_server, xmpp_user), xmpp_server)
    answer = asyncio.get_running_loop().create_future()
    alice.add_event_handler("message", lambda msg: answer.done() or answer.set_result(msg))

    alice.send_message(mto=bot_account.jid, mbody="hello", mtype="chat")

    msg = await asyncio.wait_for(answer, 10)
    assert msg["body"] == "echo: hello"
    # the server saw the exchange: ask its traffic log
    sent = xmpp_server.received_by(xmpp_user.jid, "message")
    assert [r.element.findtext("{jabber:client}body") for r in sent] == ["echo: hello"]
    for client in (alice, bot):
        client.disconnect()


async def test_the_bot_ignores_headlines(xmpp_server, xmpp_user):
    bot_account = await xmpp_server.new_user("bot")
    bot = await connected(client_for(xmpp_server, bot_account, EchoBot), xmpp_server)
    alice = await connected(client_for(xmpp_server, xmpp_user), xmpp_server)
    answers = asyncio.Queue()
    alice.add_event_handler("message", answers.put_nowait)
    mark = xmpp_server.traffic.mark()

    alice.send_message(mto=bot_account.jid, mbody="news", mtype="headline")
    alice.send_message(mto=bot_account.jid, mbody="after", mtype="chat")

    # No sleep to prove that nothing came: the bot handles messages in order, so an answer to
    # the headline would have come before the answer to "after".
    assert (await asyncio.wait_for(answers.get(), 10))["body"] == "echo: after"
    sent = xmpp_server.received_by(xmpp_user.jid, "message", since=mark)
    assert [r.element.findtext("{jabber:client}body") for r in sent] == ["echo: after"]
    for client in (alice, bot):
        client.disconnect()
