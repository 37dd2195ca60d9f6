"""Last Activity (XEP-0012) of accounts, as Prosody's mod_lastactivity: when a user's resource
goes offline (``unavailable`` with no ``to``) the time and its status text are kept (in memory,
as Prosody); the user and the contacts subscribed to the user's presence may ask how many
seconds ago that was (``0`` and no text if not since the server started). Anyone else gets
``auth/forbidden``."""

from __future__ import annotations

from minixmpp.errors import StanzaError
from minixmpp.events import USER_DELETED, StanzaEvent, UserEvent
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_LAST = "jabber:iq:last"


def load(module: Module) -> None:
    module.add_feature(NS_LAST)
    host = module.host
    last: dict[str, tuple[float, str]] = {}  # username -> (when, status text)
    module.forget_on_reset(last)

    @module.hook("pre-presence/bare", priority=10)
    async def went_offline(event: StanzaEvent) -> None:
        stanza, username = event.stanza, event.session.username
        if event.to is None and stanza.get("type") == "unavailable" and username is not None:
            last[username] = (module.clock.time(), stanza.findtext("status") or "")

    @module.hook(f"iq-get/bare/{NS_LAST}:query")
    async def query(event: StanzaEvent) -> bool:
        session, to = event.session, event.to
        if to is None:
            assert session.username is not None
            username = session.username
        else:
            assert to.node is not None
            username = to.node
            item = await module.rosters.item(host, username, session.jid.bare)
            if item is None or not item.from_:
                raise StanzaError("forbidden", type="auth")
        when, status = last.get(username, (module.clock.time(), ""))
        reply = st.reply(event.stanza)
        seconds = str(max(int(module.clock.time() - when), 0))
        st.sub(reply, f"{{{NS_LAST}}}query", {"seconds": seconds}, text=status)
        session.send(reply)
        return True

    @module.hook(USER_DELETED)
    async def forget(event: UserEvent) -> None:
        last.pop(event.username, None)
