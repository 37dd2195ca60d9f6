"""XMPP Ping (XEP-0199): the server answers pings addressed to it."""

from minixmpp.events import StanzaEvent
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_PING = "urn:xmpp:ping"


def load(module: Module) -> None:
    module.add_feature(NS_PING)

    @module.hook(f"iq-get/host/{NS_PING}:ping")
    async def ping(event: StanzaEvent) -> bool:
        event.session.send(st.reply(event.stanza))
        return True
