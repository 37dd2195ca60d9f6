"""Uptime and Last Activity (XEP-0012), contact addresses (XEP-0157), external services
(XEP-0215), outage status addresses (XEP-0455) and what host and account discovery announce,
over real sockets."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from minixmpp.errors import ModuleError
from minixmpp.roster import RosterItem
from minixmpp.testing import running_server
from tests.conftest import PASSWORDS
from tests.xmpp import login, same_xml, stanza_error, until_pong

LAST = "jabber:iq:last"
INFO = "http://jabber.org/protocol/disco#info"
EXT = "urn:xmpp:extdisco:2"
MODULES = [
    "disco", "ping", "uptime", "lastactivity", "server_contact_info", "external_services",
    "service_outage_status",
]  # fmt: skip
SERVICES = [
    {"type": "stun", "transport": "udp", "host": "stun.localhost", "port": 3478},
    {"type": "turn", "transport": "udp", "port": 3478, "username": "u", "password": "p"},
    {"type": "turn", "transport": "tcp", "host": "turn.localhost", "secret": "s3", "ttl": 600},
]


async def test_uptime_and_last_activity(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options={"c2s_idle_timeout": 0}) as srv:
        for name, password in PASSWORDS.items():
            await srv.create_user(name, password)
        srv.clock.freeze()
        rosters = srv.server.hosts["localhost"].rosters
        await rosters.save("localhost", "bob", RosterItem("alice@localhost", subscription="from"))
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"])
        srv.clock.advance(42)
        reply = await alice.iq(f"<query xmlns='{LAST}'/>", to="localhost")
        same_xml(
            reply,
            "<iq type='result' from='localhost' to='alice@localhost/"
            f"{reply.get('to', '').split('/')[1]}'><query xmlns='{LAST}' seconds='42'/></iq>",
        )
        # bob has not been online since the start: 0 seconds, no text
        reply = await alice.iq(f"<query xmlns='{LAST}'/>", to="bob@localhost")
        same_xml(reply[0], f"<query xmlns='{LAST}' seconds='0'/>")
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
        await bob.send("<presence/>")
        await bob.send("<presence type='unavailable'><status>gone fishing</status></presence>")
        await until_pong(bob)
        srv.clock.advance(100)
        reply = await alice.iq(f"<query xmlns='{LAST}'/>", to="bob@localhost")
        same_xml(reply[0], f"<query xmlns='{LAST}' seconds='100'>gone fishing</query>")
        own = await bob.iq(f"<query xmlns='{LAST}'/>")  # one's own: always
        same_xml(own[0], f"<query xmlns='{LAST}' seconds='100'>gone fishing</query>")
        # carol is not subscribed to bob
        carol, _ = await login(srv.c2s_port, srv.ca_file, "carol", PASSWORDS["carol"])
        reply = await carol.iq(f"<query xmlns='{LAST}'/>", to="bob@localhost")
        assert stanza_error(reply) == ("auth", "forbidden", None)


async def test_contact_addresses_and_disco(tmp_path: Path) -> None:
    contact = {"abuse": ["mailto:abuse@localhost", "xmpp:abuse@localhost"]}
    async with running_server(
        tmp_path,
        modules=[*MODULES, "mam", "private", "blocklist"],
        options={"contact_info": contact},
    ) as srv:
        await srv.create_user("alice", "pw")
        alice, jid = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        info = await alice.iq(f"<query xmlns='{INFO}'/>", to="localhost")
        form = info[0].find("{jabber:x:data}x")
        assert form is not None
        same_xml(
            form,
            "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
            "<value>http://jabber.org/network/serverinfo</value></field>"
            "<field var='abuse-addresses' type='list-multi'><value>mailto:abuse@localhost</value>"
            "<value>xmpp:abuse@localhost</value></field>"
            + "".join(
                f"<field var='{kind}-addresses' type='list-multi'/>"
                for kind in ("admin", "feedback", "sales", "security", "status", "support")
            )
            + "</x>",
        )
        features = [f.get("var") for f in info[0].iter(f"{{{INFO}}}feature")]
        assert features == sorted(
            {
                INFO,
                "http://jabber.org/protocol/disco#items",
                "urn:xmpp:ping",
                LAST,
                EXT,
                "urn:xmpp:extdisco:1",
                "jabber:iq:private",
                "urn:xmpp:blocking",
                "msgoffline",
                "jabber:iq:roster",
            }
        )
        account = await alice.iq(f"<query xmlns='{INFO}'/>", to="alice@localhost")
        same_xml(
            account,
            f"<iq type='result' from='alice@localhost' to='{jid}'><query xmlns='{INFO}'>"
            "<identity category='account' type='registered'/>"
            + "".join(
                f"<feature var='{v}'/>"
                for v in sorted(
                    {
                        INFO,
                        "http://jabber.org/protocol/disco#items",
                        "jabber:iq:roster",
                        "urn:xmpp:mam:2",
                        "urn:xmpp:mam:2#extended",
                        "urn:xmpp:sid:0",
                    }
                )
            )
            + "</query></iq>",
        )


async def test_admins_are_the_default_contacts(tmp_path: Path) -> None:
    options = {"admins": ["root@localhost"]}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        info = await alice.iq(f"<query xmlns='{INFO}'/>", to="localhost")
        field = info.find(".//{jabber:x:data}field[@var='admin-addresses']")
        assert field is not None and [v.text for v in field] == ["xmpp:root@localhost"]


async def test_external_services(tmp_path: Path) -> None:
    options = {"external_services": SERVICES, "c2s_idle_timeout": 0}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "pw")
        srv.clock.freeze()
        srv.clock.set_time(1_800_000_000)
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        expires = 1_800_000_600
        name = str(expires)
        password = base64.b64encode(hmac.new(b"s3", name.encode(), hashlib.sha1).digest()).decode()
        stun = "<service type='stun' transport='udp' host='stun.localhost' port='3478'/>"
        turn_p = (
            "<service type='turn' transport='udp' host='localhost' port='3478' username='u'"
            " password='p' restricted='1'/>"
        )
        turn_s = (
            f"<service type='turn' transport='tcp' host='turn.localhost' username='{name}'"
            f" password='{password}' restricted='1' expires='2027-01-15T08:10:00Z'/>"
        )
        for ns in (EXT, "urn:xmpp:extdisco:1"):
            reply = await alice.iq(f"<services xmlns='{ns}'/>", to="localhost")
            same_xml(reply[0], f"<services xmlns='{ns}'>{stun}{turn_p}{turn_s}</services>")
        reply = await alice.iq(f"<services xmlns='{EXT}' type='stun'/>", to="localhost")
        same_xml(reply[0], f"<services xmlns='{EXT}'>{stun}</services>")
        reply = await alice.iq(
            f"<credentials xmlns='{EXT}'><service type='turn' host='turn.localhost'/>"
            "<service type='stun' host='stun.localhost' port='3478'/></credentials>",
            to="localhost",
        )
        same_xml(reply[0], f"<credentials xmlns='{EXT}'>{turn_s}</credentials>")
        reply = await alice.iq(
            f"<credentials xmlns='{EXT}'><service type='turn'/></credentials>", to="localhost"
        )
        assert stanza_error(reply) == (
            "modify",
            "bad-request",
            "The 'port' and 'type' attributes are required.",
        )
    options = {"external_services": SERVICES, "external_service_access": ["bob@localhost"]}
    async with running_server(tmp_path / "2", modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        reply = await alice.iq(f"<services xmlns='{EXT}'/>", to="localhost")
        assert stanza_error(reply) == ("auth", "forbidden", None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"external_services": [{"host": "x"}]}, "has no 'type'"),
        ({"contact_info": {"complaints": ["mailto:x@y"]}}, "unknown kind 'complaints'"),
        ({"outage_status_urls": ["status.localhost/s.json"]}, "'status.localhost/s.json' is not"),
        ({"outage_status_urls": ["https://a b"]}, "'https://a b' is not a URI"),
    ],
)
async def test_bad_configuration_stops_start(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ModuleError, match=message):
        async with running_server(tmp_path, modules=MODULES, options=options):
            pass


async def test_outage_status_addresses(tmp_path: Path) -> None:
    """The ``urn:xmpp:sos:0`` form of prosody-modules' mod_service_outage_status, beside the
    XEP-0157 one; without ``outage_status_urls`` the field is there, empty, as Prosody's."""
    urls = ["https://status.example.net/xmpp.json", "http://[::1]:8080/status.json"]
    sos = "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:sos:0</value></field>"
    for given, values in ((urls, urls), (None, [])):
        options = {} if given is None else {"outage_status_urls": given}
        async with running_server(
            tmp_path / str(len(values)), modules=MODULES, options=options
        ) as srv:
            await srv.create_user("alice", "pw")
            alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
            info = await alice.iq(f"<query xmlns='{INFO}'/>", to="localhost")
            forms = info[0].findall("{jabber:x:data}x")
            assert [f[0][0].text for f in forms] == [
                "http://jabber.org/network/serverinfo",
                "urn:xmpp:sos:0",
            ]
            same_xml(
                forms[1],
                f"<x xmlns='jabber:x:data' type='result'>{sos}"
                "<field var='external-status-addresses' type='list-multi'>"
                + "".join(f"<value>{url}</value>" for url in values)
                + "</field></x>",
            )
