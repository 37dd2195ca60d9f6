"""Software Version (XEP-0092) of the server."""

import platform
from dataclasses import dataclass

from minixmpp import __version__
from minixmpp.events import CONFIG_RELOADED, ConfigReloaded, StanzaEvent
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_VERSION = "jabber:iq:version"


@dataclass
class Options:
    hide_os_type: bool = False  # Prosody's option: leave <os/> out of the reply


def load(module: Module) -> None:
    opts = module.options(Options)
    module.add_feature(NS_VERSION)
    os_name = platform.system()

    @module.hook(CONFIG_RELOADED)
    async def reloaded(_event: ConfigReloaded) -> None:
        nonlocal opts
        opts = module.options(Options)

    @module.hook(f"iq-get/host/{NS_VERSION}:query")
    async def version(event: StanzaEvent) -> bool:
        reply = st.reply(event.stanza)
        query = st.sub(reply, f"{{{NS_VERSION}}}query")
        st.sub(query, f"{{{NS_VERSION}}}name", text="minixmpp")
        st.sub(query, f"{{{NS_VERSION}}}version", text=__version__)
        if not opts.hide_os_type and os_name:
            st.sub(query, f"{{{NS_VERSION}}}os", text=os_name)
        event.session.send(reply)
        return True
