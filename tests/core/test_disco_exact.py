"""Disco on the host and on accounts announces exactly what is served (issue 15), with the
modules of the shipped server.toml (and with the ones it lists commented out as well).

Every feature the host's or an account's disco#info announces has a probe here: a request in
its namespace (or, for a feature without IQs of its own, the behaviour it names) that must be
answered with a result or a protocol-level error, never ``service-unavailable`` or
``feature-not-implemented``. A feature without a probe fails the test, so a module that starts
announcing something must say here how it is served. Conversely every IQ namespace the server
handles for the host or for accounts (the handlers on the host's event bus) is announced.
Both lists are compared with Prosody 0.12.3's for the same modules, recorded below."""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.xmpp import RawClient, login, until_pong

ROOT = Path(__file__).resolve().parents[2]
INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"
PUBSUB = "http://jabber.org/protocol/pubsub"
MAM = "urn:xmpp:mam:2"
NOT_SERVED = {"service-unavailable", "feature-not-implemented"}
# what server.toml lists commented out, as "off as in Prosody's default configuration"
OPTIONAL = ["mam", "http_file_share", "lastactivity", "server_contact_info", "external_services"]
OPTIONAL_OPTIONS = {
    "contact_info": {"abuse": ["mailto:abuse@localhost"]},
    "external_services": [{"type": "stun", "host": "stun.localhost", "port": 3478}],
}


def shipped_modules() -> list[str]:
    modules = tomllib.loads((ROOT / "server.toml").read_text())["modules_enabled"]
    assert isinstance(modules, list)
    return [str(m) for m in modules]


# Prosody 0.12.3 (Debian), recorded on 2026-12-02 with bench/run.py's start_prosody and the
# modules of server.toml that Prosody has (version time carbons csi smacks private blocklist
# uptime pep bookmarks vcard_legacy vcard4 register invites invites_register adhoc
# invites_adhoc http limits offline; sasl2*, invites_page, invites_register_web are not in
# Prosody 0.12), disco#info of "localhost" and of the user's own bare JID.
PROSODY_HOST = {
    "http://jabber.org/protocol/commands",
    INFO,
    ITEMS,
    "jabber:iq:last",
    "jabber:iq:private",
    "jabber:iq:register",
    "jabber:iq:roster",
    "jabber:iq:time",
    "jabber:iq:version",
    "msgoffline",
    "urn:xmpp:blocking",
    "urn:xmpp:carbons:2",
    "urn:xmpp:carbons:rules:0",
    "urn:xmpp:ping",
    "urn:xmpp:time",
    "vcard-temp",
}
PROSODY_HOST_OPTIONAL = {"urn:xmpp:extdisco:1", "urn:xmpp:extdisco:2", "urn:xmpp:http:upload:0"}
PUBSUB_FEATURES = {
    f"{PUBSUB}#{name}"
    for name in [
        "access-presence",
        "auto-create",
        "auto-subscribe",
        "config-node",
        "config-node-max",
        "create-and-configure",
        "create-nodes",
        "delete-items",
        "delete-nodes",
        "filtered-notifications",
        "instant-nodes",
        "item-ids",
        "last-published",
        "member-affiliation",
        "meta-data",
        "modify-affiliations",
        "multi-items",
        "outcast-affiliation",
        "persistent-items",
        "presence-notifications",
        "presence-subscribe",
        "publish",
        "publish-options",
        "publisher-affiliation",
        "purge-nodes",
        "retract-items",
        "retrieve-default",
        "retrieve-items",
        "retrieve-subscriptions",
        "subscribe",
        "subscription-options",
    ]
}
PROSODY_ACCOUNT = {
    PUBSUB,
    *PUBSUB_FEATURES,
    "urn:ietf:params:xml:ns:vcard-4.0",
    "urn:xmpp:bookmarks-conversion:0",
    "urn:xmpp:bookmarks:1#compat",
    "urn:xmpp:bookmarks:1#compat-pep",
    "urn:xmpp:pep-vcard-conversion:0",
}
PROSODY_ACCOUNT_OPTIONAL = {MAM, f"{MAM}#extended", "urn:xmpp:sid:0"}
# Where minixmpp differs, on purpose: an account announces disco#info and #items as Prosody
# 0.12.5 does, and the roster (its IQs are addressed to the account) besides the host, as
# Prosody does; PEP answers XEP-0059 paging of items, and says so.
OURS_ONLY_ACCOUNT = {INFO, ITEMS, "jabber:iq:roster", f"{PUBSUB}#rsm"}
# IQ namespaces handled but announced as stream features, not in disco (as Prosody).
NOT_IN_DISCO = {"urn:ietf:params:xml:ns:xmpp-session"}


@dataclass(frozen=True)
class Probe:
    """An IQ of ``type`` with ``payload``, to the host (``to='host'``), to the user's own
    account (``'self'``: no 'to') or to the user's bare JID (``'bare'``)."""

    type: str
    to: str
    payload: str


def query(ns: str, inner: str = "") -> str:
    return f"<query xmlns='{ns}'>{inner}</query>"


PUBSUB_PROBE = Probe("get", "bare", f"<pubsub xmlns='{PUBSUB}'><items node='probe'/></pubsub>")
VCARD_PROBE = Probe("get", "bare", "<vCard xmlns='vcard-temp'/>")
PRIVATE_BOOKMARKS = Probe(
    "get", "self", query("jabber:iq:private", "<storage xmlns='storage:bookmarks'/>")
)
MAM_PROBE = Probe("set", "self", query(MAM))
CARBONS_PROBE = Probe("set", "self", "<enable xmlns='urn:xmpp:carbons:2'/>")
PROBES: dict[str, Probe] = {
    "http://jabber.org/protocol/commands": Probe(
        "set", "host", "<command xmlns='http://jabber.org/protocol/commands' node='probe'/>"
    ),
    INFO: Probe("get", "host", query(INFO)),
    ITEMS: Probe("get", "host", query(ITEMS)),
    "jabber:iq:last": Probe("get", "host", query("jabber:iq:last")),
    "jabber:iq:private": PRIVATE_BOOKMARKS,
    "jabber:iq:register": Probe("get", "host", query("jabber:iq:register")),
    "jabber:iq:roster": Probe("get", "self", query("jabber:iq:roster")),
    "jabber:iq:time": Probe("get", "host", query("jabber:iq:time")),
    "jabber:iq:version": Probe("get", "host", query("jabber:iq:version")),
    "urn:xmpp:blocking": Probe("get", "self", "<blocklist xmlns='urn:xmpp:blocking'/>"),
    "urn:xmpp:carbons:2": CARBONS_PROBE,
    "urn:xmpp:carbons:rules:0": CARBONS_PROBE,  # XEP-0280's rules: no IQ of their own
    "urn:xmpp:ping": Probe("get", "host", "<ping xmlns='urn:xmpp:ping'/>"),
    "urn:xmpp:time": Probe("get", "host", "<time xmlns='urn:xmpp:time'/>"),
    "vcard-temp": VCARD_PROBE,
    "urn:xmpp:extdisco:1": Probe("get", "host", "<services xmlns='urn:xmpp:extdisco:1'/>"),
    "urn:xmpp:extdisco:2": Probe("get", "host", "<services xmlns='urn:xmpp:extdisco:2'/>"),
    "urn:xmpp:http:upload:0": Probe(
        "get", "host", "<request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='5'/>"
    ),
    PUBSUB: PUBSUB_PROBE,
    # the sub-features of XEP-0060 are served by the same handler: the PubSub tests prove them
    **{feature: PUBSUB_PROBE for feature in PUBSUB_FEATURES | {f"{PUBSUB}#rsm"}},
    "urn:ietf:params:xml:ns:vcard-4.0": Probe(
        "get", "bare", "<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'/>"
    ),
    # XEP-0398: vcard-temp answered from PEP; XEP-0402: bookmarks both ways
    "urn:xmpp:pep-vcard-conversion:0": VCARD_PROBE,
    "urn:xmpp:bookmarks-conversion:0": PRIVATE_BOOKMARKS,
    "urn:xmpp:bookmarks:1#compat": PRIVATE_BOOKMARKS,
    "urn:xmpp:bookmarks:1#compat-pep": Probe(
        "get", "bare", f"<pubsub xmlns='{PUBSUB}'><items node='urn:xmpp:bookmarks:1'/></pubsub>"
    ),
    MAM: MAM_PROBE,
    f"{MAM}#extended": Probe("get", "self", f"<metadata xmlns='{MAM}'/>"),
}
# Features without IQs: proved by the behaviour they name (see test_behaviour_features).
BEHAVIOUR = {"msgoffline", "urn:xmpp:sid:0"}


async def features_of(client: RawClient, to: str) -> set[str]:
    reply = await client.iq(query(INFO), to=to)
    assert reply.get("type") == "result", etree.tostring(reply)
    return {str(f.get("var")) for f in reply.iter(f"{{{INFO}}}feature")}


def handled(srv: TestServer) -> dict[str, set[str]]:
    """The namespaces of the IQ get/set handlers on the host's bus: 'host' (to the host) and
    'account' (to an account's bare JID, or to one's own)."""
    found: dict[str, set[str]] = {"host": set(), "account": set()}
    bus = srv.server.hosts["localhost"].events
    for name in bus._handlers:  # the bus has no listing API: a test may look inside
        matched = re.fullmatch(r"iq-(?:get|set)/(host|bare|self)/(.+):[^:]+", name)
        if matched:
            target, ns = matched.groups()
            found["host" if target == "host" else "account"].add(ns)
    return found


@pytest.fixture(params=["shipped", "with-optional"])
async def srv(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestServer]:
    modules = shipped_modules()
    options: dict[str, object] = {}
    if request.param == "with-optional":
        modules += OPTIONAL
        options = OPTIONAL_OPTIONS
    async with running_server(tmp_path, modules=modules, options=options) as server:
        for name in ("alice", "bob"):
            await server.create_user(name, f"{name}-pw")
        yield server


def optional(srv: TestServer) -> bool:
    return "mam" in srv.server.hosts["localhost"].modules


async def probe(client: RawClient, feature: str, p: Probe) -> None:
    to = {"host": "localhost", "self": None, "bare": "alice@localhost"}[p.to]
    reply = await client.iq(p.payload, type=p.type, to=to)
    if reply.get("type") == "result":
        return
    error = reply.find("error")
    assert error is not None, etree.tostring(reply)
    conditions = {etree.QName(c).localname for c in error}
    assert not conditions & NOT_SERVED, (feature, etree.tostring(reply))


async def test_every_announced_feature_is_served(srv: TestServer) -> None:
    alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "alice-pw")
    announced = await features_of(alice, "localhost") | await features_of(alice, "alice@localhost")
    unknown = announced - PROBES.keys() - BEHAVIOUR
    assert not unknown, f"announced without a probe in this test: {sorted(unknown)}"
    for feature in sorted(announced - BEHAVIOUR):
        await probe(alice, feature, PROBES[feature])
    assert await until_pong(alice) == []


async def test_every_served_namespace_is_announced(srv: TestServer) -> None:
    alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "alice-pw")
    host = await features_of(alice, "localhost")
    account = await features_of(alice, "alice@localhost")
    served = handled(srv)
    # the owner's namespace of XEP-0060 is PubSub's
    for found in served.values():
        if f"{PUBSUB}#owner" in found:
            found.discard(f"{PUBSUB}#owner")
            found.add(PUBSUB)
    assert served["host"] - NOT_IN_DISCO <= host, sorted(served["host"] - host)
    # Prosody announces an account's own services (carbons, blocking, private, vCard) on the
    # host; clients look in both places
    assert served["account"] - NOT_IN_DISCO <= host | account, sorted(
        served["account"] - host - account
    )


async def test_the_lists_are_prosodys(srv: TestServer) -> None:
    alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "alice-pw")
    host = PROSODY_HOST | (PROSODY_HOST_OPTIONAL if optional(srv) else set())
    account = PROSODY_ACCOUNT | (PROSODY_ACCOUNT_OPTIONAL if optional(srv) else set())
    assert await features_of(alice, "localhost") == host
    assert await features_of(alice, "alice@localhost") == account | OURS_ONLY_ACCOUNT


async def test_behaviour_features(srv: TestServer) -> None:
    """msgoffline: a message to an offline account waits for it; urn:xmpp:sid:0 (with mam):
    it carries the account's stanza-id."""
    alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "alice-pw")
    announced = await features_of(alice, "localhost") | await features_of(alice, "alice@localhost")
    assert "msgoffline" in announced
    assert ("urn:xmpp:sid:0" in announced) == optional(srv)
    await alice.send("<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>")
    await until_pong(alice)
    bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", "bob-pw", presence=True)
    message = await bob.expect("message")
    assert message.get("id") == "m1"
    sid = message.find("{urn:xmpp:sid:0}stanza-id")
    assert (sid is not None and sid.get("by") == "bob@localhost") == optional(srv)
