"""Entity Time (XEP-0202) of the server, in UTC like Prosody's."""

import datetime

from minixmpp.events import StanzaEvent
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_TIME = "urn:xmpp:time"


def load(module: Module) -> None:
    module.add_feature(NS_TIME)

    @module.hook(f"iq-get/host/{NS_TIME}:time")
    async def time(event: StanzaEvent) -> bool:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        reply = st.reply(event.stanza)
        payload = st.sub(reply, f"{{{NS_TIME}}}time")
        st.sub(payload, f"{{{NS_TIME}}}tzo", text="+00:00")
        st.sub(payload, f"{{{NS_TIME}}}utc", text=now)
        event.session.send(reply)
        return True
