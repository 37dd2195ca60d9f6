"""Protocol profiles: each difference between servers, checked on the wire in every profile."""

from __future__ import annotations

import aiohttp
import pytest

from minixmpp.testing import PROFILES, XmppServer
from tests.xmpp import RawClient, login

STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
CMD = "http://jabber.org/protocol/commands"
MODULES = ["register", "invites", "invites_register", "adhoc", "invites_adhoc", "invites_page"]
PROSODY_TEXT = "The invite token is invalid or expired"
XEP_TEXT = "The provided token is invalid or expired"
EXPECTED = {  # profile: (refused token's condition and text, ad-hoc forms, unknown page)
    "prosody-0.12": ("forbidden", PROSODY_TEXT, "prosody", 200),
    "prosody-13": ("forbidden", PROSODY_TEXT, "prosody", 200),
    "ejabberd": ("item-not-found", XEP_TEXT, "xep0401", 404),
    "xep": ("item-not-found", XEP_TEXT, "xep0401", 404),
}


def test_every_profile_is_checked() -> None:
    assert set(EXPECTED) == set(PROFILES)


@pytest.mark.parametrize("profile", sorted(EXPECTED))
async def test_profile_on_the_wire(profile: str) -> None:
    condition, text, form, page_status = EXPECTED[profile]
    async with XmppServer(modules=MODULES, profile=profile, admin="admin") as srv:
        client = await RawClient.connect(srv.c2s_port)
        await client.open()
        await client.starttls(srv.ca_file)
        await client.send(
            "<iq type='set' id='p'><preauth xmlns='urn:xmpp:pars:0' token='nope'/></iq>"
        )
        reply = await client.expect("iq")
        error = reply.find("error")
        assert error is not None and error.find(f"{{{STANZAS}}}{condition}") is not None
        assert error.findtext(f"{{{STANZAS}}}text") == text

        admin, _ = await login(srv.c2s_port, srv.ca_file, "admin", "password")
        reply = await admin.iq(
            f"<command xmlns='{CMD}' action='execute' node='urn:xmpp:invite#create-account'/>",
            type="set", id="c", to="localhost",
        )  # fmt: skip
        command = reply.find(f"{{{CMD}}}command")
        assert command is not None
        # Prosody answers at once with the invite; XEP-0401 0.6 asks for a form first
        expected_status = "completed" if form == "prosody" else "executing"
        assert command.get("status") == expected_status

        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{srv.http_url}/invites_page?unknown-token") as response,
        ):
            assert response.status == page_status
            assert "Invite expired" in await response.text()


async def test_options_win_over_the_profile() -> None:
    options = {"invite_error_condition": "forbidden"}
    async with XmppServer(modules=MODULES, profile="xep", options=options) as srv:
        client = await RawClient.connect(srv.c2s_port)
        await client.open()
        await client.starttls(srv.ca_file)
        await client.send("<iq type='set' id='p'><preauth xmlns='urn:xmpp:pars:0' token='x'/></iq>")
        error = (await client.expect("iq")).find("error")
        assert error is not None and error.find(f"{{{STANZAS}}}forbidden") is not None
