"""Server uptime (XEP-0012 Last Activity of the server itself), as Prosody's mod_uptime: an
IQ to the host answers how many seconds the server has been running."""

from __future__ import annotations

from minixmpp.events import StanzaEvent
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_LAST = "jabber:iq:last"


def load(module: Module) -> None:
    module.add_feature(NS_LAST)
    # the server's start, shared by its hosts (Prosody's prosody.start_time)
    started = module.shared("started", module.clock.time)

    @module.hook(f"iq-get/host/{NS_LAST}:query")
    async def uptime(event: StanzaEvent) -> bool:
        seconds = max(int(module.clock.time() - started), 0)
        reply = st.reply(event.stanza)
        st.sub(reply, f"{{{NS_LAST}}}query", {"seconds": str(seconds)})
        event.session.send(reply)
        return True
