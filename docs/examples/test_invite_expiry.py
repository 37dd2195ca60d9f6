"""Tutorial 3: the invite flow tested with a moved clock.

An invite made now is valid for an hour. Instead of waiting an hour, the test freezes the
server's clock and moves it. Registration goes through Prosody's register API
(mod_invites_register_api), which a web or app onboarding flow calls; then the new account
logs in with slixmpp.
"""

import asyncio
import json
import ssl
import urllib.request

import pytest
import slixmpp

MODULES = ["register", "invites", "invites_register", "invites_register_api"]


def register(server, token, username, password):
    """POST /register_api/register, as an onboarding page does; (status, JSON body)."""
    body = json.dumps({"token": token, "username": username, "password": password}).encode()
    request = urllib.request.Request(
        f"{server.http_url}/register_api/register", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


async def logs_in(server, jid, password):
    client = slixmpp.ClientXMPP(jid, password)
    client.ssl_context = ssl.create_default_context(cafile=str(server.ca_file))
    outcome = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _e: outcome.done() or outcome.set_result(True))
    client.add_event_handler("failed_auth", lambda _e: outcome.done() or outcome.set_result(False))
    client.connect(*server.c2s_address)
    try:
        return await asyncio.wait_for(outcome, 10)
    finally:
        client.disconnect()


@pytest.mark.xmpp_server(modules=MODULES)
def test_an_invite_expires_after_its_hour(xmpp_server):
    xmpp_server.clock.freeze()
    invite = xmpp_server.create_invite(ttl=3600)

    xmpp_server.clock.advance(3599)  # 59 minutes 59 seconds later: still valid
    kept = xmpp_server.create_invite(ttl=3600)  # made now: valid for another hour
    assert register(xmpp_server, invite.token, "early", "early-pw") == (
        200, {"jid": "early@localhost"}
    )

    xmpp_server.clock.advance(3601)  # the second invite has expired now
    status, _ = register(xmpp_server, kept.token, "late", "late-pw")
    assert status == 404


@pytest.mark.xmpp_server(modules=MODULES)
async def test_the_new_account_logs_in(xmpp_server, xmpp_invite):
    status, body = register(xmpp_server, xmpp_invite.token, "newbie", "newbie-pw")
    assert (status, body) == (200, {"jid": "newbie@localhost"})
    assert await logs_in(xmpp_server, "newbie@localhost", "newbie-pw")
    event = await xmpp_server.wait_for("user-registered")
    assert event.username == "newbie"
