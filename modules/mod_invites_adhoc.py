"""Invites by ad-hoc command (Prosody's mod_invites_adhoc; XEP-0401's command nodes).

* ``urn:xmpp:invite#invite`` "Create new contact invite": a contact invite from the caller, to
  every local user (admins only with ``allow_contact_invites = false``). It lets the invitee
  create an account (``;ibr=y``) when the caller is an admin or ``allow_user_invites`` is set.
* ``urn:xmpp:invite#create-account`` "Create new account invite": admins only.
* ``xmpp:prosody.im/mod_invites_adhoc#password-reset`` "Create password reset invite" (Prosody
  13): admins only, a form with ``accountjid``.

Each completes in one step (the reset after its form) with Prosody's result: a ``result`` form
titled "Your invite has been created" with ``landing-url`` (empty without a landing page),
``uri`` and ``expire``, in that order, no FORM_TYPE. With ``invites_adhoc_form = "xep0401"``
the form follows XEP-0401 0.6 instead: FORM_TYPE ``urn:xmpp:invite#invitation``, then ``uri``,
``landing-url`` (only with a landing page) and ``expire``; create-account asks first for an
optional ``username`` and ``roster-subscription``, and answers an account invite's URI
(``xmpp:[username@]host?register;preauth=TOKEN``) either way: with ``roster-subscription`` the
new account and the inviter subscribe to each other once it is created.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from minixmpp.adhoc import Command, Reply, Request
from minixmpp.config import ConfigError
from minixmpp.jid import JID, InvalidJID, nodeprep
from minixmpp.module import Module
from minixmpp.xml import dataforms
from minixmpp.xml.dataforms import Field, Form

NS_INVITATION = "urn:xmpp:invite#invitation"
INVITE = "urn:xmpp:invite#invite"
CREATE_ACCOUNT = "urn:xmpp:invite#create-account"
PASSWORD_RESET = "xmpp:prosody.im/mod_invites_adhoc#password-reset"  # noqa: S105 - a node


@dataclass
class Options:
    allow_user_invites: bool = False  # non-admins' contact invites also allow registration
    allow_contact_invites: bool = True  # every local user may create contact invites
    invites_adhoc_form: str = "prosody"  # or "xep0401": XEP-0401 0.6's forms


def expire_text(timestamp: int) -> str:
    """XEP-0082 DateTime in UTC, whole seconds."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def load(module: Module) -> None:
    module.depends("adhoc")
    invites = module.depends("invites")
    opts = module.options(Options)
    if opts.invites_adhoc_form not in ("prosody", "xep0401"):
        raise ConfigError(f"{module.name}: invites_adhoc_form must be 'prosody' or 'xep0401'")
    xep = opts.invites_adhoc_form == "xep0401"

    def result(invite: Any, uri: str | None = None) -> Reply:
        landing = invite.landing_page
        page = Field("landing-url", "text-single", "Invite web page", "Share this link",
                     values=(landing,) if landing else ())  # fmt: skip
        link = Field("uri", "text-single", "Invite URI",
                     "This alternative link can be opened with some XMPP clients",
                     values=(uri or invite.uri,))  # fmt: skip
        expire = Field("expire", "text-single", "Invite valid until",
                       values=(expire_text(invite.expires),))  # fmt: skip
        if xep:  # XEP-0401's order; landing-url is optional there
            fields = [dataforms.hidden("FORM_TYPE", NS_INVITATION), link]
            fields += [page, expire] if landing else [expire]
        else:
            fields = [page, link, expire]
        return Reply("completed", Form("result", "Your invite has been created", None, fields))

    async def contact_invite(request: Request) -> Reply:
        requester = request.requester
        if requester.domain != module.host or requester.node is None:
            note = f"This command is only available to users of {module.host}"
            return Reply(notes=[("error", note)])
        invite = await invites.create_contact(
            requester.node,
            allow_registration=request.admin or opts.allow_user_invites,
            source=requester.full,
        )
        return result(invite)

    async def account_invite(request: Request) -> Reply:
        requester = request.requester
        if not xep:
            return result(await invites.create_account(source=requester.full))
        if request.state is None:  # the first stage shows the form, as Prosody's simple forms
            form = Form(
                "form", "Create new account invite", None,
                [
                    dataforms.hidden("FORM_TYPE", NS_INVITATION),
                    Field("username", "text-single", "Username"),
                    Field("roster-subscription", "boolean", "Add to your roster"),
                ],
            )  # fmt: skip
            return Reply(
                "executing", form, actions=("next", "complete"), default="complete", state="form"
            )
        values = request.values
        username = dataforms.first(values, "username")
        if username is not None:
            try:
                username = nodeprep(username, strict=True)
            except InvalidJID:
                return Reply(notes=[("error", "username: The username is invalid")])
            if await module.users.exists(username):  # registration would only answer conflict
                return Reply(notes=[("error", "username: The username is already taken")])
        if dataforms.boolean(values, "roster-subscription") and requester.node:
            # an account invite that also befriends the inviter on sign-up; its URI is an
            # account invite's (XEP-0401 §5.4), not the inviter's roster URI
            invite = await invites.create_contact(
                requester.node, allow_registration=True, username=username, source=requester.full
            )
            account = f"{username}@{module.host}" if username else module.host
            return result(invite, f"xmpp:{account}?register;preauth={invite.token}")
        return result(await invites.create_account(username, source=requester.full))

    async def reset_invite(request: Request) -> Reply:
        if request.state is None:  # the first stage shows the form, as Prosody's simple forms
            label = "The XMPP ID for the account to generate a password reset invite for"
            form = Form(
                "form", "Generate Password Reset Invite", None,
                [Field("accountjid", "jid-single", label, required=True)],
            )  # fmt: skip
            return Reply(
                "executing", form, actions=("next", "complete"), default="complete", state="form"
            )
        try:
            jid: JID | None = JID.parse(dataforms.first(request.values, "accountjid") or "")
        except InvalidJID:
            jid = None
        if jid is None or jid.node is None or jid.domain != module.host:
            return Reply(notes=[("error", "Fill in the form correctly")])
        if not await module.users.exists(jid.node):
            return Reply(notes=[("error", "Fill in the form correctly")])
        return result(await invites.create_reset(jid.node, source=request.requester.full))

    for node, name, handler, permission in (
        (INVITE, "Create new contact invite", contact_invite,
         "local_user" if opts.allow_contact_invites else "admin"),
        (CREATE_ACCOUNT, "Create new account invite", account_invite, "admin"),
        (PASSWORD_RESET, "Create password reset invite", reset_invite, "admin"),
    ):  # fmt: skip
        module.add_item("adhoc", Command(node, name, handler, permission))
