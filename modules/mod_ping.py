"""XMPP Ping (XEP-0199): the server answers pings to itself and, on their behalf, to accounts."""

from minixmpp.errors import StanzaError
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

    @module.hook(f"iq-get/bare/{NS_PING}:ping")
    async def ping_account(event: StanzaEvent) -> bool:
        target = event.to or event.session.jid
        if target.node is None or not await module.users.exists(target.node):
            raise StanzaError("service-unavailable")
        event.session.send(st.reply(event.stanza))
        return True
