"""slixmpp's vCard-temp (xep_0054) and vCard avatars (xep_0153): a profile set by one user and
read by another, and an avatar whose hash a contact sees in presence, also from a client of
hers that knows nothing of XEP-0153 (the server adds it, as Prosody's mod_vcard_legacy)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from minixmpp.testing import running_server
from tests.xmpp import slix_login

PLUGINS = ("xep_0030", "xep_0199", "xep_0054", "xep_0153")
AVATAR = b"\x89PNG\r\n\x1a\n not really a picture"


async def test_slixmpp_vcard_and_avatar(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=["disco", "ping", "vcard"]) as srv:
        await srv.create_user("alice", "pw")
        await srv.create_user("bob", "pw")
        await srv.add_contact("alice@localhost", "bob@localhost")
        bob = await slix_login(
            srv.c2s_port,
            srv.ca_file,
            "bob@localhost/desk",
            "pw",
            plugins=PLUGINS,
            watch=["vcard_avatar_update"],
        )
        alice = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/phone", "pw", plugins=PLUGINS
        )
        # xep_0054: a profile, read by a contact
        vcards = alice.client.plugin["xep_0054"]
        vcard = vcards.make_vcard()
        vcard["FN"] = "Alice Liddell"
        vcard["NICKNAME"] = "alice"
        vcard["TITLE"] = "Explorer"
        await vcards.publish_vcard(vcard, timeout=10)
        got = await bob.client.plugin["xep_0054"].get_vcard(
            "alice@localhost", cached=False, timeout=10
        )
        assert (got["vcard_temp"]["FN"], got["vcard_temp"]["TITLE"]) == (
            "Alice Liddell",
            "Explorer",
        )
        # xep_0153: alice sets an avatar; bob learns its hash from her presence
        await alice.client.plugin["xep_0153"].set_avatar(
            avatar=AVATAR, mtype="image/png", timeout=10
        )
        expected = hashlib.sha1(AVATAR).hexdigest()
        for _ in range(10):  # her earlier presences may come first (no avatar: <photo/>)
            update = await bob.event_from("vcard_avatar_update", "alice@localhost/phone")
            if update["vcard_temp_update"]["photo"] == expected:
                break
        else:
            raise AssertionError("bob never saw alice's avatar hash")
        # a client of hers that knows nothing of XEP-0153: the server puts the hash in
        await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/desk", "pw", plugins=PLUGINS[:3]
        )
        update = await bob.event_from("vcard_avatar_update", "alice@localhost/desk")
        assert update["vcard_temp_update"]["photo"] == expected
        photo = (await bob.client.plugin["xep_0054"].get_vcard("alice@localhost", cached=False))[
            "vcard_temp"
        ]["PHOTO"]
        assert (photo["BINVAL"], photo["TYPE"]) == (AVATAR, "image/png")


async def test_slixmpp_pep_avatar_and_vcard4(tmp_path: Path) -> None:
    # XEP-0398 and XEP-0292: an avatar and a profile published through PEP (xep_0084,
    # xep_0292, as Conversations does), read by a contact as a vCard-temp and as vCard4
    modules = ["disco", "ping", "pep", "vcard_legacy", "vcard4"]
    async with running_server(tmp_path, modules=modules) as srv:
        await srv.create_user("alice", "pw")
        await srv.create_user("bob", "pw")
        await srv.add_contact("alice@localhost", "bob@localhost")
        plugins = ("xep_0030", "xep_0199", "xep_0054", "xep_0084", "xep_0153", "xep_0292")
        bob = await slix_login(
            srv.c2s_port,
            srv.ca_file,
            "bob@localhost/desk",
            "pw",
            plugins=plugins,
            watch=["vcard_avatar_update"],
        )
        alice = await slix_login(
            srv.c2s_port,
            srv.ca_file,
            "alice@localhost/phone",
            "pw",
            plugins=("xep_0030", "xep_0199", "xep_0084", "xep_0292"),
            presence=False,
        )
        avatars = alice.client.plugin["xep_0084"]
        avatar_id = avatars.generate_id(AVATAR)
        await avatars.publish_avatar(AVATAR, timeout=10)
        await avatars.publish_avatar_metadata(
            {"id": avatar_id, "bytes": len(AVATAR), "type": "image/png"}, timeout=10
        )
        await alice.client.plugin["xep_0292"].publish_vcard(
            full_name="Alice Liddell", note="down the rabbit hole", timeout=10
        )
        # her presence now: the server puts the PEP avatar's id in it
        alice.client.send_presence()
        update = await bob.event_from("vcard_avatar_update", "alice@localhost/phone")
        assert update["vcard_temp_update"]["photo"] == avatar_id
        vcard = await bob.client.plugin["xep_0054"].get_vcard(
            "alice@localhost", cached=False, timeout=10
        )
        assert (vcard["vcard_temp"]["PHOTO"]["BINVAL"], vcard["vcard_temp"]["PHOTO"]["TYPE"]) == (
            AVATAR,
            "image/png",
        )
        card = await bob.client.plugin["xep_0292"].retrieve_vcard("alice@localhost", timeout=10)
        assert card["pubsub"]["items"]["item"]["vcard"]["full_name"] == "Alice Liddell"
