"""Ad-hoc commands with an unmodified slixmpp client (its xep_0050 plugin): an admin and a user
list and run the invite commands, the URI they get signs up a new account, and an admin
provisions, changes and deletes accounts with XEP-0133."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slixmpp.exceptions import IqError

from minixmpp.testing import TestServer, running_server
from tests.xmpp import SlixClient, register_preauth_stanza, slix_login

MODULES = ["disco", "register", "invites", "invites_register", "invites_adhoc", "admin_adhoc"]
PLUGINS = ("xep_0030", "xep_0199", "xep_0004", "xep_0050")
ADMIN_NS = "http://jabber.org/protocol/admin"

register_preauth_stanza()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(
        tmp_path, modules=MODULES, options={"admins": ["admin@localhost"]}
    ) as srv:
        for name in ("admin", "alice"):
            await srv.create_user(name, f"{name}-pw")
        yield srv


async def connect(server: TestServer, user: str, **kw: Any) -> SlixClient:
    return await slix_login(
        server.c2s_port, server.ca_file, f"{user}@localhost/app", f"{user}-pw", plugins=PLUGINS,
        **kw,
    )  # fmt: skip


async def commands(client: SlixClient) -> list[str]:
    reply = await client.client.plugin["xep_0050"].get_commands(jid="localhost", timeout=10)
    return [item.get("node") for item in reply.xml.iterfind(".//{*}item")]  # in the order sent


async def run(client: SlixClient, node: str, **kw: Any) -> Any:
    return await client.client.plugin["xep_0050"].send_command("localhost", node, timeout=10, **kw)


def fields(reply: Any) -> dict[str, Any]:
    return dict(reply["command"]["form"].get_values())


async def fill_in(client: SlixClient, node: str, values: dict[str, Any]) -> Any:
    """Run a command whose first stage is a form: submit ``values`` with complete."""
    first = await run(client, node)
    assert first["command"]["status"] == "executing"
    form = first["command"]["form"]
    form["type"] = "submit"
    form.set_values(values)
    return await client.client.plugin["xep_0050"].send_command(
        "localhost", node, sessionid=first["command"]["sessionid"], payload=form,
        action="complete", timeout=10,
    )  # fmt: skip


async def test_admin_invites_a_new_user(server: TestServer) -> None:
    admin = await connect(server, "admin")
    listed = await commands(admin)
    assert "urn:xmpp:invite#create-account" in listed and f"{ADMIN_NS}#add-user" in listed
    assert listed == sorted(listed)
    reply = await run(admin, "urn:xmpp:invite#create-account")
    assert reply["command"]["status"] == "completed"
    uri = fields(reply)["uri"]
    assert uri.startswith("xmpp:localhost?register;preauth=")
    token = uri.rpartition("=")[2]
    newbie = await slix_login(
        server.c2s_port, server.ca_file, "newbie@localhost/app", "pw",
        register=True, preauth=token,
    )  # fmt: skip
    assert newbie.jid == "newbie@localhost/app"


async def test_user_invites_a_contact(server: TestServer) -> None:
    alice = await connect(server, "alice")
    assert await commands(alice) == ["urn:xmpp:invite#invite"]
    reply = await run(alice, "urn:xmpp:invite#invite")
    uri = fields(reply)["uri"]
    assert uri.startswith("xmpp:alice@localhost?roster;preauth=") and not uri.endswith("ibr=y")
    with pytest.raises(IqError) as refused:
        await run(alice, "urn:xmpp:invite#create-account")
    error = refused.value.iq["error"]
    assert (error["type"], error["condition"]) == ("auth", "forbidden")
    assert error["text"] == "You don't have permission to execute this command"
    with pytest.raises(IqError):
        await run(alice, f"{ADMIN_NS}#add-user")


async def test_admin_provisions_accounts(server: TestServer) -> None:
    admin = await connect(server, "admin")
    adhoc = admin.client.plugin["xep_0050"]
    first = await run(admin, f"{ADMIN_NS}#add-user")
    assert first["command"]["status"] == "executing"
    form = first["command"]["form"]
    form["type"] = "submit"
    values = {"FORM_TYPE": ADMIN_NS, "accountjid": "bob@localhost"}
    form.set_values({**values, "password": "bob-pw", "password-verify": "bob-pw"})
    done = await adhoc.send_command(
        "localhost", f"{ADMIN_NS}#add-user", sessionid=first["command"]["sessionid"],
        payload=form, action="complete", timeout=10,
    )  # fmt: skip
    assert done["command"]["status"] == "completed"
    assert done["command"]["notes"] == [("info", "Account successfully created")]
    bob = await slix_login(server.c2s_port, server.ca_file, "bob@localhost/x", "bob-pw")
    assert bob.jid == "bob@localhost/x"
    count = await run(admin, f"{ADMIN_NS}#get-registered-users-num")
    assert fields(count)["registeredusersnum"] == "3"
    listed = await run(admin, f"{ADMIN_NS}#get-registered-users-list")
    assert fields(listed)["registereduserjids"] == [
        "admin@localhost",
        "alice@localhost",
        "bob@localhost",
    ]


async def test_every_invite_command_ends_in_a_working_invite(server: TestServer) -> None:
    admin = await connect(server, "admin")
    contact = fields(await run(admin, "urn:xmpp:invite#invite"))["uri"]
    assert contact.endswith(";ibr=y")  # an admin's contact invite allows registration
    friend = await slix_login(
        server.c2s_port, server.ca_file, "friend@localhost/app", "pw",
        register=True, preauth=contact.split("preauth=")[1].split(";")[0], roster=True,
    )  # fmt: skip
    assert friend.roster["admin@localhost"]["subscription"] == "both"

    node = "xmpp:prosody.im/mod_invites_adhoc#password-reset"
    first = await run(admin, node)
    form = first["command"]["form"]
    form["type"] = "submit"
    form.set_values({"accountjid": "alice@localhost"})
    done = await admin.client.plugin["xep_0050"].send_command(
        "localhost", node, sessionid=first["command"]["sessionid"], payload=form,
        action="complete", timeout=10,
    )  # fmt: skip
    reset = fields(done)["uri"]
    assert reset.startswith("xmpp:alice@localhost?register;preauth=")
    await slix_login(
        server.c2s_port, server.ca_file, "alice@localhost/new", "new-alice-pw",
        register=True, preauth=reset.rpartition("=")[2],
    )  # fmt: skip
    with pytest.raises(AssertionError, match="failed_all_auth"):
        await slix_login(server.c2s_port, server.ca_file, "alice@localhost", "alice-pw")


async def test_admin_changes_a_password_and_deletes_a_user(server: TestServer) -> None:
    admin = await connect(server, "admin")
    alice = await connect(server, "alice", watch=["stream_error"])
    online = await run(admin, f"{ADMIN_NS}#get-online-users-num")
    assert fields(online)["onlineusersnum"] == "2"

    values = {"FORM_TYPE": ADMIN_NS, "accountjid": "alice@localhost", "password": "new-pw"}
    done = await fill_in(admin, f"{ADMIN_NS}#change-user-password", values)
    assert done["command"]["notes"] == [("info", "Password successfully changed")]
    reset = await alice.next_event("stream_error")
    assert (reset["condition"], reset["text"]) == ("reset", "Password changed")
    await alice.disconnected()
    with pytest.raises(AssertionError, match="failed_all_auth"):
        await slix_login(server.c2s_port, server.ca_file, "alice@localhost/x", "alice-pw")
    alice = await slix_login(
        server.c2s_port, server.ca_file, "alice@localhost/x", "new-pw", plugins=PLUGINS,
        watch=["stream_error"],
    )  # fmt: skip
    assert fields(await run(admin, f"{ADMIN_NS}#get-online-users-num"))["onlineusersnum"] == "2"

    values = {"FORM_TYPE": ADMIN_NS, "accountjids": ["alice@localhost"]}
    done = await fill_in(admin, f"{ADMIN_NS}#delete-user", values)
    assert done["command"]["notes"] == [
        ("info", "The following accounts were successfully deleted:\nalice@localhost\n")
    ]
    gone = await alice.next_event("stream_error")
    assert (gone["condition"], gone["text"]) == ("not-authorized", "Account deleted")
    await alice.disconnected()
    assert fields(await run(admin, f"{ADMIN_NS}#get-online-users-num"))["onlineusersnum"] == "1"
    with pytest.raises(AssertionError, match="failed_all_auth"):
        await slix_login(server.c2s_port, server.ca_file, "alice@localhost/x", "new-pw")


async def test_a_users_contact_invite_signs_up_a_friend(tmp_path: Path) -> None:
    options = {"admins": [], "allow_user_invites": True}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "alice-pw")
        alice = await connect(srv, "alice", roster=True)
        uri = fields(await run(alice, "urn:xmpp:invite#invite"))["uri"]
        assert uri.startswith("xmpp:alice@localhost?roster;preauth=") and uri.endswith(";ibr=y")
        friend = await slix_login(
            srv.c2s_port, srv.ca_file, "friend@localhost/app", "friend-pw", register=True,
            preauth=uri.split("preauth=")[1].split(";")[0], roster=True, plugins=PLUGINS,
        )  # fmt: skip
        assert friend.roster["alice@localhost"]["subscription"] == "both"
        await alice.settle()  # the roster push has arrived
        assert alice.roster["friend@localhost"]["subscription"] == "both"


async def test_xep0401_account_invite_with_roster_subscription(tmp_path: Path) -> None:
    options = {"admins": ["admin@localhost"], "invites_adhoc_form": "xep0401"}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("admin", "admin-pw")
        admin = await connect(srv, "admin", roster=True)
        values = {
            "FORM_TYPE": "urn:xmpp:invite#invitation", "username": "romeo",
            "roster-subscription": True,
        }  # fmt: skip
        done = await fill_in(admin, "urn:xmpp:invite#create-account", values)
        result = fields(done)
        assert "landing-url" not in result
        uri = result["uri"]
        assert uri.startswith("xmpp:romeo@localhost?register;preauth="), uri
        token = uri.rpartition("=")[2]
        with pytest.raises(AssertionError, match="registration failed"):  # that name only
            await slix_login(
                srv.c2s_port, srv.ca_file, "juliet@localhost/app", "pw", register=True,
                preauth=token,
            )  # fmt: skip
        romeo = await slix_login(
            srv.c2s_port, srv.ca_file, "romeo@localhost/app", "romeo-pw", register=True,
            preauth=token, roster=True, plugins=PLUGINS,
        )  # fmt: skip
        assert romeo.roster["admin@localhost"]["subscription"] == "both"
        await admin.settle()
        assert admin.roster["romeo@localhost"]["subscription"] == "both"
