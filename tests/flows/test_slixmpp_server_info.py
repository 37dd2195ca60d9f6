"""slixmpp against the server-information modules: Last Activity (its xep_0012 plugin) of the
server and of a contact, contact addresses through its XEP-0128 support (slixmpp has no
XEP-0157 plugin), and external services with a plain IQ (nor has it one for XEP-0215)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from minixmpp.roster import RosterItem
from minixmpp.testing import running_server
from tests.xmpp import slix_login

PLUGINS = ("xep_0030", "xep_0199", "xep_0012", "xep_0128")
MODULES = ["disco", "ping", "uptime", "lastactivity", "server_contact_info", "external_services"]


async def test_slixmpp_last_activity_contacts_and_services(tmp_path: Path) -> None:
    from slixmpp.xmlstream import ET

    options = {
        "contact_info": {"support": ["https://localhost/support"]},
        "external_services": [{"type": "stun", "host": "stun.localhost", "port": 3478}],
    }
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        for user in ("alice", "bob"):
            await srv.create_user(user, "pw")
        rosters = srv.server.hosts["localhost"].rosters
        await rosters.save("localhost", "bob", RosterItem("alice@localhost", subscription="from"))
        alice = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost", "pw", plugins=PLUGINS
        )
        bob = await slix_login(srv.c2s_port, srv.ca_file, "bob@localhost/b", "pw", plugins=PLUGINS)
        last = alice.client.plugin["xep_0012"]
        uptime = await last.get_last_activity("localhost", timeout=10)
        assert uptime["last_activity"]["seconds"] >= 0
        bob.client.send_presence(pstatus="back soon", ptype="unavailable")
        await bob.settle()
        seen = await last.get_last_activity("bob@localhost", timeout=10)
        assert seen["last_activity"]["status"] == "back soon"
        assert 0 <= seen["last_activity"]["seconds"] < 60

        info = await alice.client.plugin["xep_0030"].get_info(jid="localhost", timeout=10)
        values = info["disco_info"]["form"].get_values()
        serverinfo = "http://jabber.org/network/serverinfo"
        assert values["FORM_TYPE"] in (serverinfo, [serverinfo])  # slixmpp: a list in results
        assert values["support-addresses"] == ["https://localhost/support"]

        iq = alice.client.make_iq_get(ito="localhost")
        iq.append(ET.fromstring("<services xmlns='urn:xmpp:extdisco:2'/>"))
        reply = await iq.send(timeout=10)
        services = etree.fromstring(ET.tostring(reply.xml))[0]
        assert [(s.get("type"), s.get("host"), s.get("port")) for s in services] == [
            ("stun", "stun.localhost", "3478")
        ]
