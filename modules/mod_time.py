"""Entity Time (XEP-0202) of the server in UTC, and the legacy jabber:iq:time (XEP-0090),
as Prosody answers them."""

import datetime

from minixmpp.events import StanzaEvent
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_TIME = "urn:xmpp:time"
NS_LEGACY = "jabber:iq:time"


def load(module: Module) -> None:
    module.add_feature(NS_TIME)
    module.add_feature(NS_LEGACY)

    @module.hook(f"iq-get/host/{NS_TIME}:time")
    async def time(event: StanzaEvent) -> bool:
        reply = st.reply(event.stanza)
        payload = st.sub(reply, f"{{{NS_TIME}}}time")
        st.sub(payload, f"{{{NS_TIME}}}tzo", text="+00:00")
        st.sub(payload, f"{{{NS_TIME}}}utc", text=module.clock.stamp())
        event.session.send(reply)
        return True

    @module.hook(f"iq-get/host/{NS_LEGACY}:query")
    async def legacy_time(event: StanzaEvent) -> bool:
        now = datetime.datetime.fromtimestamp(int(module.clock.time()), datetime.UTC)
        reply = st.reply(event.stanza)
        query = st.sub(reply, f"{{{NS_LEGACY}}}query")
        st.sub(query, f"{{{NS_LEGACY}}}utc", text=now.strftime("%Y%m%dT%H:%M:%S"))
        event.session.send(reply)
        return True
