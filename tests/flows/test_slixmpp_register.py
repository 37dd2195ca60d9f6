"""XEP-0077 with an unmodified slixmpp client (its xep_0077 plugin): sign up, log in, change
the password, remove the account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slixmpp.exceptions import IqError

from minixmpp.testing import TestServer, running_server
from tests.xmpp import TIMEOUT, slix_login

PLUGINS = ("xep_0030", "xep_0199", "xep_0004", "xep_0066", "xep_0077")


@pytest.fixture
async def open_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(
        tmp_path, modules=["register", "ping"], options={"allow_registration": True}
    ) as srv:
        yield srv


async def test_sign_up_log_in_change_password_and_leave(open_server: TestServer) -> None:
    port, ca = open_server.c2s_port, open_server.ca_file
    new = await slix_login(port, ca, "newbie@localhost/app", "first-pw", register=True)
    assert new.jid == "newbie@localhost/app"  # registered, then logged in with it
    await new.disconnect()

    client = await slix_login(port, ca, "newbie@localhost/app", "first-pw", plugins=PLUGINS)
    other = await slix_login(
        port, ca, "newbie@localhost/other", "first-pw", plugins=PLUGINS, watch=["stream_error"]
    )
    await client.client.plugin["xep_0077"].change_password("second-pw", timeout=TIMEOUT)
    # the other session had to go; the old password is no longer any good
    reset = await other.next_event("stream_error")
    assert (reset["condition"], reset["text"]) == ("reset", "Password changed")
    await other.disconnected()
    with pytest.raises(AssertionError, match="failed_all_auth"):
        await slix_login(port, ca, "newbie@localhost/x", "first-pw")
    again = await slix_login(
        port, ca, "newbie@localhost/x", "second-pw", plugins=PLUGINS, watch=["stream_error"]
    )
    await again.client.plugin["xep_0077"].cancel_registration(timeout=TIMEOUT)
    gone = await again.next_event("stream_error")
    assert (gone["condition"], gone["text"]) == ("not-authorized", "Account deleted")
    await again.disconnected()
    with pytest.raises(AssertionError, match="failed_all_auth"):
        await slix_login(port, ca, "newbie@localhost/x", "second-pw")
    assert not await open_server.server.hosts["localhost"].users.exists("newbie")


async def test_a_taken_name_is_refused(open_server: TestServer) -> None:
    await open_server.create_user("taken", "pw")
    with pytest.raises(AssertionError, match="conflict"):
        await slix_login(
            open_server.c2s_port, open_server.ca_file, "taken@localhost", "other", register=True
        )


async def test_an_authenticated_change_with_another_name_is_refused(
    open_server: TestServer,
) -> None:
    await open_server.create_user("alice", "pw")
    alice = await slix_login(
        open_server.c2s_port, open_server.ca_file, "alice@localhost", "pw", plugins=PLUGINS
    )
    iq = alice.client.Iq()
    iq["type"] = "set"
    iq["register"]["username"] = "bob"
    iq["register"]["password"] = "stolen"
    with pytest.raises(IqError) as refused:
        await iq.send(timeout=TIMEOUT)
    assert refused.value.iq["error"]["condition"] == "bad-request"
